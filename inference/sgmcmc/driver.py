"""Drive a chain-batched Langevin kernel: warmup, sampling, thinning, progress, interruption.

The driver is generic: it asks the backend to run blocks of steps (JAX:
one compiled ``lax`` loop per block; torch: a loop over chain-batched
tensors) and only touches NumPy arrays between blocks, where it updates the
progress bar and checks for interruption and divergence.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache, partial

import numpy as np
from tqdm.auto import tqdm

from ..checks import check_count
from .adaptation import (
    STEP_FRACTION,
    laplace_start,
    retune_step_size,
    use_dense,
    warmup_plan,
    window_inverse_mass,
    with_settings,
)
from .schedules import Constant
from .step_size import default_step_size

__all__ = ["SamplerRun", "run_chains"]

#: about this many progress-bar updates per phase
_BLOCKS_PER_PHASE = 50


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


@lru_cache(maxsize=16)
def _bound_step(kernel, backend, method="update"):
    """``kernel.update`` (or another step-shaped method, e.g. pSGLD's ``prime``) bound to
    ``backend``, one object per (settings, backend) so that backends can reuse what they
    compiled for it in an earlier run."""
    return partial(getattr(kernel, method), backend)


def _prime(kernel, backend, state, rng, batch_size, tuning, base_kernel):
    """Restart and prime the preconditioner of a kernel that learns one (pSGLD):
    ``kernel.prime_steps`` updates at the current positions; returns ``(state, rng, cost)``,
    ``cost`` ``(C,)`` per-datum gradient evaluations."""
    state = kernel.restart_preconditioner(state)
    prime_fn = _bound_step(base_kernel, backend, "prime")
    state, rng, _, infos = backend.run_block(prime_fn, state, rng, kernel.prime_steps, 1, batch_size, tuning)
    return state, rng, infos["grad_evals"].sum(axis=0).astype(np.int64)


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


def _checked_init(init_positions, num_chains, dim):
    init = np.asarray(init_positions, dtype=np.float64)
    if init.shape != (num_chains, dim) or not np.all(np.isfinite(init)):
        raise ValueError(
            f"init_positions must be finite unconstrained positions of shape (num_chains, D) = ({num_chains}, {dim}), "
            f"got {'shape ' + str(init.shape) if init.shape != (num_chains, dim) else 'non-finite values'}"
        )
    return init


def run_chains(
    kernel,
    backend,
    *,
    num_samples: int,
    num_warmup: int = 0,
    num_chains: int = 1,
    thinning: int = 1,
    seed: int = 0,
    progress_bar: bool = True,
    adapt: bool = True,
    preconditioner: str = "auto",
    init_positions=None,
) -> SamplerRun:
    """Run ``num_chains`` chains of ``kernel`` on ``backend``'s model.

    The chains start at ``init_positions`` (``(num_chains, D)``, in the
    unconstrained space of ``backend.layout``), by default uniformly in
    ``[-2, 2]`` of the unconstrained space, run ``num_warmup`` steps that are discarded, then ``num_samples * thinning``
    steps of which every ``thinning``-th is kept. Ctrl-C, or every chain
    turning non-finite, ends the run early and keeps the draws made so far
    (with a warning).

    With ``adapt=True`` and no ``step_size`` on the kernel, warmup chooses a
    preconditioner (dense or diagonal, see ``preconditioner``; unless the
    kernel has ``inverse_mass``) and the step size, then holds them fixed
    (:mod:`.adaptation`); otherwise the kernel's settings are used as they are.

    A kernel that learns a preconditioner of its own (``learns_preconditioner``,
    pSGLD) is primed first (its statistics gathered at the starting points, and
    again whenever a window changes ``M^-1``), its step size is chosen for the
    preconditioner it has learned, and with ``freeze=True`` that preconditioner
    is fixed, for every chain, from the end of warmup on (:mod:`.psgld`).
    """
    check_count("num_samples", num_samples, 1)
    check_count("num_warmup", num_warmup, 0)
    check_count("num_chains", num_chains, 1)
    check_count("thinning", thinning, 1)
    check_count("seed", seed, 0)
    if not isinstance(adapt, bool):
        raise TypeError(f"adapt must be True or False, got {adapt!r}")
    dense = use_dense(preconditioner, backend.dim)

    rng = backend.rng(seed)
    if init_positions is None:
        position, rng = backend.init_positions(rng, num_chains)
    else:
        position = backend.asarray(_checked_init(init_positions, num_chains, backend.dim))
    adapting = adapt and kernel.step_size is None
    adapt_mass = adapting and kernel.inverse_mass is None
    learns = kernel.learns_preconditioner
    # a kernel that learns its preconditioner gets its default step size once it has one
    default_after_priming = learns and not adapting and kernel.step_size is None
    centres = tuning = None
    if adapting:
        # a placeholder step so that setup resolves the batch size without estimating a step size;
        # the adapted step size and preconditioner reach the compiled steps as data (``tuning``)
        kernel, setup_cost = dataclasses.replace(kernel.for_adaptation(backend), step_size=1.0).setup(backend, position)
        fraction = kernel.adapted_step_fraction(backend.dim, STEP_FRACTION)
        if adapt_mass:
            position, centres, pre, step_size, rng, cost = laplace_start(
                backend, position, rng, batch_size=kernel.batch_size, dense=dense, seed=seed,
                map_steps=getattr(kernel, "map_steps", None), learning_rate=getattr(kernel, "map_learning_rate", 0.05),
                fraction=fraction,
            )
        else:
            pre = kernel.inverse_mass
            starts = backend.to_numpy(position)
            step_size, cost = retune_step_size(
                backend, np.concatenate([starts, np.zeros((1, starts.shape[1]))]), pre, fraction
            )
        setup_cost += cost
        step_kernel = dataclasses.replace(kernel, inverse_mass=None)
        tuning = pre.tuning(backend, step_size)
        kernel = with_settings(kernel, pre, step_size)
    else:
        kernel, setup_cost = (dataclasses.replace(kernel, step_size=1.0) if default_after_priming else kernel).setup(
            backend, position
        )
        step_kernel = kernel
    state, rng, init_cost = kernel.init_state(backend, position, rng, map_estimate=centres)
    setup_cost += init_cost
    batch_size = kernel.batch_size
    spent = np.full(num_chains, setup_cost, dtype=np.int64)
    if learns:
        state, rng, cost = _prime(kernel, backend, state, rng, batch_size, tuning, step_kernel)
        spent += cost
        points = backend.to_numpy(state.position)
        if adapting:
            learned = kernel.learned_preconditioner(backend, state, kernel.inverse_mass)
            step_size, cost = retune_step_size(backend, points, learned, fraction)
            tuning = kernel.inverse_mass.tuning(backend, step_size)
            kernel = with_settings(kernel, kernel.inverse_mass, step_size)
        elif default_after_priming:
            learned = kernel.learned_preconditioner(backend, state, kernel.inverse_mass)
            step_size, cost = default_step_size(backend, points, learned)
            kernel = step_kernel = dataclasses.replace(kernel, step_size=Constant(step_size))
        else:
            cost = 0
        spent += cost
    step_fn = _bound_step(step_kernel, backend)

    total = num_warmup + num_samples * thinning
    bar = tqdm(total=total, desc=f"{kernel.name} warmup", disable=not progress_bar, unit="step", dynamic_ncols=True)
    kept_positions, kept_stats = [], []
    interrupted = False
    try:
        block = _block_size(num_warmup)
        plan = warmup_plan(num_warmup, block) if adapting else ([(num_warmup, None)] if num_warmup else [])
        done = 0
        for steps, action in plan:
            window, seg = [], 0
            while seg < steps:
                n = min(block, steps - seg)
                state, rng, positions, infos = backend.run_block(step_fn, state, rng, n, 1, batch_size, tuning)
                if action == "window":
                    window.append(positions)
                spent += infos["grad_evals"].sum(axis=0).astype(np.int64)
                seg += n
                done += n
                bar.update(n)
                if infos["diverging"][-1].all():
                    raise FloatingPointError(
                        f"every chain diverged during warmup (step {done}); reduce step_size"
                    )
            if action is None or steps == 0:
                continue
            pre = kernel.inverse_mass
            if action == "window" and adapt_mass:
                pre = window_inverse_mass(np.concatenate(window, axis=0), dense, previous=pre)
                if learns:  # its statistics were gathered in the old preconditioner's coordinates
                    state, rng, cost = _prime(kernel, backend, state, rng, batch_size, pre.tuning(backend, 0.0), step_kernel)
                    spent += cost
            learned = kernel.learned_preconditioner(backend, state, pre) if learns else pre
            step_size, cost = retune_step_size(backend, backend.to_numpy(state.position), learned, fraction)
            spent += cost
            tuning = pre.tuning(backend, step_size)
            kernel = with_settings(kernel, pre, step_size)
        if learns and kernel.freeze:
            # the learned preconditioner becomes a fixed M^-1 shared by all chains
            learned = kernel.learned_preconditioner(backend, state, kernel.inverse_mass)
            kernel = dataclasses.replace(kernel, frozen=True, inverse_mass=learned)
            if adapting:
                step_size, cost = retune_step_size(backend, backend.to_numpy(state.position), learned, fraction)
                spent += cost
                tuning = learned.tuning(backend, step_size)
                kernel = with_settings(kernel, learned, step_size)
                step_fn = _bound_step(dataclasses.replace(kernel, inverse_mass=None), backend)
            else:
                if default_after_priming:  # the default step, chosen again for the preconditioner now fixed
                    step_size, cost = default_step_size(backend, backend.to_numpy(state.position), learned)
                    spent += cost
                    kernel = dataclasses.replace(kernel, step_size=Constant(step_size))
                step_fn = _bound_step(kernel, backend)
        bar.set_description(f"{kernel.name} sample")
        done = 0
        block = _block_size(num_samples)
        while done < num_samples:
            n = min(block, num_samples - done)
            state, rng, positions, infos = backend.run_block(step_fn, state, rng, n, thinning, batch_size, tuning)
            kept_positions.append(positions)
            kept_stats.append(infos)
            done += n
            bar.update(n * thinning)
            if infos["diverging"].any():
                bar.set_postfix(diverging=int(np.concatenate([s["diverging"] for s in kept_stats]).sum()))
            if infos["diverging"][-1].all():
                warnings.warn(
                    f"every chain diverged after {done} of {num_samples} draws; keeping the draws made "
                    "so far (reduce step_size)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                interrupted = True
                break
    except KeyboardInterrupt:
        if not kept_positions:
            raise
        interrupted = True
        warnings.warn(
            f"interrupted: keeping the {sum(len(p) for p in kept_positions)} draws made so far",
            RuntimeWarning,
            stacklevel=2,
        )
    finally:
        bar.close()

    positions = np.concatenate(kept_positions, axis=0).swapaxes(0, 1)  # (C, S, D)
    stats = {k: np.concatenate([s[k] for s in kept_stats], axis=0).swapaxes(0, 1) for k in kept_stats[0]}
    stats["grad_evals"] = spent[:, None] + np.cumsum(stats["grad_evals"].astype(np.int64), axis=1)
    attrs = {"adapted": int(adapting)}
    if kernel.inverse_mass is not None:
        attrs["inverse_mass"] = kernel.inverse_mass.inverse_mass.copy()
    if getattr(kernel, "inner_loop", None) is not None:
        attrs["inner_loop"] = int(kernel.inner_loop)
    return SamplerRun(positions, stats, kernel, num_warmup, thinning, interrupted, attrs)
