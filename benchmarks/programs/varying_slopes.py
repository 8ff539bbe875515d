"""Hierarchical regression with varying intercepts and slopes, non-centred (J = 8 groups, 400 rows)."""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist

NAME = "varying_slopes"
DESCRIPTION = "y ~ N(a[g] + b[g] x, sigma); a, b non-centred around hyper-means with hyper-scales; J = 8, 400 rows"
IDIOMS = ("hierarchical", "non-centred", "group-plate")

J = 8


def model(g, x, y=None):
    mu_a = numpyro.sample("mu_a", dist.Normal(0.0, 2.0))
    mu_b = numpyro.sample("mu_b", dist.Normal(0.0, 2.0))
    sigma_a = numpyro.sample("sigma_a", dist.HalfNormal(1.0))
    sigma_b = numpyro.sample("sigma_b", dist.HalfNormal(1.0))
    with numpyro.plate("groups", J):
        a_raw = numpyro.sample("a_raw", dist.Normal(0.0, 1.0))
        b_raw = numpyro.sample("b_raw", dist.Normal(0.0, 1.0))
    a = mu_a + sigma_a * a_raw
    b = mu_b + sigma_b * b_raw
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(a[g] + b[g] * x, sigma), obs=y)


def data():
    rng = np.random.default_rng(4)
    n = 400
    g = rng.integers(0, J, size=n).astype(np.int32)
    x = rng.normal(size=n).astype(np.float32)
    a = 1.0 + 0.5 * rng.normal(size=J)
    b = -0.5 + 0.3 * rng.normal(size=J)
    y = (a[g] + b[g] * x + 0.8 * rng.normal(size=n)).astype(np.float32)
    return (g, x), {"y": y}
