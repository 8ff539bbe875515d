"""Drive a chain-batched Langevin kernel: warmup, sampling, thinning, progress, interruption.

The driver is generic: it asks the backend to run blocks of steps (JAX:
one compiled ``lax`` loop per block; torch: a loop over chain-batched
tensors) and only touches NumPy arrays between blocks, where it updates the
progress bar and checks for interruption and divergence.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache, partial

import numpy as np
from tqdm.auto import tqdm

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
def _bound_step(kernel, backend):
    """``kernel.update`` bound to ``backend``, one object per (settings, backend) so that
    backends can reuse what they compiled for it in an earlier run."""
    return partial(kernel.update, backend)


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


def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


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
) -> SamplerRun:
    """Run ``num_chains`` chains of ``kernel`` on ``backend``'s model.

    The chains start uniformly in ``[-2, 2]`` of the unconstrained space,
    run ``num_warmup`` steps that are discarded, then ``num_samples * thinning``
    steps of which every ``thinning``-th is kept. Ctrl-C, or every chain
    turning non-finite, ends the run early and keeps the draws made so far
    (with a warning).
    """
    _check_count("num_samples", num_samples, 1)
    _check_count("num_warmup", num_warmup, 0)
    _check_count("num_chains", num_chains, 1)
    _check_count("thinning", thinning, 1)
    _check_count("seed", seed, 0)

    rng = backend.rng(seed)
    position, rng = backend.init_positions(rng, num_chains)
    kernel, setup_cost = kernel.setup(backend, position)
    state, rng, init_cost = kernel.init_state(backend, position, rng)
    setup_cost += init_cost
    step_fn = _bound_step(kernel, backend)
    batch_size = kernel.batch_size

    total = num_warmup + num_samples * thinning
    bar = tqdm(total=total, desc=f"{kernel.name} warmup", disable=not progress_bar, unit="step", dynamic_ncols=True)
    kept_positions, kept_stats = [], []
    spent = np.full(num_chains, setup_cost, dtype=np.int64)
    interrupted = False
    try:
        done = 0
        block = _block_size(num_warmup)
        while done < num_warmup:
            n = min(block, num_warmup - done)
            state, rng, _, infos = backend.run_block(step_fn, state, rng, n, 1, batch_size)
            spent += infos["grad_evals"].sum(axis=0).astype(np.int64)
            done += n
            bar.update(n)
            if infos["diverging"][-1].all():
                raise FloatingPointError(
                    f"every chain diverged during warmup (step {done}); reduce step_size"
                )
        bar.set_description(f"{kernel.name} sample")
        done = 0
        block = _block_size(num_samples)
        while done < num_samples:
            n = min(block, num_samples - done)
            state, rng, positions, infos = backend.run_block(step_fn, state, rng, n, thinning, batch_size)
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
    return SamplerRun(positions, stats, kernel, num_warmup, thinning, interrupted)
