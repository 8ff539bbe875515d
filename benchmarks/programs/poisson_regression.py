"""Poisson regression with a log link on simulated counts (N = 500, D = 4)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

NAME = "poisson_regression"
DESCRIPTION = "Poisson GLM, log link: y ~ Poisson(exp(b0 + x w)); 500 simulated rows, 4 predictors"
IDIOMS = ("glm", "count")


def model(x, y=None):
    b0 = numpyro.sample("b0", dist.Normal(0.0, 2.0))
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Poisson(jnp.exp(b0 + x @ w)), obs=y)


def data():
    rng = np.random.default_rng(1)
    n, d = 500, 4
    x = rng.normal(size=(n, d)).astype(np.float32)
    eta = 0.5 + x @ np.array([0.3, -0.5, 0.2, 0.1])
    y = rng.poisson(np.exp(eta)).astype(np.int32)
    return (x,), {"y": y}
