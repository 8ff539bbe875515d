"""What every ppzoo Langevin kernel shares: fixed settings, their checks, defaults, and the step record.

A kernel is a frozen dataclass of **fixed settings** with methods the driver
calls (BlackJAX-style pure functions over chain-batched arrays, ``C`` chains,
``D`` unconstrained dimensions, ``B`` minibatch size):

* ``setup(backend) -> kernel``: resolve the defaults that depend on the model
  (batch size, SVRG-LD's and SARAH-LD's inner loop, SGLD-CV's MAP steps);
* ``init_state(backend, positions, rng, map_estimate=None) -> (state, rng, cost)``:
  the state before the first step (SGLD-CV finds its MAP here, unless given);
* ``update(backend, state, idx, noise, tuning) -> (state, info)``: one step
  of all chains, with ``idx`` ``(C, B)`` minibatch indices, ``noise``
  ``(C, D)`` standard normal draws and ``tuning`` the step size and
  preconditioner (:class:`~.diffusions.Tuning`): state, passed to every step,
  never stored on the kernel.

``cost`` is per-datum gradient evaluations per chain. ``info`` holds
``(C,)`` arrays: ``step_size``, ``grad_evals`` (this step's cost),
``diverging`` and ``full_gradient`` (whether the step used a full gradient).

Kernels that learn a preconditioner of their own while they run (pSGLD)
override three hooks the driver calls at set-up and during warmup:
``prime`` (gather statistics at the current positions),
``step_preconditioner`` (the ``M^-1`` the step size must suit) and
``finish_warmup`` (freeze what was learned).

``step_size`` and ``inverse_mass`` on a kernel are the user's settings, the
start of its tuning; the driver turns them into a ``Tuning`` (under
``numpyro.infer.MCMC`` too: its warmup is the driver's,
:func:`~.driver.warm_up`).
Under ``numpyro.infer.MCMC`` a kernel runs wrapped in its NumPyro
``MCMCKernel`` face (:class:`~.numpyro_mcmc.NumPyroLangevin`):
``numpyro.infer.MCMC(NumPyroLangevin(SARAHLD(), model), ...)``.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any

import array_api_compat

from ppzoo.checks import check_batch_size, check_count, check_number

from .preconditioner import as_preconditioner
from .schedules import as_schedule

__all__ = ["LangevinKernel", "RefreshingKernel", "KERNELS", "INTEGRATORS", "ESTIMATORS"]

#: method name -> kernel class: every concrete kernel class registers itself here when its module is
#: imported (:meth:`LangevinKernel.__init_subclass__`); ``ppzoo.sample(method=...)`` reads it
KERNELS: dict = {}
#: what a kernel's ``integrator`` may be: the dynamics its step discretises
INTEGRATORS = ("overdamped", "underdamped")
#: what a kernel's ``estimator`` may be: how it estimates ``grad U`` (:mod:`.gradients`)
ESTIMATORS = ("plain", "control-variate", "svrg", "sarah")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LangevinKernel(abc.ABC):
    """Settings shared by the Langevin kernels (keyword arguments).

    Args:
        step_size: ``h``: a positive number, a schedule (``Constant``,
            ``PolynomialDecay``), or ``None``: chosen by warmup adaptation, or
            ``1 / lambda_max`` of the potential's Hessian (:mod:`.step_size`).
        batch_size: ``B``; ``None`` for the model's own ``subsample_size`` if it
            declares one, else ``max(ceil(sqrt(N)), 256)`` capped at N
            (:data:`ppzoo.backends.layout.MIN_DEFAULT_BATCH`).
        temperature: ``T >= 0``; noise ``sqrt(2 h T) xi``: the chain targets
            ``p(theta | x) ** (1 / T)`` (``T < 1``: a "cold" posterior; ``T -> 0``:
            optimisation).
        inverse_mass: the preconditioner ``M^-1`` (``theta' = theta - h M^-1 g +
            sqrt(2 h T) L xi``, ``L L' = M^-1``): a ``(D,)`` vector of positive
            numbers (diagonal), a ``(D, D)`` symmetric positive-definite matrix
            (dense), or ``None`` for ``M = I`` (or for warmup adaptation to choose it).

    ``NumPyroLangevin(Kernel(**settings), model)`` is the kernel's NumPyro ``MCMCKernel``.
    """

    step_size: Any = None
    batch_size: int | None = None
    temperature: float = 1.0
    inverse_mass: Any = None

    #: method name used by ``ppzoo.sample`` and in the result's attrs; a class that sets it is
    #: registered in :data:`KERNELS` under it
    name = "langevin"
    #: the dynamics the step discretises (:data:`INTEGRATORS`): ``"overdamped"`` Langevin,
    #: ``theta' = theta - h M^-1 g + sqrt(2 h T) L xi`` (:func:`.diffusions.langevin_step`)
    integrator = "overdamped"
    #: the gradient estimator ``g`` (:data:`ESTIMATORS`): ``"plain"`` minibatch,
    #: ``"control-variate"`` at a fixed anchor, ``"svrg"`` (anchor refreshed), ``"sarah"`` (recursive)
    estimator = "plain"
    #: whether the kernel learns a preconditioner of its own as it runs (pSGLD)
    learns_preconditioner = False

    def __init_subclass__(cls, **options):
        super().__init_subclass__(**options)
        if "name" not in cls.__dict__:  # an intermediate class (RefreshingKernel): not a method
            return
        if cls.integrator not in INTEGRATORS or cls.estimator not in ESTIMATORS:
            raise TypeError(f"kernel {cls.__name__}: integrator must be one of {INTEGRATORS} and estimator one of "
                            f"{ESTIMATORS}, got {cls.integrator!r} and {cls.estimator!r}")
        if KERNELS.get(cls.name, cls).__qualname__ != cls.__qualname__:
            raise TypeError(f"kernel {cls.__name__}: the method name {cls.name!r} is {KERNELS[cls.name].__name__}'s")
        KERNELS[cls.name] = cls

    def __new__(cls, *args, **settings):
        # only checks: a misspelt setting gets the closest name, and a model passed first gets the wrapper
        if args:
            raise TypeError(
                f"{cls.__name__} takes its settings by keyword; to run it on a model under numpyro.infer.MCMC, "
                f"wrap it: NumPyroLangevin({cls.__name__}(...), model)"
            )
        _check_settings(cls, settings)
        return super().__new__(cls)

    def __post_init__(self):
        if self.step_size is not None:
            as_schedule(self.step_size)  # validates
        if self.batch_size is not None:
            check_count("batch_size", self.batch_size)
        check_number("temperature", self.temperature, low=0.0)
        # a Preconditioner (hashable by identity: compiled blocks are cached per kernel)
        object.__setattr__(self, "inverse_mass", as_preconditioner(self.inverse_mass))

    @property
    def sample_field(self):
        # what numpyro.infer.MCMC reads first: a kernel without a model cannot run there
        name = type(self).__name__
        raise ValueError(f"{name} needs the model to run under numpyro.infer.MCMC: NumPyroLangevin({name}(...), model)")

    # -- binding to a model ----------------------------------------------------
    def setup(self, backend):
        """This kernel with its model-dependent defaults resolved for ``backend``."""
        layout = backend.layout
        batch_size = self.batch_size if self.batch_size is not None else layout.default_batch_size()
        check_batch_size(batch_size, layout.num_data, layout.data_plate)
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
        return dataclasses.replace(self, batch_size=int(batch_size))

    @abc.abstractmethod
    def init_state(self, backend, position, rng, map_estimate=None):
        """The state before the first step; returns ``(state, rng, cost_per_chain)``.

        ``map_estimate``: ``(C, D)`` MAPs already found by warmup adaptation
        (SGLD-CV uses them instead of searching again; the others ignore them).
        """

    @abc.abstractmethod
    def update(self, backend, state, idx, noise, tuning):
        """One step of every chain with ``tuning``'s step size and preconditioner; returns ``(state, info)``."""

    # -- hooks for kernels that learn a preconditioner (pSGLD) --------------------
    def prime(self, backend, state, rng, tuning):
        """Gather what the kernel learns at the current positions, without moving (after
        set-up, and whenever ``tuning``'s ``M^-1`` changes); returns ``(state, rng, cost)``."""
        return state, rng, 0

    def step_preconditioner(self, backend, state, base):
        """The ``M^-1`` the steps effectively use, given the base one ``base`` (``None``: ``I``):
        the step size is chosen for it."""
        return base

    def finish_warmup(self, backend, state, base):
        """``(kernel, preconditioner)`` for sampling, given ``base``; ``(self, base)`` unless the
        kernel freezes what it learned (then the driver chooses the step size again)."""
        return self, base

    # -- what warmup adaptation may ask ------------------------------------------------
    def for_adaptation(self, backend):
        """This kernel with its unset defaults chosen for warmup adaptation, before :meth:`setup`
        (SARAH-LD chooses its inner loop there); ``self`` for kernels with nothing to choose."""
        return self

    def adapted_step_fraction(self, dim: int, fraction: float) -> float:
        """The fraction ``h lambda_max`` that warmup adaptation uses, given its default ``fraction``
        and ``D = dim``: ``fraction`` itself unless the kernel's gradient error calls for less."""
        return fraction

    # -- the step record ---------------------------------------------------------------
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
            # a number or a 0-d array: added, not used as a fill value (no host sync on a GPU)
            "step_size": xp.zeros((num_chains,), dtype=position.dtype) + step_size,
            "grad_evals": grad_evals,
            "diverging": ~xp.all(xp.isfinite(position), axis=1),
            "full_gradient": full_gradient,
        }


