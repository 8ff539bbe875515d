"""Stochastic variance-reduced gradient Langevin dynamics (SVRG-LD; Dubey et al. 2016,
analysed by Kinoshita & Suzuki 2022).

Every ``m`` steps (``inner_loop``), at steps ``t = 0, m, 2m, ...``, the
current point becomes the snapshot ``theta~`` and its full gradient
``G = grad U(theta~)`` is computed; that step moves with ``G`` itself.
In between,

    v_t = (N / B) * sum_{i in I_t} [grad u_i(theta_t) - grad u_i(theta~)] + G,
    theta_{t+1} = theta_t - h * v_t + sqrt(2 h T) * xi_t,

with ``B`` indices drawn uniformly with replacement per chain and step; the
prior term is exact. Cost: ``N`` per refresh step, ``2 B`` otherwise.
Defaults ``m = ceil(sqrt(N))`` as in Kinoshita & Suzuki (2022), and ``B =
ceil(sqrt(N))`` too except on small data, where ppzoo's floor of 256 data
per batch applies (:data:`ppzoo.backends.layout.MIN_DEFAULT_BATCH`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from .base import RefreshingKernel
from .diffusions import langevin_step
from .gradients import anchored_gradient

__all__ = ["SVRGLD", "SVRGState"]


class SVRGState(NamedTuple):
    """``position``, ``snapshot``, ``snapshot_grad``: ``(C, D)``; ``step``: steps taken."""

    position: Any
    step: Any
    snapshot: Any
    snapshot_grad: Any


@dataclasses.dataclass(frozen=True, kw_only=True)
class SVRGLD(RefreshingKernel):
    """SVRG-LD. ``inner_loop``: ``m``, steps between full gradients (default ``ceil(sqrt(N))``);
    other settings as in :class:`~ppzoo.inference.sgmcmc.base.LangevinKernel`."""

    name = "svrg-ld"
    estimator = "svrg"

    def init_state(self, backend, position, rng, map_estimate=None):
        return SVRGState(position, 0, position, 0.0 * position), rng, 0

    def update(self, backend, state, idx, noise, tuning):
        n, b = backend.num_data, idx.shape[1]

        def refresh(position, snapshot, snapshot_grad):
            grad = backend.full_grad(position)
            return (grad, position, grad) + self.costs(position, n, full=True)

        def inner(position, snapshot, snapshot_grad):
            grad = anchored_gradient(backend, position, idx, snapshot, snapshot_grad)
            return (grad, snapshot, snapshot_grad) + self.costs(position, 2 * b, full=False)

        grad, snapshot, snapshot_grad, cost, full = backend.cond(
            self.refreshes(state.step), refresh, inner, state.position, state.snapshot, state.snapshot_grad
        )
        position, h = langevin_step(state.position, grad, noise, tuning, state.step, self.temperature)
        state = SVRGState(position, state.step + 1, snapshot, snapshot_grad)
        return state, self.info(position, h, cost, full)
