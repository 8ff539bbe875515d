"""ppzoo.inference: SG-MCMC kernels and their driver (generic: never imports the zoo)."""

from .sgmcmc import SAMPLERS, SGLD, PolynomialDecay, get_sampler, run_chains

__all__ = ["SGLD", "PolynomialDecay", "SAMPLERS", "get_sampler", "run_chains"]
