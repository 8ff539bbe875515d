"""Step-size schedules ``t -> h_t`` (``t`` counts steps from 0, warmup included).

Schedules use only arithmetic, so ``t`` may be a Python int (torch driver) or
a traced integer (JAX ``scan``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Constant", "PolynomialDecay", "as_schedule"]


@dataclass(frozen=True)
class Constant:
    """``h_t = step_size``."""

    step_size: float

    def __post_init__(self):
        _check_positive("step_size", self.step_size)

    def __call__(self, t):
        return self.step_size + 0.0 * t


@dataclass(frozen=True)
class PolynomialDecay:
    """``h_t = a * (b + t) ** (-gamma)`` (Welling & Teh 2011 use ``gamma`` in (0.5, 1]).

    ``a > 0``, ``b >= 1`` (so ``h_0 = a * b ** -gamma``), ``gamma >= 0``.
    """

    a: float
    b: float = 1.0
    gamma: float = 0.55

    def __post_init__(self):
        _check_positive("a", self.a)
        if not self.b >= 1:
            raise ValueError(f"b must be >= 1, got {self.b!r}")
        if not self.gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {self.gamma!r}")

    def __call__(self, t):
        return self.a * (self.b + t) ** (-self.gamma)


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def as_schedule(step_size):
    """A schedule from a number (constant step) or a callable ``t -> h_t``."""
    if callable(step_size):
        return step_size
    if isinstance(step_size, bool) or not isinstance(step_size, (int, float)):
        raise TypeError(f"step_size must be a positive number or a schedule t -> h_t, got {step_size!r}")
    if not step_size > 0:
        raise ValueError(f"step_size must be > 0, got {step_size!r}")
    return Constant(float(step_size))
