"""ppzoo: a model zoo and inference layer for Pyro and NumPyro programs.

``ppzoo.sample(model, *args, method="sgld", ...)`` runs stochastic-gradient
Langevin chains on an ordinary Pyro or NumPyro program and returns an
``arviz.InferenceData``. The zoo lives in :mod:`ppzoo.models`, the
samplers in :mod:`ppzoo.inference`.
"""

from ppzoo._version import __version__
from ppzoo.sampling import sample

__all__ = ["__version__", "sample"]
