"""ppzoo.inference: SG-MCMC kernels and their driver (generic: never imports the zoo).

The kernels ``SGLD``, ``SVRGLD``, ``SARAHLD`` and ``SGLDCV`` run through
``ppzoo.sample(method=...)`` on either backend, and are also NumPyro
``MCMCKernel``s: ``numpyro.infer.MCMC(SARAHLD(model), ...)``.
"""

from .sgmcmc import (
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

__all__ = ["SGLD", "SVRGLD", "SARAHLD", "SGLDCV", "Constant", "PolynomialDecay", "SAMPLERS", "get_sampler", "run_chains"]
