"""Helpers shared by the programs' ``data()`` functions."""

from __future__ import annotations

import numpy as np


def standardise(a: np.ndarray) -> np.ndarray:
    """Columns (or a vector) centred and scaled to unit standard deviation, as float32."""
    a = np.asarray(a, dtype=np.float64)
    return ((a - a.mean(axis=0)) / a.std(axis=0)).astype(np.float32)
