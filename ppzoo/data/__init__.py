"""Bundled data sets: real data that ships inside scikit-learn, nothing downloads.

Loaders return NumPy arrays (float32 features, float32 targets) that both
backends accept; ppzoo converts them to JAX arrays or torch tensors itself.
"""

from __future__ import annotations

import numpy as np

__all__ = ["load_breast_cancer", "load_diabetes", "load_iris_grouped", "standardize"]


def standardize(x: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit standard deviation: ``(x - mean) / sd``."""
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def load_breast_cancer(standardized: bool = True):
    """Wisconsin diagnostic breast-cancer data (scikit-learn's bundled copy).

    Returns ``(x, y)``: ``x`` of shape ``(569, 30)`` (standardised columns unless
    ``standardized=False``: the raw features range from about 0.001 to 4,000),
    ``y`` of shape ``(569,)`` with 1 for benign, 0 for malignant.
    """
    from sklearn.datasets import load_breast_cancer as _load

    data = _load()
    x = standardize(data.data) if standardized else data.data
    return x.astype(np.float32), data.target.astype(np.float32)


def load_diabetes(standardized: bool = True):
    """Diabetes progression data (scikit-learn's bundled copy, 442 patients, 10 features).

    Returns ``(x, y)``: ``x`` ``(442, 10)``, ``y`` ``(442,)``; with
    ``standardized=True`` (default) the features and the target are standardised.
    """
    from sklearn.datasets import load_diabetes as _load

    data = _load()
    x, y = data.data, data.target
    if standardized:
        x, y = standardize(x), standardize(y[:, None])[:, 0]
    return x.astype(np.float32), y.astype(np.float32)


def load_iris_grouped():
    """Fisher's iris data (scikit-learn's bundled copy) as a grouped regression.

    Returns ``(x, group, y)``: standardised sepal length ``(150,)`` (float32),
    species ``(150,)`` (int32: 0 setosa, 1 versicolor, 2 virginica) and
    standardised petal length ``(150,)`` (float32).
    """
    from sklearn.datasets import load_iris as _load

    data = _load()
    x = standardize(data.data[:, :1])[:, 0]
    y = standardize(data.data[:, 2:3])[:, 0]
    return x.astype(np.float32), data.target.astype(np.int32), y.astype(np.float32)
