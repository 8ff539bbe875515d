"""Stochastic-gradient Hamiltonian Monte Carlo (SGHMC; Chen, Fox & Guestrin 2014), plain.

Underdamped Langevin dynamics with friction, in the paper's practical
parameterisation (its eq. 15: learning rate ``eta = epsilon^2``, momentum
decay ``alpha = epsilon C``, velocity ``v = epsilon M^-1 r``), preconditioned:

    v_{t+1}     = (1 - alpha) v_t - h_t M^-1 g_t + sqrt(2 alpha h_t T) L xi_t,
    theta_{t+1} = theta_t + v_{t+1},

with ``g_t`` SGLD's minibatch estimate of ``grad U(theta_t)`` (:mod:`.gradients`),
``L L' = M^-1`` and ``xi_t ~ N(0, I)``. ``h_t`` is the learning rate ``eta``:
the same number as the overdamped kernels' step size, so warmup adaptation
chooses it by the same rule (a fraction of ``1 / lambda_max``, smaller in
proportion for a friction below 0.1: :meth:`SGHMC.adapted_step_fraction`),
and a step of SGHMC with ``alpha = 1`` is an SGLD step. As ``h -> 0`` the chain's
stationary law is ``p(theta | x) ** (1 / T)``, with ``v ~ N(0, h T M^-1)``.
"Plain": the noise of the minibatch gradient is not estimated and
subtracted (the paper's ``beta-hat = 0``), so it adds ``h^2 Var(g)`` of
noise per step, which the friction damps like the injected noise; it
widens the stationary law slightly, as SGLD's does. The momentum lets a
chain travel about ``1 / alpha`` steps in one direction, where SGLD's
steps add up as a random walk. A step costs ``B`` per-datum gradient
evaluations.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, NamedTuple

from .base import LangevinKernel
from .diffusions import apply_factor, apply_inverse_mass
from .gradients import minibatch_gradient

__all__ = ["SGHMC", "SGHMCState", "REFERENCE_FRICTION"]

#: the friction at and above which warmup adaptation's step is the overdamped kernels' (below it,
#: proportionally smaller: :meth:`SGHMC.adapted_step_fraction`)
REFERENCE_FRICTION = 0.1


class SGHMCState(NamedTuple):
    """``position`` and ``velocity``: ``(C, D)``; ``step``: steps taken so far."""

    position: Any
    velocity: Any
    step: Any


@dataclasses.dataclass(frozen=True, kw_only=True)
class SGHMC(LangevinKernel):
    """Plain SGHMC; ``friction`` is ``alpha`` in ``(0, 1]`` (default 0.1), the fraction of the
    velocity lost per step. Other settings as in :class:`~ppzoo.inference.sgmcmc.base.LangevinKernel`."""

    friction: float = 0.1

    name = "sghmc"
    integrator = "underdamped"

    def __post_init__(self):
        super().__post_init__()
        # 0 would conserve energy and never mix; above 1 the velocity flips sign every step
        message = f"friction must be a number in (0, 1] (the fraction of the velocity lost per step), got {self.friction!r}"
        if isinstance(self.friction, bool) or not isinstance(self.friction, numbers.Real):
            raise TypeError(message)
        if not 0.0 < self.friction <= 1.0:  # NaN fails both
            raise ValueError(message)

    def adapted_step_fraction(self, dim: int, fraction: float) -> float:
        """``h lambda_max`` under warmup adaptation: ``fraction`` scaled by ``min(1, alpha / 0.1)``.

        Plain SGHMC does not subtract its minibatch gradient's noise: each step adds ``h^2 Var(g)``
        to the velocity against the ``2 alpha h T`` injected, a share that grows as ``h / alpha``,
        and the stationary law widens with it. Holding ``h / alpha`` at its value for
        :data:`REFERENCE_FRICTION` keeps that widening where it is for the default friction (on
        the zoo's neural network at friction 0.02: sds 25-47% wide at the overdamped step, 0-14%
        at a fifth of it)."""
        return fraction * min(1.0, self.friction / REFERENCE_FRICTION)

    def init_state(self, backend, position, rng, map_estimate=None):
        # the velocity starts at rest; warmup draws it towards its stationary law N(0, h T M^-1)
        return SGHMCState(position, position * 0.0, 0), rng, 0

    def update(self, backend, state, idx, noise, tuning):
        grad = minibatch_gradient(backend, state.position, idx)
        h = tuning.step_size_at(state.step)
        if tuning.inverse_mass is not None:
            grad, noise = apply_inverse_mass(tuning.inverse_mass, grad), apply_factor(tuning.factor, noise)
        alpha = self.friction
        velocity = (1.0 - alpha) * state.velocity - h * grad + (2.0 * alpha * h * self.temperature) ** 0.5 * noise
        position = state.position + velocity
        return SGHMCState(position, velocity, state.step + 1), self.info(position, h, idx.shape[1])
