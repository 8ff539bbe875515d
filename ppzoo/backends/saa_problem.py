"""What a PPL hands the refinement of a fit: its sample-average objective over one flat vector."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["SAAProblem"]


@dataclass
class SAAProblem:
    """A fit's parameters as one unconstrained vector and its sample-average objective.

    ``x0``: ``(P,)`` float64, the fit's parameters, unconstrained and flattened.
    ``evaluate(x, seed) -> (loss, grad (P,))``: the negative bound over the
    fixed draws of ``seed`` (float64 out; the PPL computes in its own precision).
    ``params_at(x)``: ``{name: constrained value}`` (NumPy), as ``Fit.params`` holds them.
    ``draws(x, num, seed) -> {site: (num, ...)}``: the guide's draws of the model's latents
    at ``x`` (constrained, NumPy), the same base noise for the same ``seed`` at every ``x``.
    """

    x0: np.ndarray
    evaluate: Callable
    params_at: Callable
    draws: Callable

    @property
    def size(self) -> int:
        return int(self.x0.shape[0])
