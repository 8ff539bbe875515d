"""ppzoo.inference: SVI objectives, SG-MCMC kernels, drivers and evaluation (generic: never imports the zoo).

``IWAE`` and ``AnnealedELBO`` are losses for Pyro's and NumPyro's own ``SVI``;
``log_marginal_likelihood`` estimates ``log p(x)`` by importance sampling.

The kernels ``SGLD``, ``SVRGLD``, ``SARAHLD``, ``SGLDCV`` and ``PSGLD`` run through
``ppzoo.sample(method=...)`` on either backend; wrapped for a NumPyro model they are
NumPyro ``MCMCKernel``s: ``numpyro.infer.MCMC(NumPyroLangevin(SARAHLD(), model), ...)``.
"""

from .evaluate import LogMarginalLikelihood, log_marginal_likelihood
from .sgmcmc import (
    PSGLD,
    SAMPLERS,
    SARAHLD,
    SGLD,
    SGLDCV,
    SVRGLD,
    Constant,
    PolynomialDecay,
    get_sampler,
    run_chains,
)
from .svi import IWAE, AnnealedELBO, LinearWarmup, SVIObjective

__all__ = [
    "IWAE", "AnnealedELBO", "LinearWarmup", "SVIObjective", "LogMarginalLikelihood", "log_marginal_likelihood",
    "SGLD", "SVRGLD", "SARAHLD", "SGLDCV", "PSGLD", "Constant", "PolynomialDecay", "SAMPLERS", "get_sampler", "run_chains",
    "NumPyroLangevin"]


def __getattr__(name):
    # NumPyroLangevin (imported on first use) and registered kernels by class name (SGHMC): the
    # sampler package resolves both
    from . import sgmcmc

    try:
        return getattr(sgmcmc, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
