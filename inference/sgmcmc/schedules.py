"""Step-size schedules ``t -> h_t`` (``t`` counts steps from 0, warmup included).

A schedule is a setting; what the steps read is its
:class:`~.diffusions.Tuning` (``tuning_parts()``: the step size and, for a
decay, its offset and power as numbers), so a schedule never enters compiled
code as a Python object. Calling a schedule gives ``h_t`` directly (``t`` a
Python int or a traced integer).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from ppzoo.checks import check_number

__all__ = ["Constant", "PolynomialDecay", "as_schedule"]


@dataclass(frozen=True)
class Constant:
    """``h_t = step_size``."""

    step_size: float

    def __post_init__(self):
        _check_positive("step_size", self.step_size)

    def __call__(self, t):
        return self.step_size + 0.0 * t

    def tuning_parts(self):
        """``(h, None)``: a constant step."""
        return self.step_size, None


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
        check_number("b", self.b, low=1.0)
        check_number("gamma", self.gamma, low=0.0)

    def __call__(self, t):
        return self.a * (self.b + t) ** (-self.gamma)

    def tuning_parts(self):
        """``(a, (b, gamma))``: ``h_t = a (b + t)^-gamma``."""
        return self.a, (float(self.b), float(self.gamma))


def _check_positive(name, value):
    check_number(name, value, low=0.0, strict=True)


def as_schedule(step_size):
    """A schedule from a positive number (a :class:`Constant` step) or a schedule object."""
    if isinstance(step_size, (Constant, PolynomialDecay)):
        return step_size
    if isinstance(step_size, bool) or not isinstance(step_size, numbers.Real):
        raise TypeError(
            f"step_size must be a positive number, ppzoo.inference.Constant(h) or "
            f"ppzoo.inference.PolynomialDecay(a, b, gamma), got {step_size!r}"
        )
    return Constant(check_number("step_size", step_size, low=0.0, strict=True))
