"""A regression written with NumPyro's subsampling idiom and a user-fixed ``subsample_size=32``."""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist

NAME = "fixed_subsample"
DESCRIPTION = "plate('data', 1000, subsample_size=32) with numpyro.subsample of x and y; normal regression, 3 predictors"
IDIOMS = ("linear", "subsample-idiom")


def model(x, y=None, subsample_size=32):
    b0 = numpyro.sample("b0", dist.Normal(0.0, 5.0))
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    with numpyro.plate("data", x.shape[0], subsample_size=subsample_size):
        xb = numpyro.subsample(x, event_dim=1)
        yb = None if y is None else numpyro.subsample(y, event_dim=0)
        numpyro.sample("y", dist.Normal(b0 + xb @ w, sigma), obs=yb)


def reference_model(x, y=None):
    """The same model on all rows: NUTS with a subsampled plate would fix one random subsample for the whole run."""
    return model(x, y, subsample_size=None)


def data():
    rng = np.random.default_rng(11)
    n = 1000
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (-1.0 + x @ np.array([0.6, 0.3, -0.9]) + 1.2 * rng.normal(size=n)).astype(np.float32)
    return (x,), {"y": y}
