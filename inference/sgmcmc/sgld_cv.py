"""SGLD with control variates (SGLD-CV; Baker, Fearnhead, Fox & Nemeth 2019).

First a MAP estimate ``theta_hat`` is found (minibatch Adam from each chain's
starting point, the PPL's own optimiser) and the full gradient
``G = grad U(theta_hat)`` computed once; each chain then starts at its
``theta_hat``, as Baker et al. do (the estimate is most precise there, and
burn-in is short; chains from one mode start close together, so R-hat
reflects their spread only after they have moved). Then every step

    v_t = (N / B) * sum_{i in I_t} [grad u_i(theta_t) - grad u_i(theta_hat)] + G,
    theta_{t+1} = theta_t - h * v_t + sqrt(2 h T) * xi_t,

with ``B`` indices drawn uniformly with replacement per chain and step. The
estimate's variance shrinks as ``theta_t`` nears ``theta_hat``, which is why
it pays off when the posterior concentrates. Cost: ``map_steps * B + N``
once, then ``2 B`` per step; all of it is counted in ``grad_evals``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np

from ppzoo.checks import check_count, check_number

from .adaptation import map_steps_default
from .base import LangevinKernel
from .diffusions import langevin_step
from .gradients import anchored_gradient

__all__ = ["SGLDCV", "SGLDCVState"]


class SGLDCVState(NamedTuple):
    """``position``, ``centre`` (the MAP), ``centre_grad`` (``grad U`` there): ``(C, D)``; ``step``."""

    position: Any
    step: Any
    centre: Any
    centre_grad: Any


@dataclasses.dataclass(frozen=True, kw_only=True)
class SGLDCV(LangevinKernel):
    """SGLD-CV.

    Args:
        map_steps: Adam steps of the MAP search (default
            ``max(1000, 5 * ceil(N / B))``, five passes over the data at least).
        map_learning_rate: Adam's initial learning rate (cosine-decayed to 1/100 of it).

    Other settings as in :class:`~ppzoo.inference.sgmcmc.base.LangevinKernel`.
    """

    map_steps: int | None = None
    map_learning_rate: float = 0.05

    name = "sgld-cv"
    estimator = "control-variate"

    def __post_init__(self):
        super().__post_init__()
        if self.map_steps is not None:
            check_count("map_steps", self.map_steps)
        check_number("map_learning_rate", self.map_learning_rate, low=0.0, strict=True)

    def setup(self, backend):
        kernel = super().setup(backend)
        steps = self.map_steps or map_steps_default(backend.num_data, kernel.batch_size)
        return dataclasses.replace(kernel, map_steps=steps)

    def init_state(self, backend, position, rng, map_estimate=None):
        if map_estimate is not None:  # found by warmup adaptation; the chains start near it
            centre = backend.asarray(map_estimate)
            state = SGLDCVState(position, 0, centre, backend.full_grad(centre))
            return state, rng, backend.num_data
        centre, rng = backend.minimize(position, rng, self.map_steps, self.map_learning_rate, self.batch_size)
        if not np.all(np.isfinite(backend.to_numpy(centre))):
            raise ValueError(
                f"SGLD-CV's MAP search ended at a non-finite point (map_steps={self.map_steps}, "
                f"map_learning_rate={self.map_learning_rate}); lower map_learning_rate"
            )
        state = SGLDCVState(centre, 0, centre, backend.full_grad(centre))
        return state, rng, self.map_steps * self.batch_size + backend.num_data

    def update(self, backend, state, idx, noise, tuning):
        grad = anchored_gradient(backend, state.position, idx, state.centre, state.centre_grad)
        position, h = langevin_step(state.position, grad, noise, tuning, state.step, self.temperature)
        return state._replace(position=position, step=state.step + 1), self.info(position, h, 2 * idx.shape[1])
