"""Stochastic-gradient Langevin dynamics (Welling & Teh 2011).

    theta_{t+1} = theta_t - h_t * g_t + sqrt(2 * h_t * T) * xi_t,
    g_t = grad[-log p(theta_t)] + (N / B) * sum_{i in I_t} grad[-log p(x_i | theta_t)],

with ``I_t`` a fresh minibatch of ``B`` indices drawn uniformly with
replacement, independently for every chain and step, and ``xi_t ~ N(0, I)``.
``h_t`` is constant or decays polynomially (:mod:`.schedules`). A step costs
``B`` per-datum gradient evaluations.

The kernel is a pair of pure functions in the BlackJAX style,
``init(backend, position) -> state`` and
``step(backend, state, idx, noise) -> (state, info)``, over chain-batched
arrays; the backend drives them (``jit`` + ``lax`` loops for JAX, a loop over
chain-batched tensors for torch).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import array_api_compat

from .diffusions import langevin_update
from .gradients import minibatch_gradient
from .schedules import as_schedule
from .step_size import default_step_size

__all__ = ["SGLD", "SGLDState"]


class SGLDState(NamedTuple):
    """``position``: ``(C, D)`` unconstrained parameters; ``step``: steps taken so far."""

    position: Any
    step: Any


@dataclasses.dataclass(frozen=True)
class SGLD:
    """SGLD settings; the update rule itself is :meth:`step`.

    Args:
        step_size: a positive number, a schedule ``t -> h_t`` (e.g.
            :class:`~ppzoo.inference.sgmcmc.schedules.PolynomialDecay`), or
            ``None`` for ``1 / lambda_max`` estimated from the curvature at
            the starting points and the origin (:mod:`.step_size`).
        batch_size: ``B``; ``None`` for the model's own ``subsample_size`` if
            it declares one, else ``ceil(sqrt(N))``.
        temperature: ``T >= 0``; the chain targets ``p(theta | x) ** (1 / T)``.
    """

    step_size: Any = None
    batch_size: int | None = None
    temperature: float = 1.0

    name = "sgld"

    def __post_init__(self):
        if self.step_size is not None:
            as_schedule(self.step_size)  # validates
        if self.batch_size is not None and (
            isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size <= 0
        ):
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) or not self.temperature >= 0 or math.isinf(self.temperature):
            raise ValueError(f"temperature must be a finite number >= 0, got {self.temperature!r}")

    # -- binding to a model ----------------------------------------------------
    def setup(self, backend, positions):
        """Resolve the defaults for ``backend``; returns ``(kernel, grad_evals_spent_per_chain)``."""
        layout = backend.layout
        batch_size = self.batch_size if self.batch_size is not None else layout.default_batch_size()
        if batch_size > layout.num_data:
            raise ValueError(
                f"batch_size must be at most N={layout.num_data} (the size of the data plate), got {batch_size}"
            )
        declared = layout.declared_subsample_size
        if declared is not None and self.batch_size is not None and declared != self.batch_size:
            raise ValueError(
                f"batch_size={self.batch_size} differs from the subsample_size={declared} that the model "
                f"declares on plate {layout.data_plate!r}; drop one of them"
            )
        cost = 0
        step_size = self.step_size
        if step_size is None:
            step_size, cost = default_step_size(backend, backend.to_numpy(positions))
        return dataclasses.replace(self, step_size=step_size, batch_size=batch_size), cost

    # -- the update rule ---------------------------------------------------------
    def init(self, backend, position):
        return SGLDState(position, 0)

    def step(self, backend, state, idx, noise):
        """One SGLD step for all chains; ``idx`` ``(C, B)``, ``noise`` ``(C, D)``."""
        xp = array_api_compat.array_namespace(state.position)
        h = as_schedule(self.step_size)(state.step)
        grad, cost = minibatch_gradient(backend, state.position, idx)
        position = langevin_update(state.position, grad, h, noise, self.temperature)
        num_chains = position.shape[0]
        info = {
            "step_size": xp.zeros(num_chains, dtype=position.dtype) + h,
            "grad_evals": xp.full((num_chains,), cost, dtype=xp.int32),
            "diverging": ~xp.all(xp.isfinite(position), axis=1),
        }
        return SGLDState(position, state.step + 1), info
