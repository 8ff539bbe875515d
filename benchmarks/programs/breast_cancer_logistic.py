"""Logistic regression on the breast-cancer data (569 rows, 30 standardised, strongly correlated features)."""

from __future__ import annotations

import numpyro
import numpyro.distributions as dist
from sklearn.datasets import load_breast_cancer

from ._data import standardise

NAME = "breast_cancer_logistic"
DESCRIPTION = "Bernoulli(logits = b0 + x w), Normal(0, 1) weights; breast cancer, 569 rows, 30 correlated features"
IDIOMS = ("glm", "binary", "correlated-predictors")


def model(x, y=None):
    b0 = numpyro.sample("b0", dist.Normal(0.0, 1.0))
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=b0 + x @ w), obs=y)


def data():
    raw = load_breast_cancer()
    return (standardise(raw.data),), {"y": raw.target.astype("int32")}
