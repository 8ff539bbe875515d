"""Stochastic-gradient Langevin dynamics (Welling & Teh 2011).

    theta_{t+1} = theta_t - h_t * g_t + sqrt(2 * h_t * T) * xi_t,
    g_t = grad[-log p(theta_t)] + (N / B) * sum_{i in I_t} grad[-log p(x_i | theta_t)],

with ``I_t`` a fresh minibatch of ``B`` indices drawn uniformly with
replacement, independently for every chain and step, and ``xi_t ~ N(0, I)``.
``h_t`` is constant or decays polynomially (:mod:`.schedules`). A step costs
``B`` per-datum gradient evaluations.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from .base import LangevinKernel
from .diffusions import langevin_step
from .gradients import minibatch_gradient

__all__ = ["SGLD", "SGLDState"]


class SGLDState(NamedTuple):
    """``position``: ``(C, D)`` unconstrained parameters; ``step``: steps taken so far."""

    position: Any
    step: Any


@dataclasses.dataclass(frozen=True, kw_only=True)
class SGLD(LangevinKernel):
    """SGLD; settings as in :class:`~ppzoo.inference.sgmcmc.base.LangevinKernel`."""

    name = "sgld"

    def init_state(self, backend, position, rng, map_estimate=None):
        return SGLDState(position, 0), rng, 0

    def update(self, backend, state, idx, noise, tuning):
        grad = minibatch_gradient(backend, state.position, idx)
        position, h = langevin_step(state.position, grad, noise, tuning, state.step, self.temperature)
        return SGLDState(position, state.step + 1), self.info(position, h, idx.shape[1])
