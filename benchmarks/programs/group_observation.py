"""A regression with, besides its data plate, three group-level measurements observed outside it."""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist

NAME = "group_observation"
DESCRIPTION = "z ~ N(mu, 1) (3 measurements, no plate) and y ~ N(mu + x w, sigma) in the data plate; 200 rows"
IDIOMS = ("linear", "observation-outside-plate")


def model(x, z, y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    w = numpyro.sample("w", dist.Normal(0.0, 1.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    numpyro.sample("z", dist.Normal(mu, 1.0).expand([3]), obs=z)
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(mu + w * x, sigma), obs=y)


def data():
    rng = np.random.default_rng(8)
    n = 200
    x = rng.normal(size=n).astype(np.float32)
    z = (1.5 + rng.normal(size=3)).astype(np.float32)
    y = (1.5 + 0.8 * x + 1.5 * rng.normal(size=n)).astype(np.float32)
    return (x, z), {"y": y}
