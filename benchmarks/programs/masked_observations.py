"""A regression with missing responses, left out of the likelihood by a mask (missing y filled with 0)."""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist

NAME = "masked_observations"
DESCRIPTION = "y ~ N(b0 + x w, sigma).mask(observed); 20% of 300 responses missing (set to 0, masked out)"
IDIOMS = ("linear", "mask", "missing-data")


def model(x, observed, y=None):
    b0 = numpyro.sample("b0", dist.Normal(0.0, 5.0))
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(b0 + x @ w, sigma).mask(observed), obs=y)


def data():
    rng = np.random.default_rng(10)
    n = 300
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = 1.0 + x @ np.array([0.8, -0.4]) + 0.5 * rng.normal(size=n)
    observed = rng.random(n) > 0.2
    y = np.where(observed, y, 0.0).astype(np.float32)
    return (x, observed), {"y": y}
