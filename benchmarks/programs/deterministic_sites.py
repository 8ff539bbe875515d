"""A regression that records the linear predictor per row and a scalar summary as deterministic sites."""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist

NAME = "deterministic_sites"
DESCRIPTION = "y ~ N(mu, sigma) with deterministic mu = b0 + x w in the data plate and sigma2 = sigma^2 outside; 200 rows"
IDIOMS = ("linear", "deterministic")


def model(x, y=None):
    b0 = numpyro.sample("b0", dist.Normal(0.0, 5.0))
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    numpyro.deterministic("sigma2", sigma**2)
    with numpyro.plate("data", x.shape[0]):
        mu = numpyro.deterministic("mu", b0 + x @ w)
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def data():
    rng = np.random.default_rng(9)
    n = 200
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (2.0 + x @ np.array([0.5, -0.7, 0.3]) + rng.normal(size=n)).astype(np.float32)
    return (x,), {"y": y}
