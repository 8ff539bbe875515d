"""Negative-binomial regression (mean-concentration form) on simulated overdispersed counts."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

NAME = "negbin_regression"
DESCRIPTION = "NegativeBinomial2(exp(b0 + x w), phi) with unknown concentration phi; 500 rows, 3 predictors"
IDIOMS = ("glm", "count", "overdispersion")


def model(x, y=None):
    b0 = numpyro.sample("b0", dist.Normal(0.0, 2.0))
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    phi = numpyro.sample("phi", dist.HalfNormal(10.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.NegativeBinomial2(jnp.exp(b0 + x @ w), phi), obs=y)


def data():
    rng = np.random.default_rng(2)
    n, d = 500, 3
    x = rng.normal(size=(n, d)).astype(np.float32)
    mean = np.exp(1.0 + x @ np.array([0.4, -0.3, 0.2]))
    phi = 3.0
    y = rng.poisson(rng.gamma(phi, mean / phi)).astype(np.int32)  # gamma-Poisson = NB2(mean, phi)
    return (x,), {"y": y}