def _check_settings(cls, settings) -> None:
    """A ``TypeError`` for a keyword that is not a setting of the kernel ``cls``, with the closest
    setting: ``SGLD(stepsize=...)`` would otherwise get Python's bare "unexpected keyword"."""
    import difflib

    fields = [f for f in dataclasses.fields(cls) if f.init]
    shown = [f.name for f in fields if f.repr]  # not internal state
    for name in settings:
        if name not in shown and name not in {f.name for f in fields}:
            close = difflib.get_close_matches(name, shown, n=1)
            raise TypeError(
                f"{name} is not a setting of {cls.__name__}; its settings are {', '.join(shown)}"
                + (f"; did you mean {close[0]}?" if close else "")
            )


def _cost_arrays(xp, num_chains, value, full):
    flag = xp.ones(num_chains, dtype=xp.bool) if full else xp.zeros(num_chains, dtype=xp.bool)
    return xp.full((num_chains,), int(value), dtype=xp.int32), flag


@dataclasses.dataclass(frozen=True, kw_only=True)
class RefreshingKernel(LangevinKernel):
    """A kernel that takes a full gradient every ``inner_loop`` steps (SVRG-LD, SARAH-LD).

    ``inner_loop``: ``m``, default ``ceil(sqrt(N))`` (Kinoshita & Suzuki 2022).
    """

    inner_loop: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.inner_loop is not None:
            check_count("inner_loop", self.inner_loop)

    def setup(self, backend):
        kernel = super().setup(backend)
        inner_loop = self.inner_loop if self.inner_loop is not None else math.ceil(math.sqrt(backend.num_data))
        return dataclasses.replace(kernel, inner_loop=int(inner_loop))

    def refreshes(self, step):
        """Whether step ``t`` takes a full gradient: ``t % m == 0``."""
        return step % self.inner_loop == 0
