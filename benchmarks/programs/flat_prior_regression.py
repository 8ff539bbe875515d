"""Linear regression with flat (improper) priors on the weights and on the noise scale."""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

NAME = "flat_prior_regression"
DESCRIPTION = "y ~ N(x w, sigma) with ImproperUniform priors: w flat on R^5 (intercept column included), sigma flat on (0, inf); 300 rows"
IDIOMS = ("linear", "improper-prior")


def model(x, y=None):
    w = numpyro.sample("w", dist.ImproperUniform(constraints.real, (), event_shape=(x.shape[1],)))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(x @ w, sigma), obs=y)


def data():
    rng = np.random.default_rng(6)
    n = 300
    x = np.column_stack([np.ones(n), rng.normal(size=(n, 4))]).astype(np.float32)
    y = (x @ np.array([1.0, 0.5, -1.0, 0.25, 0.0]) + 0.7 * rng.normal(size=n)).astype(np.float32)
    return (x,), {"y": y}
