"""Whether an SVI fit levelled off: the trend of its own loss over its last steps.

A fit's loss ``L_t`` (the negative objective, one noisy estimate per step) is
smoothed over the last ``W`` of its ``T`` steps at its last learning rate
(``W = max(MIN_WINDOW, T / 2)``, all of them for shorter fits): the window is
cut into :data:`BLOCKS` blocks, and a straight line is fitted to the block means ``m_j`` against the blocks'
centres by least squares. Block means, not single steps, carry the noise: a
step's loss is correlated with its neighbours' through the parameters, which
move slowly, so the slope's standard error is taken from the scatter of the
block means around the line (``BLOCKS - 2`` degrees of freedom).

The fit is still improving when the loss fell over the window by more than
:data:`SIGNIFICANCE` standard errors *and* by more than
:data:`MIN_IMPROVEMENT` nats. A loss that rose by as much (:attr:`LossTrend.rising`;
an optimiser that ascends: a negative learning rate, a divergence) is reported by
``ppzoo.fit`` apart from this verdict. The second condition is the practical one: a
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

__all__ = [
    "LossTrend", "loss_trend", "FitConvergenceWarning", "PlateauSchedule",
    "MIN_WINDOW", "WINDOW_FRACTION", "BLOCKS", "SIGNIFICANCE", "MIN_IMPROVEMENT", "MIN_STEPS",
    "Refinement", "loss_rose", "draw_moments", "moment_gaps", "replicate_error", "MEAN_TOLERANCE", "SD_TOLERANCE", "CONFIDENCE",
]

#: the window is at least this many steps (all of them in shorter fits)
MIN_WINDOW = 500
#: ... and at least this fraction of the steps
WINDOW_FRACTION = 0.5
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

    @property
    def rising(self) -> bool:
        """The loss rose over the window by more than its noise and :data:`MIN_IMPROVEMENT` nats."""
        return bool(-self.improvement > SIGNIFICANCE * self.standard_error and -self.improvement > MIN_IMPROVEMENT)

    def describe(self, num_steps: int) -> str:
        """One sentence: how much the loss still fell (or rose), over which steps."""
        change = f"rose by {-self.improvement:.3g}" if self.rising else f"fell by {self.improvement:.3g}"
        return (
            f"its loss {change} ± {self.standard_error:.2g} nats over the last {self.window:,} "
            f"of {num_steps:,} steps (smoothed final loss {self.final_loss:.6g}, noise sd {self.noise:.2g} per step)"
        )


def loss_trend(losses, fraction: float = None) -> LossTrend:
    """:class:`LossTrend` of ``losses`` ``(T,)`` (finite, in step order) over their last
    ``max(MIN_WINDOW, fraction * T)`` steps (all of them in shorter runs; default
    :data:`WINDOW_FRACTION`)."""
    fraction = WINDOW_FRACTION if fraction is None else fraction
    losses = np.asarray(losses, dtype=np.float64)
    total = losses.shape[0]
    if total < MIN_STEPS or not np.all(np.isfinite(losses)):
        final = float(losses[-1]) if total and np.isfinite(losses[-1]) else math.nan
        return LossTrend(total, math.nan, math.nan, final, math.nan, None)
    window = min(total, max(MIN_WINDOW, int(fraction * total)))
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


def loss_rose(losses) -> bool:
    """Whether a fit ended with a higher loss than it started with: the median of its last tenth
    of steps above that of its first tenth by more than three robust sds of the first tenth's
    scatter (and :data:`MIN_IMPROVEMENT` nats). A constant objective that an optimiser descends
    never does; one that ascends (a negative learning rate) or diverges does, however noisy."""
    losses = np.asarray(losses, dtype=np.float64)
    losses = losses[np.isfinite(losses)]
    tenth = losses.shape[0] // 10
    if tenth < 2:
        return False
    first, last = losses[:tenth], losses[-tenth:]
    spread = 1.4826 * float(np.median(np.abs(first - np.median(first))))
    return bool(np.median(last) - np.median(first) > max(3.0 * spread, MIN_IMPROVEMENT))


class PlateauSchedule:
    """The default learning-rate schedule and stopping rule of ``ppzoo.fit``, judged by :func:`loss_trend`.

    ``first_rate(param_names)`` gives the first learning rate once the loop knows
    the parameters (``None``: the optimiser is the user's, and its learning rate
    is left alone). Every ``check_every`` steps the trend of the loss since the
    learning rate last changed is checked (:func:`loss_trend` over the last
    ``fraction`` of those steps), once the current rate has run at least
    :data:`MIN_WINDOW` steps and, after a reduction, ``growth`` times as many
    steps as the rate before it. When the loss levelled off, the learning rate
    is multiplied by ``factor``, at most ``reductions`` times (only with
    ``reduce``, and never for the user's optimiser); when it levelled off and
    no reduction is left, the fit stops if ``stop`` is set.

    Why: a constant step leaves the iterates jittering about the optimum with a
    spread that grows with the step, so each reduction shrinks the jitter once
    the fast phase has done the travelling. Along the flat directions of a
    correlated posterior the iterates creep, and the loss falls by far less per
    window than its noise: judged over the last fifth of each phase, a linear
    regression's ``AutoMultivariateNormal`` fit stopped 0.16 posterior sds from
    the posterior mean; over the last half, 0.05
    (``benchmarks/fit_convergence.py``). A longer window sees a slow fall that a
    short one cannot tell from noise; so does a later phase that runs at least
    as long as the one before.

    The loops call ``begin(param_names)`` before the first update (it returns
    the learning rate to set, or ``None``), ``observe(loss)`` after each step,
    and ``decide()`` between blocks of steps (it returns ``(new learning rate or
    None, stop)``). ``changes``: ``[(step, learning rate)]`` of the default
    optimiser, empty for the user's.
    """

    def __init__(self, first_rate=None, *, reduce=True, stop=False, factor=0.1, reductions=2, check_every=250, growth=1.0,
                 fraction=WINDOW_FRACTION):
        self.first_rate = first_rate
        self.fraction = fraction
        self.growth = growth
        self.reduce, self.stop, self.factor, self.reductions = reduce, stop, factor, reductions
        self.check_every = check_every
        self.losses: list[float] = []
        self.changes: list[tuple[int, float]] = []
        self.learning_rate = None
        self.stopped = False
        self._last_check = 0

    @property
    def since_change(self) -> int:
        """The step from which the current learning rate held."""
        return self.changes[-1][0] if self.changes else 0

    def begin(self, param_names):
        if self.first_rate is None:
            return None
        self.learning_rate = float(self.first_rate(param_names))
        self.changes = [(0, self.learning_rate)]
        return self.learning_rate

    def _min_phase(self) -> int:
        """Steps the current learning rate runs at least."""
        if len(self.changes) < 2:
            return MIN_WINDOW
        previous = self.changes[-1][0] - self.changes[-2][0]
        return max(MIN_WINDOW, int(self.growth * previous))

    def observe(self, loss: float) -> None:
        self.losses.append(loss)

    def decide(self):
        t = len(self.losses)
        if t - self._last_check < self.check_every or t - self.since_change < self._min_phase():
            return None, False
        self._last_check = t
        if not loss_trend(self.losses[self.since_change:], self.fraction).levelled_off:
            return None, False
        if self.reduce and self.learning_rate is not None and len(self.changes) <= self.reductions:
            self.learning_rate *= self.factor
            self.changes.append((t, self.learning_rate))
            return self.learning_rate, False
        self.stopped = self.stop
        return None, self.stop


#: the fitted guide's means must be within this many of its sds of the family's optimum ...
MEAN_TOLERANCE = 0.05
#: ... and its sds within this fraction of the optimum's
SD_TOLERANCE = 0.05
#: the confidence with which the worst coordinate's error is bounded
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Refinement:
    """How a fit was refined on its sample-average objective, and how close that brought it to the optimum.

    ``particles``: draws in each fixed sample (``M``); ``replicates``: independent
    samples, each minimised from the stochastic fit's end (``iterations`` and
    ``converged`` per replicate); the result is their average. ``mean_error`` /
    ``sd_error``: the estimated worst error of the result over the guide's
    latent coordinates, at :data:`CONFIDENCE` (in sds of the guide, and as a
    fraction of its sd); ``moved_mean`` / ``moved_sd``: how far the refinement
    moved the stochastic fit's answer, in the same units (the worst coordinate).
    ``within``: both errors within :data:`MEAN_TOLERANCE` / :data:`SD_TOLERANCE`
    and every replicate converged.
    """

    particles: int
    replicates: int
    iterations: tuple
    converged: tuple
    mean_error: float
    sd_error: float
    moved_mean: float
    moved_sd: float
    coordinates: int

    @property
    def within(self) -> bool:
        return bool(all(self.converged) and self.mean_error <= MEAN_TOLERANCE and self.sd_error <= SD_TOLERANCE)

    def to_dict(self) -> dict:
        return {**asdict(self), "within": self.within}

    def describe(self) -> str:
        return (
            f"refined on {self.replicates} fixed samples of {self.particles:,} draws: worst estimated error "
            f"{self.mean_error:.3f} sd in a mean and {100 * self.sd_error:.1f}% in an sd over {self.coordinates:,} "
            f"coordinates ({100 * CONFIDENCE:.0f}% bound; tolerances {MEAN_TOLERANCE} sd and {100 * SD_TOLERANCE:.0f}%)"
            + ("" if all(self.converged) else "; the quasi-Newton refinement did not converge")
        )


def draw_moments(latents) -> tuple[np.ndarray, np.ndarray]:
    """``(means, sds)`` ``(C,)`` of every latent coordinate over the draws ``{site: (S, ...)}``."""
    flat = np.concatenate([np.asarray(v, dtype=np.float64).reshape(np.shape(v)[0], -1) for v in latents.values()], axis=1)
    return flat.mean(axis=0), flat.std(axis=0)


def moment_gaps(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Per coordinate, guide ``a`` against guide ``b`` (:func:`draw_moments`, the same base noise):
    ``((mean_a - mean_b) / sd, sd_a / sd_b - 1)`` with ``sd`` their average sd. A point mass
    (``sd = 0``) has its mean gap relative to the larger mean instead, and no sd gap."""
    (mean_a, sd_a), (mean_b, sd_b) = a, b
    sd = 0.5 * (sd_a + sd_b)
    degenerate = sd <= 1e-12 * np.maximum(np.abs(mean_a) + np.abs(mean_b), 1e-30)
    scale = np.where(degenerate, np.maximum(np.maximum(np.abs(mean_a), np.abs(mean_b)), 1e-30), sd)
    mean_gap = (mean_a - mean_b) / scale
    sd_gap = np.where(degenerate, 0.0, sd_a / np.where(sd_b > 0, sd_b, 1.0) - 1.0)
    return mean_gap, sd_gap


