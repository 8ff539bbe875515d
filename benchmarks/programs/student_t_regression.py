"""Robust regression: Student-t errors with unknown degrees of freedom, on heavy-tailed simulated data."""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist

NAME = "student_t_regression"
DESCRIPTION = "y ~ StudentT(nu, b0 + x w, sigma), nu ~ Gamma(2, 0.1); 500 rows with t(3) noise, 3 predictors"
IDIOMS = ("linear", "heavy-tails", "robust")


def model(x, y=None):
    b0 = numpyro.sample("b0", dist.Normal(0.0, 5.0))
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    nu = numpyro.sample("nu", dist.Gamma(2.0, 0.1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.StudentT(nu, b0 + x @ w, sigma), obs=y)


def data():
    rng = np.random.default_rng(7)
    n = 500
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (0.5 + x @ np.array([1.0, -0.5, 0.2]) + 0.5 * rng.standard_t(3, size=n)).astype(np.float32)
    return (x,), {"y": y}
