"""Softmax regression on iris (150 rows, 4 standardised measurements, 3 species)."""

from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from sklearn.datasets import load_iris

from ._data import standardise

NAME = "multinomial_logistic"
DESCRIPTION = "Categorical(logits = [0, x W + b]) on iris; first species the reference class; 150 rows, 4 features"
IDIOMS = ("glm", "categorical", "reference-class")


def model(x, y=None, num_classes=3):
    d = x.shape[1]
    W = numpyro.sample("W", dist.Normal(0.0, 1.0).expand([d, num_classes - 1]).to_event(2))
    b = numpyro.sample("b", dist.Normal(0.0, 2.0).expand([num_classes - 1]).to_event(1))
    logits = x @ W + b
    logits = jnp.concatenate([jnp.zeros(logits.shape[:-1] + (1,)), logits], axis=-1)
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Categorical(logits=logits), obs=y)


def data():
    iris = load_iris()
    return (standardise(iris.data),), {"y": iris.target.astype("int32")}
