"""Ordinal (cumulative-logit) regression with ordered cutpoints, on simulated ratings."""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist

NAME = "ordinal_logistic"
DESCRIPTION = "OrderedLogistic(x w, c) with K = 4 levels; ordered prior on the 3 cutpoints; 500 rows, 3 predictors"
IDIOMS = ("glm", "ordinal", "ordered-constraint")

K = 4


def model(x, y=None):
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    cutpoints = numpyro.sample(
        "cutpoints",
        dist.TransformedDistribution(dist.Normal(0.0, 5.0).expand([K - 1]), dist.transforms.OrderedTransform()),
    )
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.OrderedLogistic(x @ w, cutpoints), obs=y)


def data():
    rng = np.random.default_rng(3)
    n, d = 500, 3
    x = rng.normal(size=(n, d)).astype(np.float32)
    latent = x @ np.array([1.0, -0.5, 0.5]) + rng.logistic(size=n)
    y = np.searchsorted(np.array([-1.5, 0.0, 1.2]), latent).astype(np.int32)
    return (x,), {"y": y}
