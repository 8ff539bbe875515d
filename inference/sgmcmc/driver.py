"""Drive a chain-batched Langevin kernel: set-up, warmup, sampling, thinning, progress, interruption.

The driver is generic: it asks the backend to run blocks of steps (JAX:
one compiled ``lax`` loop per block; torch: a loop over chain-batched
tensors) and only touches NumPy arrays between blocks, where it updates the
progress bar, checks for interruption and divergence, and changes the
:class:`~.diffusions.Tuning` (step size and ``M^-1``) that every step reads.
A run has three phases, one function each:

* :func:`_set_up`: starting points, the kernel bound to the model, the
  state before the first step and the first tuning: the user's step size,
  the default ``1 / lambda_max``, or under warmup adaptation the Laplace
  start (:mod:`.adaptation`);
* :func:`_warm_up`: the warmup plan's segments; after each, adaptation
  estimates ``M^-1`` and ``h`` again. Then it checks how warmup ended: when
  the chains had not mixed (the late warmup's R-hat above
  :data:`WARMUP_R_HAT`) or a chain is not finite, it runs one more slow
  window and final buffer from where the chains are, at most
  :data:`MAX_WARMUP_REMEDIES` times (a step size that collapsed shows as
  chains that have not mixed). At its end a kernel that learns a
  preconditioner may freeze it (``finish_warmup``);
* :func:`_draw`: the kept draws, thinned.

Blocks are also short in wall time, so that Ctrl-C is honoured soon
(:class:`_Pace`): once a call length has run twice (the first run of a length
includes compiling it), the driver knows the time of a step and splits a
block into calls of equal length that take at most :data:`BLOCK_SECONDS`
(at least one draw: a draw's ``thinning`` steps are one call); before that, a
call runs at most :data:`FIRST_BLOCK_STEPS` steps. Splitting does not change
the draws: the random state is carried from step to step, whatever the block.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ppzoo.checks import check_count, check_flag, check_seed, check_thinning
from ppzoo.diagnostics import arviz_compat
from ppzoo.diagnostics.convergence import quiet_arithmetic
from ppzoo.interrupt import check_interrupt, deferred_interrupt

from .adaptation import (
    STEP_FRACTION,
    effective_draws,
    laplace_start,
    retune_step_size,
    use_dense,
    warmup_plan,
    whiten,
    window_inverse_mass,
)
from .diffusions import Tuning, make_tuning
from .preconditioner import Preconditioner
from .schedules import as_schedule
from .step_size import default_step_size, spread

__all__ = ["SamplerRun", "WarmChains", "run_chains", "warm_up", "resolve_thinning"]

#: about this many progress-bar updates per phase
_BLOCKS_PER_PHASE = 50
#: a call of compiled steps takes at most about this long (seconds) once their time is known:
#: Ctrl-C is honoured between calls (:class:`_Pace`)
BLOCK_SECONDS = 0.5
#: a call runs at most this many steps (or one draw) until the time of a step is known
FIRST_BLOCK_STEPS = 64
#: ``thinning="auto"`` keeps a draw every ``tau / AUTO_THINNING_DIVISOR`` steps: about
#: ``num_samples / 4`` effective draws per chain, 250 for 1,000 draws against Stan's 100
AUTO_THINNING_DIVISOR = 4
#: the most steps per kept draw ``thinning="auto"`` chooses
MAX_AUTO_THINNING = 100
#: the late warmup must have this many steps to estimate the autocorrelation time
MIN_AUTOCORRELATION_DRAWS = 20
#: warmup ended badly when the late warmup's largest R-hat (whitened coordinates) is above this
WARMUP_R_HAT = 1.1
#: at most this many remedies for a warmup that ended badly (each :func:`remedy_plan` long)
MAX_WARMUP_REMEDIES = 2
#: what is done when warmup ends badly: ``"restart"``, ``"extend"`` (:func:`_remedy`) or ``None``
WARMUP_REMEDY = "extend"


@dataclass
class SamplerRun:
    """Draws of a chain-batched sampler, in unconstrained space.

    ``positions``: ``(C, S, D)``; ``stats``: each ``(C, S)``, with
    ``grad_evals`` cumulative per chain (setup and warmup included);
    ``interrupted``: the run was stopped by the user or by divergence of every
    chain before all ``num_samples`` draws were made.
    """

    positions: np.ndarray
    stats: dict[str, np.ndarray]
    kernel: object
    num_warmup: int
    thinning: int
    interrupted: bool = False
    attrs: dict = field(default_factory=dict)
    #: where Ctrl-C stopped the run: ``"set-up"``, ``"warmup"``, ``"sampling"`` (``""``: it did not)
    stopped_in: str = ""
    #: the chains' positions when the run ended ``(C, D)`` (unconstrained)
    last_position: np.ndarray | None = None


@dataclass
class Chains:
    """What the phases hand on: the bound kernel, its state, the tuning every step reads (built
    from ``preconditioner``, the base ``M^-1``, ``None`` for ``I``), the random state and the
    per-datum gradient evaluations spent per chain ``(C,)``. ``fraction``: ``h lambda_max``
    under warmup adaptation, ``None`` without."""

    kernel: Any
    state: Any
    rng: Any
    spent: np.ndarray
    preconditioner: Preconditioner | None
    adapt_mass: bool
    dense: bool
    fraction: float | None
    tuning: Tuning | None = None
    #: integrated autocorrelation time (steps) of the slowest whitened coordinate at the end of
    #: warmup, from the late warmup's draws (``None`` without an estimate)
    autocorrelation: float | None = None
    #: the per-chain MAPs of the Laplace start ``(C, D)`` (NumPy; ``None`` without one)
    centres: np.ndarray | None = None
    #: the late warmup's largest R-hat (whitened coordinates), after each check of it
    warmup_r_hat: list = field(default_factory=list)
    #: what was done about a warmup that ended badly, in order (see :func:`_remedy`)
    remedies: list = field(default_factory=list)
    #: warmup steps run beyond ``num_warmup`` by those remedies
    extra_warmup: int = 0
    #: steps taken since set-up (warmup and sampling)
    steps: int = 0
    #: how many draws each call of compiled steps makes (:class:`_Pace`)
    pace: _Pace = field(default_factory=lambda: _Pace())

    @property
    def adapting(self) -> bool:
        return self.fraction is not None


def _block_size(total: int) -> int:
    """Draws per block: about ``total / 50``, preferring a divisor of ``total``.

    Each distinct block length is compiled once on JAX, so a size that
    divides the phase avoids compiling a shorter last block.
    """
    block = max(1, math.ceil(total / _BLOCKS_PER_PHASE))
    for candidate in range(block, 2 * block + 1):
        if total % candidate == 0:
            return candidate
    return block


class _Pace:
    """How many draws the next call of the backend's ``run_block`` makes, so that a call takes at
    most about :data:`BLOCK_SECONDS` of wall time (at least one draw; never more than the block).

    A call of a length not run before includes compiling it (JAX compiles each length once), so
    only a second call of a length times a step; until then a call makes at most
    :data:`FIRST_BLOCK_STEPS` steps. A block longer than that is split into calls of equal
    length, a divisor of the block where one is near (:func:`_split`), so that few lengths are
    compiled; the length is kept while a call takes between a quarter of :data:`BLOCK_SECONDS`
    and all of it.
    """

    def __init__(self):
        self.step_seconds = None
        self.limits = {}  # (thinning, block) -> draws per call
        self.lengths = set()  # (kernel, draws, thinning) already run once

    def draws(self, wanted: int, thinning: int, block: int) -> int:
        """Draws of the next call: at most ``wanted`` (the rest of a block of ``block`` draws)."""
        if self.step_seconds is None:
            return min(wanted, _split(block, FIRST_BLOCK_STEPS / thinning))
        limit = self.limits.get((thinning, block))
        seconds = None if limit is None else limit * thinning * self.step_seconds
        if seconds is None or seconds > BLOCK_SECONDS or (seconds < BLOCK_SECONDS / 4 and limit < block):
            limit = self.limits[thinning, block] = _split(block, BLOCK_SECONDS / (thinning * self.step_seconds))
        return min(wanted, limit)

    def run(self, chains, backend, draws: int, thinning: int):
        """``backend.run_block`` for ``draws`` draws, timed."""
        start = time.perf_counter()
        chains.state, chains.rng, positions, infos = backend.run_block(
            chains.kernel, chains.state, chains.rng, draws, thinning, chains.tuning
        )
        seconds = time.perf_counter() - start
        try:
            key = (chains.kernel, draws, thinning)
            hash(key)
        except TypeError:
            key = (id(chains.kernel), draws, thinning)
        if key in self.lengths:
            self.step_seconds = seconds / (draws * thinning)
        else:
            self.lengths.add(key)
        return positions, infos


def _split(block: int, fit: float) -> int:
    """Draws per call for a block of ``block`` draws when ``fit`` draws fit in a call: the whole
    block if it fits; else the largest divisor of the block that fits, if it is more than half
    of ``fit``; else ``floor(fit)`` (at least 1)."""
    if fit >= block:
        return block
    if fit < 2:
        return 1
    for draws in range(int(fit), int(fit) // 2, -1):
        if block % draws == 0:
            return draws
    return int(fit)


def _checked_init(init_positions, num_chains, dim):
    init = np.asarray(init_positions, dtype=np.float64)
    if init.shape != (num_chains, dim) or not np.all(np.isfinite(init)):
        raise ValueError(
            f"init_positions must be finite unconstrained positions of shape (num_chains, D) = ({num_chains}, {dim}), "
            f"got {'shape ' + str(init.shape) if init.shape != (num_chains, dim) else 'non-finite values'}"
        )
    return init


def _choose_step_size(chains: Chains, backend, points, origin: bool) -> None:
    """Set ``chains.tuning``: the user's step size if the kernel has one; else ``h`` for the
    ``M^-1`` the steps use (:meth:`~.base.LangevinKernel.step_preconditioner`) at ``points``
    ``(P, D)`` (and the origin, with ``origin``): ``fraction / lambda_max`` under adaptation,
    the default ``1 / lambda_max`` (origin always included) without."""
    kernel = chains.kernel
    if kernel.step_size is not None:
        chains.tuning = make_tuning(backend, as_schedule(kernel.step_size), chains.preconditioner)
        return
    metric = kernel.step_preconditioner(backend, chains.state, chains.preconditioner)
    points = np.asarray(points, dtype=np.float64)
    if chains.adapting:
        if origin:
            points = np.concatenate([points, np.zeros((1, points.shape[1]))])
        step_size, cost = retune_step_size(backend, points, metric, chains.fraction)
    else:
        step_size, cost = default_step_size(backend, points, metric)
    chains.spent += spread(cost, chains.spent.shape[0])
    chains.tuning = make_tuning(backend, step_size, chains.preconditioner)


def _prime(chains: Chains, backend) -> None:
    """Let a kernel that learns a preconditioner gather its statistics in the coordinates of the
    current ``M^-1`` (a no-op for the others)."""
    base = make_tuning(backend, 0.0, chains.preconditioner)
    chains.state, chains.rng, cost = chains.kernel.prime(backend, chains.state, chains.rng, base)
    chains.spent += cost


def _set_up(kernel, backend, position, rng, *, adapt, dense, seed) -> Chains:
    """Bind ``kernel`` to the model and choose the first tuning (see the module docstring)."""
    adapting = adapt and kernel.step_size is None
    kernel = (kernel.for_adaptation(backend) if adapting else kernel).setup(backend)
    adapt_mass = adapting and kernel.inverse_mass is None
    preconditioner, centres, cost = kernel.inverse_mass, None, 0
    if adapt_mass:
        position, centres, preconditioner, rng, cost = laplace_start(
            backend, position, rng, batch_size=kernel.batch_size, dense=dense, seed=seed,
            map_steps=getattr(kernel, "map_steps", None), learning_rate=getattr(kernel, "map_learning_rate", 0.05),
        )
    check_interrupt()
    points = backend.to_numpy(position)
    if centres is not None:  # h suits both the jittered starts and the modes
        points = np.concatenate([points, centres])
    state, rng, init_cost = kernel.init_state(backend, position, rng, map_estimate=centres)
    fraction = kernel.adapted_step_fraction(backend.dim, STEP_FRACTION) if adapting else None
    spent = (np.zeros(position.shape[0], dtype=np.int64) + cost + init_cost).astype(np.int64)
    chains = Chains(kernel, state, rng, spent, preconditioner, adapt_mass, dense, fraction, centres=centres)
    _prime(chains, backend)
    _choose_step_size(chains, backend, points, origin=centres is None)
    return chains


def _run_segment(chains: Chains, backend, steps: int, block: int, bar, done: int, keep: bool) -> list:
    """``steps`` warmup steps in blocks; returns the positions ``[(n, C, D)]`` they went through
    if ``keep``, else ``[]``."""
    window, taken = [], 0
    while taken < steps:
        n = chains.pace.draws(min(block - taken % block, steps - taken), 1, block)
        positions, infos = chains.pace.run(chains, backend, n, 1)
        if keep:
            window.append(positions)
        chains.spent += infos["grad_evals"].sum(axis=0).astype(np.int64)
        taken += n
        chains.steps += n
        bar.update(n)
        check_interrupt()
        if infos["diverging"][-1].all():
            raise FloatingPointError(f"every chain diverged during warmup (step {done + taken}); reduce step_size")
    return window


def _run_plan(chains: Chains, backend, plan, block: int, bar, done: int, keep_late: bool):
    """Run the segments ``plan`` (:func:`~.adaptation.warmup_plan`); under adaptation, re-estimate
    ``M^-1`` (``"window"``) and ``h`` after each. Returns the late warmup's draws ``(n, C, D)``
    with ``keep_late`` (the last window and the final segment: the longer the stretch, the longer
    the correlations it can see), else ``None``."""
    previous, late = [], None
    for number, (steps, action) in enumerate(plan):
        last = number == len(plan) - 1
        window = _run_segment(chains, backend, steps, block, bar, done, keep=action == "window" or (last and keep_late))
        done += steps
        if last and keep_late and previous + window:
            late = np.concatenate(previous + window, axis=0)
        previous = window if action == "window" else []
        if action is None or steps == 0:
            continue
        if action == "window" and chains.adapt_mass:
            chains.preconditioner = window_inverse_mass(np.concatenate(window, axis=0), chains.dense,
                                                        previous=chains.preconditioner)
            _prime(chains, backend)  # what a kernel learned lives in the old M^-1's coordinates
        _choose_step_size(chains, backend, backend.to_numpy(chains.state.position), origin=False)
    return late


def _warm_up(chains: Chains, backend, num_warmup: int, bar, autocorrelation: bool = False) -> None:
    """Run the warmup plan; under adaptation, check how it ended (:func:`_late_warmup_problem`) and,
    while it ended badly, apply :data:`WARMUP_REMEDY` (:func:`_remedy`) at most :data:`MAX_WARMUP_REMEDIES`
    times; with ``autocorrelation``, estimate the chains' autocorrelation time from the late
    warmup (:func:`_autocorrelation`)."""
    block = _block_size(num_warmup)
    plan = warmup_plan(num_warmup, block) if chains.adapting else ([(num_warmup, None)] if num_warmup else [])
    checking = chains.adapting and len(plan) > 1
    late = _run_plan(chains, backend, plan, block, bar, 0, keep_late=autocorrelation or checking)
    done, remedy = num_warmup, WARMUP_REMEDY
    while checking and late is not None:
        problem = _late_warmup_problem(chains, late)
        if problem is None or remedy is None or len(chains.remedies) == MAX_WARMUP_REMEDIES:
            break
        extra = remedy_plan(num_warmup, block)
        bar.total += sum(steps for steps, _ in extra)
        _remedy(chains, backend, remedy, problem)
        late = _run_plan(chains, backend, extra, block, bar, done, keep_late=True)
        done += sum(steps for steps, _ in extra)
        chains.extra_warmup += sum(steps for steps, _ in extra)
    if autocorrelation and late is not None:
        chains.autocorrelation = _autocorrelation(late, chains.preconditioner)
    kernel, preconditioner = chains.kernel.finish_warmup(backend, chains.state, chains.preconditioner)
    if kernel is not chains.kernel:  # it froze what it learned: the step size is chosen for that
        chains.kernel, chains.preconditioner = kernel, preconditioner
        _choose_step_size(chains, backend, backend.to_numpy(chains.state.position), origin=False)


def _late_warmup_problem(chains: Chains, late) -> str | None:
    """What is wrong with how the warmup ended, or ``None``: the chains disagree (the largest
    rank-normalised split R-hat of the late warmup's draws ``(n, C, D)`` in whitened coordinates
    above :data:`WARMUP_R_HAT`, with at least 2 chains), or a chain is no longer finite."""
    if not np.all(np.isfinite(late)):
        chains.warmup_r_hat.append(float("nan"))
        return "a chain's late warmup draws are not finite"
    if late.shape[1] < 2 or late.shape[0] < MIN_AUTOCORRELATION_DRAWS:
        return None
    with quiet_arithmetic():  # chains that do not move divide by a zero variance: R-hat is NaN, said below
        r_hat = arviz_compat.rhat_array(np.swapaxes(whiten(late, chains.preconditioner), 0, 1))
    worst = float(np.nanmax(r_hat)) if np.isfinite(r_hat).any() else float("nan")
    chains.warmup_r_hat.append(worst)
    if np.isnan(worst):
        return "the chains' late warmup draws do not move, so R-hat is undefined"
    if not worst <= WARMUP_R_HAT:
        return f"the chains had not mixed by the end of warmup (R-hat {worst:.3g})"
    return None


def remedy_plan(num_warmup: int, block: int):
    """The segments a remedy runs: one slow window and a final buffer, the last two stretches
    of the warmup plan (40% and 15% of ``num_warmup``, as :func:`~.adaptation.warmup_plan`)."""
    steps = [max(block, int(round(fraction * num_warmup / block)) * block) for fraction in (0.40, 0.15)]
    return [(steps[0], "window"), (steps[1], None)]


def _remedy(chains: Chains, backend, remedy: str, problem: str) -> None:
    """Before another stretch of warmup (:func:`remedy_plan`): ``"extend"`` carries on from where
    the chains are; ``"restart"`` moves every chain to the best mode of the Laplace start (the
    per-chain MAP with the lowest potential; without one, the chain whose current position has
    the lowest potential) plus one draw of ``N(0, M^-1)`` for the current ``M^-1``, and starts
    its state there (SGLD-CV's control variate at that mode too)."""
    chains.remedies.append(f"{remedy}: {problem}")
    if remedy == "extend":
        return
    anchors = chains.centres if chains.centres is not None else backend.to_numpy(chains.state.position)
    anchors = np.asarray(anchors, dtype=np.float64)
    potential = np.asarray(backend.to_numpy(backend.full_potential(backend.asarray(anchors))), dtype=np.float64)
    chains.spent += backend.num_data
    potential = np.where(np.isfinite(potential), potential, np.inf)
    mode = anchors[int(np.argmin(potential))]
    count = anchors.shape[0]
    rng = np.random.default_rng(len(chains.remedies))
    jitter = rng.standard_normal((count, mode.shape[0]))
    if chains.preconditioner is not None:
        jitter = chains.preconditioner.scale(jitter)
    centres = np.repeat(mode[None], count, axis=0) if chains.centres is not None else None
    chains.state, chains.rng, cost = chains.kernel.init_state(
        backend, backend.asarray(mode + jitter), chains.rng, map_estimate=centres
    )
    chains.spent += cost
    _prime(chains, backend)
    _choose_step_size(chains, backend, np.concatenate([mode[None], mode + jitter]), origin=False)


def _autocorrelation(draws, preconditioner) -> float | None:
    """Steps per effective draw, ``n C / ESS``, of the slowest coordinate of ``draws`` ``(n, C, D)``
    whitened by ``preconditioner`` (``None``: as they are); ``None`` for fewer than
    :data:`MIN_AUTOCORRELATION_DRAWS` steps or non-finite draws."""
    if draws.shape[0] < MIN_AUTOCORRELATION_DRAWS or not np.all(np.isfinite(draws)):
        return None
    metric = preconditioner or Preconditioner(np.ones(draws.shape[-1]))
    return draws.shape[0] * draws.shape[1] / effective_draws(draws, metric)



def resolve_thinning(thinning, autocorrelation: float | None) -> int:
    """``thinning`` as given, or for ``"auto"`` ``ceil(tau / AUTO_THINNING_DIVISOR)`` from the
    late warmup's autocorrelation time ``tau`` (kept draws then have an autocorrelation time near
    ``AUTO_THINNING_DIVISOR``), between 1 and :data:`MAX_AUTO_THINNING`; 1 with no estimate."""
    if thinning != "auto":
        return thinning
    if autocorrelation is None:
        return 1
    return int(min(MAX_AUTO_THINNING, max(1, math.ceil(autocorrelation / AUTO_THINNING_DIVISOR))))


def _draw(chains: Chains, backend, num_samples: int, thinning: int, bar, kept: list, done: int = 0,
          on_block=None) -> bool:
    """Sample draws ``done + 1`` to ``num_samples``, every ``thinning``-th step, appending
    ``(positions, infos)`` blocks to ``kept`` (calling ``on_block`` after each); returns whether
    every chain diverged first (the draws so far are kept)."""
    block = _block_size(num_samples)
    while done < num_samples:
        n = chains.pace.draws(min(block - done % block, num_samples - done), thinning, block)
        positions, infos = chains.pace.run(chains, backend, n, thinning)
        kept.append((positions, infos))
        done += n
        chains.steps += n * thinning
        bar.update(n * thinning)
        if on_block is not None:
            on_block(chains, kept, done, num_samples, thinning)
        check_interrupt()
        if infos["diverging"].any():
            bar.set_postfix(diverging=int(sum(i["diverging"].sum() for _, i in kept)))
        if infos["diverging"][-1].all():
            warnings.warn(
                f"every chain diverged after {done} of {num_samples} draws; keeping the draws made "
                "so far (reduce step_size)",
                RuntimeWarning,
                stacklevel=3,
            )
            return True
    return False


@dataclass
class Resumed:
    """Where a checkpointed run stopped: its chains after ``done`` draws, the ``kept`` blocks
    ``[(positions (n, C, D), infos)]`` of those draws and the thinning they used."""

    chains: Chains
    kept: list
    done: int
    thinning: int


@dataclass
class WarmChains:
    """Chains after :func:`warm_up`: the kernel as bound (and, for pSGLD, frozen), its state, the
    random state, the tuning the draws use and the per-datum gradient evaluations spent ``(C,)``."""

    kernel: Any
    state: Any
    rng: Any
    tuning: Tuning
    spent: np.ndarray
    adapted: bool


def warm_up(kernel, backend, position, rng, *, num_warmup: int, adapt: bool = True, preconditioner: str = "auto",
            seed: int = 0) -> WarmChains:
    """Set up and warm up chains at ``position`` ``(C, D)`` exactly as :func:`run_chains` does,
    for drivers of their own (NumPyro's ``MCMC``, :mod:`.numpyro_mcmc`), which
    then step with the returned tuning."""
    check_count("num_warmup", num_warmup, 0)
    chains = _set_up(kernel, backend, position, rng, adapt=adapt, dense=use_dense(preconditioner, backend.dim),
                     seed=seed)
    with tqdm(total=num_warmup, disable=True) as bar:
        _warm_up(chains, backend, num_warmup, bar)
    return WarmChains(chains.kernel, chains.state, chains.rng, chains.tuning, chains.spent, chains.adapting)


def run_chains(
    kernel,
    backend,
    *,
    num_samples: int,
    num_warmup: int = 0,
    num_chains: int = 1,
    thinning: int | str = 1,
    seed: int = 0,
    progress_bar: bool = True,
    adapt: bool = True,
    preconditioner: str = "auto",
    init_positions=None,
    on_block=None,
    resume=None,
) -> SamplerRun:
    """Run ``num_chains`` chains of ``kernel`` on ``backend``'s model.

    The chains start at ``init_positions`` (``(num_chains, D)``, in the
    unconstrained space of ``backend.layout``), by default uniformly in
    ``[-2, 2]`` of the unconstrained space, run ``num_warmup`` steps that are
    discarded, then ``num_samples * thinning`` steps of which every
    ``thinning``-th is kept. ``thinning="auto"`` chooses it from the
    autocorrelation time ``tau`` of the late warmup (the last window and the
    final segment, 55% of it under adaptation; all of it below 200 steps or
    without adaptation; ArviZ's bulk ESS of the slowest whitened coordinate):
    ``ceil(tau / 4)``, at most 100 (:func:`resolve_thinning`); 1 when that
    stretch is shorter than 20 steps. Ctrl-C, or every chain turning non-finite, ends
    the run early and keeps the draws made so far (with a warning).

    With ``adapt=True`` and no ``step_size`` on the kernel, warmup chooses a
    preconditioner (dense or diagonal, see ``preconditioner``; unless the
    kernel has ``inverse_mass``) and the step size, then holds them fixed
    (:mod:`.adaptation`); otherwise the kernel's settings are used as they are.
    A kernel that learns a preconditioner of its own (pSGLD) gathers its
    statistics first and whenever ``M^-1`` changes, and its step size is chosen
    for what it has learned (:mod:`.psgld`).

    ``on_block(chains, kept, done, num_samples, thinning)`` is called at the end of warmup
    (``done = 0``) and after every block of draws (a checkpoint writer,
    :mod:`ppzoo.checkpoint`). ``resume``, a :class:`Resumed`, skips set-up and
    warmup and carries on from its chains and draws, in the blocks an uninterrupted
    run with the same ``num_samples`` takes, so the draws are the same.
    """
    check_count("num_samples", num_samples, 1)
    check_count("num_warmup", num_warmup, 0)
    check_count("num_chains", num_chains, 1)
    check_thinning(thinning)
    check_seed(seed)
    check_flag("adapt", adapt)
    check_flag("progress_bar", progress_bar)
    dense = use_dense(preconditioner, backend.dim)
    rng = backend.rng(seed)
    if init_positions is None:
        position, rng = backend.init_positions(rng, num_chains)
    else:
        position = backend.asarray(_checked_init(init_positions, num_chains, backend.dim))
    planned = num_samples * (1 if thinning == "auto" else thinning)  # "auto" is known after warmup
    name = getattr(kernel, "name", type(kernel).__name__)
    bar = tqdm(total=num_warmup + planned, desc=f"{name} set-up", disable=not progress_bar, unit="step",
               dynamic_ncols=True)
    chains, kept, stage, stopped_in = None, [], "set-up", ""
    with deferred_interrupt():
        try:
            if resume is None:
                chains = _set_up(kernel, backend, position, rng, adapt=adapt, dense=dense, seed=seed)
                check_interrupt()
                stage = "warmup"
                bar.set_description(f"{name} warmup")
                _warm_up(chains, backend, num_warmup, bar, autocorrelation=thinning == "auto")
                thinning = resolve_thinning(thinning, chains.autocorrelation)
                done = 0
                if on_block is not None:
                    on_block(chains, kept, done, num_samples, thinning)
            else:
                chains, thinning, done = resume.chains, resume.thinning, resume.done
                kept.extend(resume.kept)
                bar.update(num_warmup + done * thinning)
            bar.total = num_warmup + num_samples * thinning
            bar.set_description(f"{name} sample")
            stage = "sampling"
            interrupted = _draw(chains, backend, num_samples, thinning, bar, kept, done=done, on_block=on_block)
        except KeyboardInterrupt:
            interrupted, stopped_in = True, stage
            if kept:
                warnings.warn(f"interrupted: keeping the {sum(len(p) for p, _ in kept)} draws made so far",
                              RuntimeWarning, stacklevel=2)
            else:
                steps = f" after {chains.steps} steps" if chains is not None and stage == "warmup" else ""
                warnings.warn(f"interrupted during {stage}{steps}, before any draw was kept: the "
                              "result has no draws; its warmup_posterior holds where the chains were",
                              RuntimeWarning, stacklevel=2)
        finally:
            bar.close()
    if chains is None:  # stopped in set-up: the chains were where they started
        return SamplerRun(np.zeros((num_chains, 0, backend.dim)), _no_stats(num_chains), kernel.setup(backend), num_warmup,
                          1 if thinning == "auto" else thinning, True, {"adapted": 0}, stopped_in=stage,
                          last_position=backend.to_numpy(position))
    thinning = resolve_thinning(thinning, chains.autocorrelation)
    return collect_run(chains, backend, kept, num_warmup, thinning, interrupted, stopped_in=stopped_in)


def _no_stats(num_chains: int) -> dict:
    """The stats of a run with no draws, each ``(C, 0)``."""
    empty = {"step_size": np.float64, "diverging": bool, "grad_evals": np.int64, "full_gradient": bool}
    return {k: np.zeros((num_chains, 0), dtype=t) for k, t in empty.items()}


def collect_run(chains: Chains, backend, kept: list, num_warmup: int, thinning: int, interrupted: bool,
             stopped_in: str = "") -> SamplerRun:
    num_chains = chains.spent.shape[0]
    last = backend.to_numpy(chains.state.position)
    if not kept:
        stats = _no_stats(num_chains)
        return SamplerRun(np.zeros((num_chains, 0, last.shape[-1])), stats, chains.kernel, num_warmup, thinning,
                          interrupted, _run_attrs(chains), stopped_in=stopped_in, last_position=last)
    positions = np.concatenate([p for p, _ in kept], axis=0).swapaxes(0, 1)  # (C, S, D)
    stats = {k: np.concatenate([i[k] for _, i in kept], axis=0).swapaxes(0, 1) for k in kept[0][1]}
    stats["grad_evals"] = chains.spent[:, None] + np.cumsum(stats["grad_evals"].astype(np.int64), axis=1)
    return SamplerRun(positions, stats, chains.kernel, num_warmup, thinning, interrupted, _run_attrs(chains),
                      stopped_in=stopped_in, last_position=last)


def _run_attrs(chains: Chains) -> dict:
    attrs = {"adapted": int(chains.adapting)}
    if chains.preconditioner is not None:
        attrs["inverse_mass"] = chains.preconditioner.inverse_mass.copy()
    if getattr(chains.kernel, "inner_loop", None) is not None:
        attrs["inner_loop"] = int(chains.kernel.inner_loop)
    if chains.autocorrelation is not None:
        attrs["warmup_autocorrelation"] = float(chains.autocorrelation)
    if chains.warmup_r_hat:
        attrs["warmup_r_hat"] = np.asarray(chains.warmup_r_hat, dtype=np.float64)
    if chains.remedies:
        attrs["warmup_remedies"] = "; ".join(chains.remedies)
        attrs["extra_warmup"] = int(chains.extra_warmup)
    return attrs
