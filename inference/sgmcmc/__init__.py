"""Stochastic-gradient Langevin samplers.

Gradient estimators (:mod:`.gradients`) are kept apart from the Langevin
update (:mod:`.diffusions`); a sampler is an estimator plus an update
(:mod:`.sgld`), driven by :func:`.driver.run_chains` on any backend.
"""

from .driver import SamplerRun, run_chains
from .schedules import Constant, PolynomialDecay
from .sgld import SGLD, SGLDState

__all__ = ["SGLD", "SGLDState", "Constant", "PolynomialDecay", "SamplerRun", "run_chains", "get_sampler", "SAMPLERS"]

#: method name -> kernel class, for ``ppzoo.sample(method=...)``
SAMPLERS = {"sgld": SGLD}


def get_sampler(method: str):
    """The kernel class for a method name; ``ValueError`` listing the known ones otherwise."""
    if method not in SAMPLERS:
        raise ValueError(f"method must be one of {sorted(SAMPLERS)}, got {method!r}")
    return SAMPLERS[method]
