"""Preconditioned SGLD with an RMSprop preconditioner (pSGLD; Li, Chen, Carlson & Carin 2016).

The paper's update, with ``eps`` its step, ``n`` the minibatch size and
``gbar = (1/n) sum_{i in I_t} grad log p(x_i | theta_t)``:

    V_t = alpha V_{t-1} + (1 - alpha) gbar (.) gbar,
    G_t = diag(1 / (lambda + sqrt(V_t))),
    theta_{t+1} = theta_t + (eps/2) [G_t (grad log p(theta_t) + N gbar) + Gamma_t] + N(0, eps G_t),

with ``Gamma_i = sum_j dG_ij / dtheta_j``. In ppzoo's convention
(:mod:`.diffusions`: ``theta' = theta - h grad U + sqrt(2 h T) xi``, so
``eps = 2 h``) one step is

    theta_{t+1} = theta_t - h G_t g_t + h Gamma_t + sqrt(2 h T) G_t^(1/2) xi_t,

``g_t`` SGLD's minibatch estimate of ``grad U`` (:func:`.gradients.minibatch_gradient`,
``B`` per-datum gradients) and ``xi_t ~ N(0, I)``. Choices made here:

* **Gamma is omitted**, as in the paper's practical algorithm (computing it
  needs the diagonal of the minibatch Hessian). While ``G`` changes, the
  chain is then biased: its drift lacks the term that makes ``exp(-U)``
  stationary for a position-dependent ``G``. Li et al. argue that the bias is
  small for ``alpha`` near 1 (``G`` then changes slowly) and account for it
  in their error bounds; unlike the discretisation bias, it does not shrink
  with the step size. With ``freeze=True``
  (the default) ``G`` is frozen at the end of warmup, so during sampling
  ``Gamma = 0`` exactly and the omission costs nothing: the draws follow
  preconditioned Langevin dynamics with a fixed ``M^-1``, whose stationary
  law is the posterior up to the step-size and minibatch-noise bias every
  SGLD variant has. ``freeze=False`` keeps adapting ``G`` while sampling, as
  in the paper, and keeps the bias.
* **The statistic** is ``(g_t / N)^2`` rather than ``gbar^2``: ``g_t / N =
  gbar + grad[-log p(theta)] / N``, so the prior's gradient enters divided
  by ``N`` (the sign of ``gbar`` does not matter once squared).
* **V starts from data, not zero.** The paper starts at ``V_0 = 0``, which
  makes the first steps' ``G`` up to ``1 / sqrt(1 - alpha)`` times its
  steady value. Here ``V`` is divided by ``1 - alpha^k`` after ``k``
  updates (Adam's bias correction), and the driver first runs
  ``prime_steps`` updates of ``V`` at the starting points without moving
  (``B`` per-datum gradients each, counted in ``grad_evals``).
* **With a base preconditioner** ``M^-1 = L L'`` (``inverse_mass``, or the
  one warmup adaptation chooses), pSGLD runs in the coordinates
  ``theta = L z``: ``V`` is the statistic of ``L' g_t / N`` and the step is
  ``theta' = theta - h L G L' g_t + sqrt(2 h T) L G^(1/2) xi``. With
  ``M = I`` this is the paper's update.

**With warmup adaptation** (``ppzoo.sample``'s default) the driver chooses
the start and the base ``M^-1`` as for the other kernels
(:mod:`.adaptation`); ``V`` is restarted (and primed again) whenever
``M^-1`` changes, since it lives in ``M``'s coordinates; ``h`` is
``0.1 / lambda_max`` of the Hessian preconditioned by ``L Gbar L'``, with
``Gbar`` from ``V`` averaged over the chains. At the end of warmup, with
``freeze=True``, ``L Gbar L'`` becomes a fixed ``M^-1`` for all chains and
``h`` is chosen for it once more; ``sample_stats.step_size`` records ``h``
and the posterior's attrs the frozen ``M^-1``. Without adaptation and
without a ``step_size``, ``h = 1 / lambda_max`` of the Hessian
preconditioned by ``Gbar`` after priming (at the starting points and the
origin), chosen again in the same way when ``G`` is frozen (``G`` grows as
the gradients shrink near the mode, so the first choice can be too large
for it). Under ``numpyro.infer.MCMC`` (no driver: no priming, no freezing)
a ``step_size`` must be given.

Defaults: ``alpha = 0.99`` as in Li et al., ``lambda = 1e-5``. Cost: ``B``
per step, as SGLD.

Measured (``tests/test_preconditioned_targets.py``, ``benchmarks/adaptation.py``):
after warmup adaptation, ``G`` is far from uniform in ``M``'s coordinates (it
evens out the minibatch noise of the gradient, which is not what sets the
curvature there), so the step that keeps its stiffest direction stable is
small for the others: on logistic regression of the raw breast-cancer
features pSGLD's effective sample size per step is SGLD's, 0.4 of SVRG-LD's
(whose steps cost three times as much there), and its accuracy a little
better than SGLD's (means within 0.14 sd and sds within 15% of NUTS, against
0.16 sd and 29%; SVRG-LD: 0.07 sd and 6%).
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from ppzoo.checks import check_count, check_flag, check_number

from .base import LangevinKernel
from .diffusions import Tuning, apply_factor, apply_factor_transpose, langevin_step, langevin_update
from .gradients import minibatch_gradient
from .preconditioner import Preconditioner

__all__ = ["PSGLD", "PSGLDState"]


class PSGLDState(NamedTuple):
    """``position`` and ``square_avg`` (``V``): ``(C, D)``; ``step``: Langevin steps taken;
    ``count``: updates of ``V`` since it was last restarted (for the bias correction)."""

    position: Any
    step: Any
    square_avg: Any
    count: Any


@dataclasses.dataclass(frozen=True, kw_only=True)
class PSGLD(LangevinKernel):
    """pSGLD (see the module docstring for the update and its conventions).

    Args:
        decay: ``alpha`` in (0, 1), the RMSprop average's decay (default 0.99).
        damping: ``lambda > 0``, added to ``sqrt(V)`` (default ``1e-5``).
        freeze: hold ``G`` fixed (averaged over chains) from the end of warmup on,
            so the draws target the posterior (default); ``False`` keeps adapting it.
        prime_steps: updates of ``V`` at the starting points before the first
            step (default 100, the average's horizon ``1 / (1 - alpha)`` at the default decay).

    Other settings as in :class:`~ppzoo.inference.sgmcmc.base.LangevinKernel`.
    """

    decay: float = 0.99
    damping: float = 1e-5
    freeze: bool = True
    prime_steps: int = 100
    #: set by :meth:`finish_warmup` when ``G`` has been folded into the preconditioner
    frozen: bool = dataclasses.field(default=False, repr=False)

    name = "psgld"
    learns_preconditioner = True

    def __post_init__(self):
        super().__post_init__()
        a = self.decay
        message = f"decay must be a number in (0, 1) (the RMSprop average's alpha), got {a!r}"
        if isinstance(a, bool) or not isinstance(a, numbers.Real):
            raise TypeError(message)
        if not 0 < a < 1:
            raise ValueError(message)
        check_number("damping", self.damping, low=0.0, strict=True)
        check_flag("freeze", self.freeze)
        check_count("prime_steps", self.prime_steps)

    def init_state(self, backend, position, rng, map_estimate=None):
        return PSGLDState(position, 0, 0.0 * position, 0), rng, 0

    # -- the rule -----------------------------------------------------------------
    def _accumulate(self, backend, state, gradient, factor):
        """``(L' g, V_t, k)``: the gradient in ``M``'s coordinates and the updated average."""
        gz = gradient if factor is None else apply_factor_transpose(factor, gradient)
        mean = gz / backend.num_data
        square_avg = self.decay * state.square_avg + (1.0 - self.decay) * (mean * mean)
        return gz, square_avg, state.count + 1

    def diagonal(self, square_avg, count):
        """``G = 1 / (lambda + sqrt(V / (1 - alpha^k)))``, elementwise, same shape as ``V``."""
        xp = array_api_compat.array_namespace(square_avg)
        corrected = square_avg / (1.0 - self.decay**count)
        return 1.0 / (self.damping + xp.sqrt(corrected))

    def update(self, backend, state, idx, noise, tuning):
        grad = minibatch_gradient(backend, state.position, idx)
        if self.frozen:  # G is part of the fixed M^-1 now
            position, h = langevin_step(state.position, grad, noise, tuning, state.step, self.temperature)
            return state._replace(position=position, step=state.step + 1), self.info(position, h, idx.shape[1])
        h = tuning.step_size_at(state.step)
        gz, square_avg, count = self._accumulate(backend, state, grad, tuning.factor)
        g = self.diagonal(square_avg, count)
        drift, kick = g * gz, g**0.5 * noise
        if tuning.factor is not None:
            drift, kick = apply_factor(tuning.factor, drift), apply_factor(tuning.factor, kick)
        position = langevin_update(state.position, drift, h, kick, self.temperature)
        state = PSGLDState(position, state.step + 1, square_avg, count)
        return state, self.info(position, h, idx.shape[1])

    # -- the driver's hooks -------------------------------------------------------------
    def prime_step(self, backend, state, idx, noise, tuning):
        """One update of ``V`` at the current positions, without moving (``B`` per chain)."""
        grad = minibatch_gradient(backend, state.position, idx)
        _, square_avg, count = self._accumulate(backend, state, grad, tuning.factor)
        return state._replace(square_avg=square_avg, count=count), self.info(state.position, 0.0, idx.shape[1])

    def prime(self, backend, state, rng, tuning):
        """``V = 0``, then ``prime_steps`` updates at the current positions in the coordinates of
        ``tuning``'s ``M^-1`` (``V`` lives there, so it starts again whenever ``M^-1`` changes)."""
        state = state._replace(square_avg=0.0 * state.square_avg, count=0)
        base = Tuning(tuning.step_size, tuning.inverse_mass, tuning.factor)  # priming does not move: no decay
        state, rng, _, infos = backend.run_block(self, state, rng, self.prime_steps, 1, base, method="prime_step")
        return state, rng, infos["grad_evals"].sum(axis=0).astype("int64")

    def step_preconditioner(self, backend, state, base):
        return base if self.frozen else self.learned_preconditioner(backend, state, base)

    def finish_warmup(self, backend, state, base):
        if not self.freeze or self.frozen:
            return self, base
        # the learned preconditioner becomes a fixed M^-1 shared by all chains
        return dataclasses.replace(self, frozen=True), self.learned_preconditioner(backend, state, base)

    def learned_preconditioner(self, backend, state, base=None) -> Preconditioner:
        """``L Gbar L'`` as a :class:`~.preconditioner.Preconditioner`, with ``Gbar`` from ``V``
        averaged over the chains whose ``V`` is finite; ``base`` is ``M^-1 = L L'`` (``None``: ``I``)."""
        v = np.asarray(backend.to_numpy(state.square_avg), dtype=np.float64)
        v = v[np.all(np.isfinite(v), axis=1)]
        if v.shape[0] == 0:
            raise FloatingPointError("every chain's pSGLD preconditioner is non-finite; pass a smaller step_size")
        count = int(np.asarray(backend.to_numpy(state.count)))
        g = self.diagonal(v.mean(axis=0), max(count, 1))
        if base is None:
            return Preconditioner(g)
        if not base.dense:
            return Preconditioner(base.inverse_mass * g)
        full = (base.factor * g) @ base.factor.T
        return Preconditioner((full + full.T) / 2)
