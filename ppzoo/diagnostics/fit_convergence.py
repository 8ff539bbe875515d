"""Whether an SVI fit levelled off: the trend of its own loss over its last steps.

A fit's loss ``L_t`` (the negative objective, one noisy estimate per step) is
smoothed over the last ``W`` steps of ``T`` (``W = max(MIN_WINDOW, T / 5)``,
all of them for shorter fits): the window is cut into :data:`BLOCKS` blocks,
and a straight line is fitted to the block means ``m_j`` against the blocks'
centres by least squares. Block means, not single steps, carry the noise: a
step's loss is correlated with its neighbours' through the parameters, which
move slowly, so the slope's standard error is taken from the scatter of the
block means around the line (``BLOCKS - 2`` degrees of freedom).

The fit is still improving when the loss fell over the window by more than
:data:`SIGNIFICANCE` standard errors *and* by more than
:data:`MIN_IMPROVEMENT` nats. The second condition is the practical one: a
Gaussian guide whose mean is ``delta`` posterior sds from the optimum costs
``delta^2 / 2`` nats of KL, so a loss that still falls by 0.01 nats per window
is about 0.1 sd from where it is going, the target ppzoo holds its samplers
to. The report also gives the smoothed final loss (the last block's mean) and
the noise level (the sd of single steps around the line).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["LossTrend", "loss_trend", "FitConvergenceWarning", "MIN_WINDOW", "BLOCKS", "SIGNIFICANCE", "MIN_IMPROVEMENT", "MIN_STEPS"]

#: the window is at least this many steps (all of them in shorter fits)
MIN_WINDOW = 500
#: block means the trend is fitted to
BLOCKS = 10
#: a fall of more than this many standard errors is not noise
SIGNIFICANCE = 2.0
#: a fall of at most this many nats over the window is levelled off whatever its significance
MIN_IMPROVEMENT = 0.01
#: fewer steps than this give no verdict
MIN_STEPS = 2 * BLOCKS


class FitConvergenceWarning(UserWarning):
    """A fit whose loss was still falling when it ended."""


@dataclass(frozen=True)
class LossTrend:
    """The trend of a fit's loss over its last ``window`` steps.

    ``improvement``: how much the fitted line fell over the window (nats; negative if it
    rose), ``standard_error`` its standard error; ``final_loss``: the last block's mean
    loss; ``noise``: the sd of single steps around the line; ``levelled_off``: not still
    improving (see the module docstring); ``None`` fields when there were too few steps.
    """

    window: int
    improvement: float
    standard_error: float
    final_loss: float
    noise: float
    levelled_off: bool | None

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self, num_steps: int) -> str:
        """One sentence: how much the loss still fell, over which steps."""
        return (
            f"its loss fell by {self.improvement:.3g} ± {self.standard_error:.2g} nats over the last {self.window:,} "
            f"of {num_steps:,} steps (smoothed final loss {self.final_loss:.6g}, noise sd {self.noise:.2g} per step)"
        )


def loss_trend(losses) -> LossTrend:
    """:class:`LossTrend` of ``losses`` ``(T,)`` (finite, in step order)."""
    losses = np.asarray(losses, dtype=np.float64)
    total = losses.shape[0]
    if total < MIN_STEPS or not np.all(np.isfinite(losses)):
        final = float(losses[-1]) if total and np.isfinite(losses[-1]) else math.nan
        return LossTrend(total, math.nan, math.nan, final, math.nan, None)
    window = min(total, max(MIN_WINDOW, total // 5))
    per_block = window // BLOCKS
    window = per_block * BLOCKS
    recent = losses[total - window:]
    means = recent.reshape(BLOCKS, per_block).mean(axis=1)
    centres = (np.arange(BLOCKS) + 0.5) * per_block
    slope, intercept = np.polyfit(centres, means, 1)
    residual = means - (slope * centres + intercept)
    spread = float(np.sqrt(np.sum(residual**2) / (BLOCKS - 2)))
    slope_se = spread / float(np.sqrt(np.sum((centres - centres.mean()) ** 2)))
    steps = np.arange(window) + 0.5
    noise = float(np.std(recent - (slope * steps + intercept), ddof=2))
    improvement, standard_error = -slope * window, slope_se * window
    improving = improvement > SIGNIFICANCE * standard_error and improvement > MIN_IMPROVEMENT
    return LossTrend(window, float(improvement), float(standard_error), float(means[-1]), noise, not improving)
