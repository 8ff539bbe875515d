"""What every ppzoo Langevin kernel shares: settings, their checks, defaults, and the step record.

A kernel is a frozen dataclass of settings with three methods the driver
calls (BlackJAX-style pure functions over chain-batched arrays, ``C`` chains,
``D`` unconstrained dimensions, ``B`` minibatch size):

* ``setup(backend, positions) -> (kernel, cost)``: resolve the defaults
  (batch size, step size) for one model;
* ``init_state(backend, positions, rng, map_estimate=None) -> (state, rng, cost)``:
  the state before the first step (SGLD-CV finds its MAP here, unless given);
* ``update(backend, state, idx, noise, tuning=None) -> (state, info)``: one
  step of all chains, with ``idx`` ``(C, B)`` minibatch indices and ``noise``
  ``(C, D)`` standard normal draws (``tuning``: step size and preconditioner
  as data, during warmup adaptation).

``cost`` is per-datum gradient evaluations per chain. ``info`` holds
``(C,)`` arrays: ``step_size``, ``grad_evals`` (this step's cost),
``diverging`` and ``full_gradient`` (whether the step used a full gradient).

Every kernel is also a NumPyro ``MCMCKernel`` (through
:class:`ppzoo.backends.numpyro_mcmc.NumPyroMCMCAdapter`), so
``numpyro.infer.MCMC(SARAHLD(model), ...)`` runs it.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import array_api_compat

from ppzoo.backends.numpyro_mcmc import NumPyroMCMCAdapter

from .diffusions import langevin_update
from .preconditioner import apply_factor, apply_inverse_mass, as_preconditioner
from .schedules import as_schedule
from .step_size import default_step_size

__all__ = ["LangevinKernel", "RefreshingKernel", "check_positive_int"]


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclasses.dataclass(frozen=True)
class LangevinKernel(NumPyroMCMCAdapter):
    """Settings shared by the Langevin kernels.

    Args:
        model: a NumPyro program, needed only when the kernel is run by
            ``numpyro.infer.MCMC`` (``ppzoo.sample`` passes the model itself).
        step_size: ``h``: a positive number, a schedule ``t -> h_t``, or
            ``None`` for ``1 / lambda_max`` of the potential's Hessian
            (:mod:`.step_size`).
        batch_size: ``B``; ``None`` for the model's own ``subsample_size`` if it
            declares one, else ``ceil(sqrt(N))``.
        temperature: ``T >= 0``; noise ``sqrt(2 h T) xi``: the chain targets
            ``p(theta | x) ** (1 / T)`` (``T < 1``: a "cold" posterior; ``T -> 0``:
            optimisation).
        data_plate: the data plate's name, when ``numpyro.infer.MCMC`` runs the kernel.
        inverse_mass: the preconditioner ``M^-1`` (``theta' = theta - h M^-1 g +
            sqrt(2 h T) L xi``, ``L L' = M^-1``): a ``(D,)`` vector of positive
            numbers (diagonal), a ``(D, D)`` symmetric positive-definite matrix
            (dense), or ``None`` for ``M = I`` (or for warmup adaptation to choose it).
    """

    model: Callable | None = None
    step_size: Any = None
    batch_size: int | None = None
    temperature: float = 1.0
    data_plate: str | None = None
    inverse_mass: Any = None

    #: method name used by ``ppzoo.sample`` and in ``InferenceData`` attrs
    name = "langevin"
    #: whether the kernel estimates a preconditioner of its own as it runs (pSGLD); the
    #: driver then primes it, chooses ``h`` for it and freezes it (:mod:`.psgld`)
    learns_preconditioner = False

    def __post_init__(self):
        if self.step_size is not None:
            as_schedule(self.step_size)  # validates
        if self.batch_size is not None:
            check_positive_int("batch_size", self.batch_size)
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t >= 0 or math.isinf(t):
            raise ValueError(f"temperature must be a finite number >= 0, got {t!r}")
        # a Preconditioner (hashable by identity: compiled blocks are cached per kernel)
        object.__setattr__(self, "inverse_mass", as_preconditioner(self.inverse_mass))

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
        if self.inverse_mass is not None and self.inverse_mass.dim != backend.dim:
            raise ValueError(
                f"inverse_mass must have one row per unconstrained dimension, D={backend.dim}, "
                f"got shape {self.inverse_mass.inverse_mass.shape}"
            )
        cost = 0
        step_size = self.step_size
        if step_size is None:
            step_size, cost = default_step_size(backend, backend.to_numpy(positions), self.inverse_mass)
        # stored as a schedule, so each step calls it without re-validating a number
        return dataclasses.replace(self, step_size=as_schedule(step_size), batch_size=batch_size), cost

    @abc.abstractmethod
    def init_state(self, backend, position, rng, map_estimate=None):
        """The state before the first step; returns ``(state, rng, cost_per_chain)``.

        ``map_estimate``: ``(C, D)`` MAPs already found by warmup adaptation
        (SGLD-CV uses them instead of searching again; the others ignore them).
        """

    @abc.abstractmethod
    def update(self, backend, state, idx, noise, tuning=None):
        """One step of every chain; returns ``(state, info)``. ``tuning`` (a
        :class:`~.preconditioner.Tuning`) overrides the step size and preconditioner."""

    # -- helpers for the rules ---------------------------------------------------
    def move(self, backend, position, gradient, step_size, noise, tuning=None):
        """The Langevin step with this kernel's temperature, preconditioned by ``M^-1``
        (``tuning``'s if given, else the kernel's own, if any)."""
        if tuning is not None:
            minv, factor = tuning.inverse_mass, tuning.factor
        elif self.inverse_mass is not None:
            minv, factor = self.inverse_mass.arrays(backend)
        else:
            return langevin_update(position, gradient, step_size, noise, self.temperature)
        return langevin_update(
            position, apply_inverse_mass(minv, gradient), step_size, apply_factor(factor, noise), self.temperature
        )

    def for_adaptation(self, backend):
        """This kernel with its unset defaults chosen for warmup adaptation, before :meth:`setup`
        (SARAH-LD chooses its inner loop there); ``self`` for kernels with nothing to choose."""
        return self

    def adapted_step_fraction(self, dim: int, fraction: float) -> float:
        """The fraction ``h lambda_max`` that warmup adaptation uses, given its default ``fraction``
        and ``D = dim``: ``fraction`` itself unless the kernel's gradient error calls for less."""
        return fraction

    def step_size_at(self, step, tuning=None):
        """``h_t`` for step ``t`` (a traced integer under JAX); ``tuning.step_size`` if given."""
        if tuning is not None:
            return tuning.step_size
        return as_schedule(self.step_size)(step)

    @staticmethod
    def costs(position, value, full: bool):
        """``(grad_evals, full_gradient)`` arrays of shape ``(C,)`` for one step, for
        rules whose cost depends on a branch (both branches must return arrays)."""
        xp = array_api_compat.array_namespace(position)
        return _cost_arrays(xp, position.shape[0], value, full)

    @staticmethod
    def info(position, step_size, grad_evals, full_gradient=False):
        """The ``(C,)`` record of one step. ``grad_evals`` and ``full_gradient`` are
        arrays from :meth:`costs`, or plain numbers for rules with a fixed cost."""
        xp = array_api_compat.array_namespace(position)
        num_chains = position.shape[0]
        if isinstance(grad_evals, int):
            grad_evals, full_gradient = _cost_arrays(xp, num_chains, grad_evals, full_gradient)
        return {
            "step_size": xp.full((num_chains,), step_size, dtype=position.dtype),
            "grad_evals": grad_evals,
            "diverging": ~xp.all(xp.isfinite(position), axis=1),
            "full_gradient": full_gradient,
        }


def _cost_arrays(xp, num_chains, value, full):
    flag = xp.ones(num_chains, dtype=xp.bool) if full else xp.zeros(num_chains, dtype=xp.bool)
    return xp.full((num_chains,), int(value), dtype=xp.int32), flag


@dataclasses.dataclass(frozen=True)
class RefreshingKernel(LangevinKernel):
    """A kernel that takes a full gradient every ``inner_loop`` steps (SVRG-LD, SARAH-LD).

    ``inner_loop``: ``m``, default ``ceil(sqrt(N))`` (Kinoshita & Suzuki 2022).
    """

    inner_loop: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.inner_loop is not None:
            check_positive_int("inner_loop", self.inner_loop)

    def setup(self, backend, positions):
        kernel, cost = super().setup(backend, positions)
        inner_loop = self.inner_loop if self.inner_loop is not None else math.ceil(math.sqrt(backend.num_data))
        return dataclasses.replace(kernel, inner_loop=inner_loop), cost

    def refreshes(self, step):
        """Whether step ``t`` takes a full gradient: ``t % m == 0``."""
        return step % self.inner_loop == 0
