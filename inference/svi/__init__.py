"""SVI objectives: ``IWAE`` (reparam / STL / DReG gradients) and ``AnnealedELBO``.

Each is the ``loss`` of Pyro's ``pyro.infer.SVI`` and of NumPyro's
``numpyro.infer.SVI`` alike (see :mod:`ppzoo.inference.svi.base`); the
bounds and estimators are array algebra in :mod:`ppzoo.inference.svi.estimators`.
"""

from .annealed_elbo import AnnealedELBO, LinearWarmup
from .base import SVIObjective
from .iwae import IWAE

__all__ = ["IWAE", "AnnealedELBO", "LinearWarmup", "SVIObjective"]
