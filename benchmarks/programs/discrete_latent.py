"""A two-component Gaussian mixture with its assignments as explicit discrete latents (not marginalised)."""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist

NAME = "discrete_latent"
DESCRIPTION = "z_i ~ Categorical(pi) in the data plate, y_i ~ N(mu[z_i], sigma); gradient samplers must refuse it"
IDIOMS = ("mixture", "discrete-latent")
EXPECT_ERROR = "latent site 'z' is discrete"


def model(y):
    pi = numpyro.sample("pi", dist.Dirichlet(np.ones(2, dtype=np.float32)))
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0).expand([2]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    with numpyro.plate("data", y.shape[0]):
        z = numpyro.sample("z", dist.Categorical(pi))
        numpyro.sample("y", dist.Normal(mu[z], sigma), obs=y)


def data():
    rng = np.random.default_rng(12)
    n = 200
    z = rng.random(n) < 0.4
    y = np.where(z, rng.normal(-2.0, 1.0, n), rng.normal(2.0, 1.0, n)).astype(np.float32)
    return (), {"y": y}
