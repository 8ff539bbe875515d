"""Argument checks shared by the drivers, the evaluators and the front door."""

from __future__ import annotations

import numbers

__all__ = ["check_count"]


def check_count(name: str, value, minimum: int = 1) -> None:
    """``TypeError`` unless ``value`` is an integer (not a bool), ``ValueError`` if it is below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
