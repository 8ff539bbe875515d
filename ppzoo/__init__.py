"""ppzoo: a model zoo and inference layer for Pyro and NumPyro programs.

``ppzoo.sample(model, *args, method="sgld-cv", ...)`` runs stochastic-gradient
Langevin chains on an ordinary Pyro or NumPyro program and returns the ArviZ
result of the installed line (``xarray.DataTree`` under ArviZ 1.x,
``arviz.InferenceData`` under 0.23); ``ppzoo.fit(model, guide, *args, objective="iwae", ...)``
fits a guide by SVI, and ``ppzoo.log_marginal_likelihood`` estimates
``log p(x)`` by importance sampling. The zoo lives in :mod:`ppzoo.models`, the
samplers in :mod:`ppzoo.inference`.
"""

from ppzoo._version import __version__
from ppzoo.fitting import Fit, fit
from ppzoo.inference.evaluate import log_marginal_likelihood
from ppzoo.sampling import sample

__all__ = ["__version__", "sample", "fit", "Fit", "log_marginal_likelihood"]
