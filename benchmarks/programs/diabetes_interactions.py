"""Linear regression on the diabetes data with all pairwise interactions and squares (65 correlated columns)."""

from __future__ import annotations

import itertools

import numpy as np
import numpyro
import numpyro.distributions as dist
from sklearn.datasets import load_diabetes

from ._data import standardise

NAME = "diabetes_interactions"
DESCRIPTION = "Normal regression, 10 features + 45 products + 10 squares (65 correlated, standardised columns); 442 rows"
IDIOMS = ("linear", "correlated-predictors", "many-parameters")


def model(x, y=None):
    b0 = numpyro.sample("b0", dist.Normal(0.0, 1.0))
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(b0 + x @ w, sigma), obs=y)


def data():
    raw = load_diabetes()
    z = standardise(raw.data).astype(np.float64)
    pairs = [z[:, i] * z[:, j] for i, j in itertools.combinations(range(z.shape[1]), 2)]
    squares = [z[:, i] ** 2 for i in range(z.shape[1])]
    x = standardise(np.column_stack([z, *pairs, *squares]))
    return (x,), {"y": standardise(raw.target)}
