"""SVI objectives: ``IWAE`` (reparam / STL / DReG gradients) and ``AnnealedELBO``.

Each is the ``loss`` of Pyro's ``pyro.infer.SVI`` and of NumPyro's
``numpyro.infer.SVI`` alike; see :mod:`ppzoo.inference.svi.objectives`.
"""

from .objectives import IWAE, AnnealedELBO, LinearWarmup, SVIObjective

__all__ = ["IWAE", "AnnealedELBO", "LinearWarmup", "SVIObjective"]
