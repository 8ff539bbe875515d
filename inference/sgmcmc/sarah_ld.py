"""Stochastic recursive gradient Langevin dynamics (SARAH-LD; Kinoshita & Suzuki 2022).

At steps ``t = 0, m, 2m, ...`` (``m`` = ``inner_loop``) the estimate is the
full gradient, ``v_t = grad U(theta_t)``; in between it is updated
recursively,

    v_t = (N / B) * sum_{i in I_t} [grad u_i(theta_t) - grad u_i(theta_{t-1})] + v_{t-1},
    theta_{t+1} = theta_t - h * v_t + sqrt(2 h T) * xi_t,

with ``B`` indices drawn uniformly with replacement per chain and step; the
prior term is exact. Cost: ``N`` per refresh step, ``2 B`` otherwise.
Defaults ``B = m = ceil(sqrt(N))``, the choice under which the paper proves
gradient complexity ``O~((N + D N^(1/2) / eps) gamma^2 L^2 / alpha^2)`` to reach
``eps`` in KL divergence.

In practice the recursion's error is not refreshed by fresh minibatches as
SVRG-LD's is: it accumulates as a random walk over the inner loop, driven by
``theta_t - theta_{t-1}``, which the Langevin noise keeps at ``O(sqrt(h))``.
Measured in ``benchmarks/variance_reduction.py`` (logistic regression,
N = 10^5, 60 epochs, each method at its best step size): at d = 10 SARAH-LD
reaches SGLD's final error with 0.3 of SGLD's budget, SVRG-LD with 0.2; at
d = 100 it does not beat SGLD (error 8.2 against 1.8; SVRG-LD 0.46), and a
shorter inner loop (m = 20) only brings it to 1.7. Prefer SVRG-LD or SGLD-CV
for sampling at moderate step sizes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from .base import RefreshingKernel
from .gradients import sarah_gradient

__all__ = ["SARAHLD", "SARAHState"]


class SARAHState(NamedTuple):
    """``position``, ``previous_position``, ``estimate`` (``v_{t-1}``): ``(C, D)``; ``step``."""

    position: Any
    step: Any
    previous_position: Any
    estimate: Any


@dataclasses.dataclass(frozen=True)
class SARAHLD(RefreshingKernel):
    """SARAH-LD. ``inner_loop``: ``m``, steps between full gradients (default ``ceil(sqrt(N))``);
    other settings as in :class:`~ppzoo.inference.sgmcmc.base.LangevinKernel`."""

    name = "sarah-ld"

    def init_state(self, backend, position, rng, map_estimate=None):
        return SARAHState(position, 0, position, 0.0 * position), rng, 0

    def update(self, backend, state, idx, noise, tuning=None):
        h = self.step_size_at(state.step, tuning)
        n, b = backend.num_data, idx.shape[1]

        def refresh(position, previous_position, estimate):
            return (backend.full_grad(position),) + self.costs(position, n, full=True)

        def recurse(position, previous_position, estimate):
            grad = sarah_gradient(backend, position, previous_position, estimate, idx)
            return (grad,) + self.costs(position, 2 * b, full=False)

        grad, cost, full = backend.cond(
            self.refreshes(state.step), refresh, recurse, state.position, state.previous_position, state.estimate
        )
        position = self.move(backend, state.position, grad, h, noise, tuning)
        state = SARAHState(position, state.step + 1, state.position, grad)
        return state, self.info(position, h, cost, full)