def replicate_error(gaps: np.ndarray, replicates: int) -> float:
    """The worst coordinate's error of the average of ``R`` replicates, at :data:`CONFIDENCE`.

    ``gaps`` ``(R - 1, C)``: each later replicate's signed gap to the first, per
    coordinate. Each replicate's error ``e_r`` is taken ``N(0, s^2)`` with ``s``
    pooled over coordinates: ``s^2`` is the replicates' variance about their
    mean (``(R - 1) C`` degrees of freedom; the gaps give the deviations,
    ``e_r - mean(e) = d_r - mean(d)`` with ``d_1 = 0``), the average's error
    has sd ``s / sqrt(R)``, and its worst over ``C`` coordinates is bounded by
    the Bonferroni quantile of Student's t, ``t_{(R-1) C}(1 - (1 - CONFIDENCE) / (2 C))``.
    """
    from scipy.stats import t

    gaps = np.atleast_2d(np.asarray(gaps, dtype=np.float64))
    coordinates = gaps.shape[-1]
    full = np.concatenate([np.zeros((1, coordinates)), gaps], axis=0)
    dof = (replicates - 1) * coordinates
    s = float(np.sqrt(np.sum((full - full.mean(axis=0)) ** 2) / dof))
    quantile = float(t.ppf(1.0 - (1.0 - CONFIDENCE) / (2.0 * coordinates), dof))
    return float(quantile * s / np.sqrt(replicates))
