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
``eps`` in KL divergence, except that ``B`` is at least 256 (or N) on small
data (:data:`ppzoo.backends.layout.MIN_DEFAULT_BATCH`).

In practice the recursion's error is not refreshed by fresh minibatches as
SVRG-LD's is: it accumulates as a random walk over the inner loop, driven by
``theta_t - theta_{t-1}``, which the Langevin noise keeps at ``O(sqrt(h))``.
Measured in ``benchmarks/variance_reduction.py`` (logistic regression,
N = 10^5, B = 317, 60 epochs, each method at its best step size): at d = 10
SARAH-LD reaches SGLD's final error with 0.3 of SGLD's budget, SVRG-LD with
0.2. At d = 100, from ppzoo's random start, no inner loop m in {2, 5, 20, 317}
and step ``h lambda_max`` in {0.002, 0.005, 0.01, 0.05} reaches SGLD's final
error (best 8.4 against 1.8, in mean + covariance error): short loops pay a
full gradient every few steps and spend the budget on burn-in, long ones
accumulate the recursion's error. From a start at the posterior mean (no
burn-in) SARAH-LD beats SGLD (0.93 against 1.30, at m = 5 and
``h lambda_max = 0.2``) and reaches SGLD's final error with 0.6 of its
budget; SVRG-LD and SGLD-CV need 0.2. Prefer SVRG-LD or SGLD-CV for sampling
in many dimensions.

**Under warmup adaptation** the accumulated error is bounded by the choice of
``h`` and ``m``. On a Gaussian target whose preconditioned Hessian is about
``lambda I``, the recursion's error after ``j`` steps has variance about
``2 j h D lambda^2 / B`` per coordinate (each step moves ``theta`` by about
``sqrt(2 h D)``, and a minibatch of ``B`` Hessian-vector differences misses
``lambda |dtheta| / sqrt(B)`` of it); while the chain relaxes faster than the
loop, it follows the error quasi-statically, displaced by ``e / lambda``, so
over a loop the stationary variance grows by a fraction of about

    (m - 1) h lambda D / B

(measured on the condition-number-``10^4`` Gaussian of
``tests/test_preconditioned_targets.py``: 25-28% at ``h lambda = 0.1``,
``m = B = 32``, ``D = 5``, where this gives 48%, a bound since the chain
relaxes over about 10 steps, not instantly). SVRG-LD's error is fresh at every
step and adds only ``h^2 lambda^2 (m / 2) D / B``, about ``h lambda / 2`` of
this. With adaptation, and no ``inner_loop`` given, SARAH-LD therefore takes
``h lambda_max = min(STEP_FRACTION, RECURSION_ERROR B / ((m - 1) D))``, at
most :data:`RECURSION_ERROR` (3%) of added variance, and the ``m`` (from 1 to
``ceil(sqrt(N))``) that minimises the work per unit of Langevin time,
``(N + 2 B (m - 1)) / (m h)``. Short loops win: ``m = 3`` for ``D = 5``,
``N = 1000``, ``B = 32``, and ``m = 1`` (a full gradient at every step: the
unadjusted Langevin algorithm, exact gradients) once ``D`` exceeds about
``0.6 B`` (at ``m = 2`` the cap is ``0.03 B / D`` and a step costs
``(N + 2 B) / 2``, against ``N`` at ``h lambda = 0.1``). A user-given
``inner_loop`` is kept, with ``h`` capped by the same bound.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

from .adaptation import STEP_FRACTION
from .base import RefreshingKernel
from .diffusions import langevin_step
from .gradients import sarah_gradient

__all__ = ["SARAHLD", "SARAHState", "RECURSION_ERROR"]

#: under warmup adaptation, the added stationary variance (as a fraction) that the recursion's
#: accumulated error may cost, by the estimate in the module docstring
RECURSION_ERROR = 0.03


class SARAHState(NamedTuple):
    """``position``, ``previous_position``, ``estimate`` (``v_{t-1}``): ``(C, D)``; ``step``."""

    position: Any
    step: Any
    previous_position: Any
    estimate: Any


@dataclasses.dataclass(frozen=True, kw_only=True)
class SARAHLD(RefreshingKernel):
    """SARAH-LD. ``inner_loop``: ``m``, steps between full gradients (default ``ceil(sqrt(N))``);
    other settings as in :class:`~ppzoo.inference.sgmcmc.base.LangevinKernel`."""

    name = "sarah-ld"
    estimator = "sarah"

    def init_state(self, backend, position, rng, map_estimate=None):
        return SARAHState(position, 0, position, 0.0 * position), rng, 0

    @staticmethod
    def _fraction_bound(batch_size, inner_loop, dim):
        """``RECURSION_ERROR B / ((m - 1) D)``; no bound for ``m = 1`` (exact gradients)."""
        if inner_loop <= 1:
            return math.inf
        return RECURSION_ERROR * batch_size / ((inner_loop - 1) * dim)

    def for_adaptation(self, backend):
        """With no ``inner_loop`` given: the ``m`` that minimises ``(N + 2 B (m - 1)) / (m h(m))``,
        ``h(m) lambda_max = min(STEP_FRACTION, RECURSION_ERROR B / ((m - 1) D))``."""
        if self.inner_loop is not None:
            return self
        n, dim = backend.num_data, backend.dim
        b = self.batch_size if self.batch_size is not None else backend.layout.default_batch_size()

        def work_per_time(m):
            return (n + 2 * b * (m - 1)) / m / min(STEP_FRACTION, self._fraction_bound(b, m, dim))

        best = min(range(1, math.ceil(math.sqrt(n)) + 1), key=work_per_time)
        return dataclasses.replace(self, inner_loop=best)

    def adapted_step_fraction(self, dim, fraction):
        return min(fraction, self._fraction_bound(self.batch_size, self.inner_loop, dim))

    def update(self, backend, state, idx, noise, tuning):
        n, b = backend.num_data, idx.shape[1]

        def refresh(position, previous_position, estimate):
            return (backend.full_grad(position),) + self.costs(position, n, full=True)

        def recurse(position, previous_position, estimate):
            grad = sarah_gradient(backend, position, previous_position, estimate, idx)
            return (grad,) + self.costs(position, 2 * b, full=False)

        grad, cost, full = backend.cond(
            self.refreshes(state.step), refresh, recurse, state.position, state.previous_position, state.estimate
        )
        position, h = langevin_step(state.position, grad, noise, tuning, state.step, self.temperature)
        state = SARAHState(position, state.step + 1, state.position, grad)
        return state, self.info(position, h, cost, full)
