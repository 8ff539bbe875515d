"""Warmup adaptation of a diagonal preconditioner ``M`` and the step size ``h``.

Fixed-step Langevin on a posterior whose scales differ by orders of magnitude
either diverges along the stiff directions or barely moves along the soft
ones. During warmup ppzoo therefore chooses, as Stan does for HMC, a
diagonal mass matrix and a step size, and then holds both fixed, so the
draws target the posterior (a preconditioned Langevin chain with a fixed
positive ``M`` leaves ``exp(-U)`` invariant in continuous time).

``M^-1`` is dense (it corrects correlations too) when the model has at most
:data:`DENSE_MAX_DIM` unconstrained dimensions, diagonal otherwise
(``preconditioner="dense"`` / ``"diagonal"`` choose; see
:mod:`.preconditioner` for why dense is the default where it is affordable).

The schedule (``W`` warmup steps):

1. **Laplace start.** Each chain runs a MAP search from its random start
   (minibatch Adam, the PPL's own optimiser; the search SGLD-CV uses, with
   its defaults). At the MAP ``theta^`` with the lowest potential,
   ``M^-1 = H^-1`` (dense) or ``1 / diag H`` (diagonal), ``H`` the Hessian of
   the potential (central differences of the full-data gradient, ``2 D N``
   per-datum gradients), its eigenvalues (or entries) made positive
   (absolute value, floored at ``1e-8`` of the largest): the Laplace
   approximation. Each chain then starts at its own MAP plus one draw of
   ``N(0, M^-1)``, overdispersed around the mode as R-hat wants, and
   ``h = STEP_FRACTION / lambda_max(L' H L)`` (``L L' = M^-1``) over those
   starts (power iteration with Hessian-vector products, :mod:`.step_size`).
2. **Initial buffer** (15% of ``W``): the chains move into the bulk; then
   ``h`` is re-estimated at their positions.
3. **Slow windows** (10%, 20%, 40% of ``W``): at the end of each,
   ``M^-1`` = the covariance (or variances) of the window's draws, all chains
   pooled, shrunk as Stan does (``(n / (n + 5)) S + 1e-3 (5 / (n + 5)) I``,
   relative to the mean variance), and ``h`` is re-estimated at the chains'
   positions.
4. **Final buffer** (15%): ``M`` and ``h`` fixed, the chains settle.

Why this choice, among those tried: the curvature at the origin alone puts
the scales right for generalised linear models (whose Hessian there is
``X' X / 4`` plus the prior's), but not for models whose curvature depends on
where one is (scales of hierarchical models, heavy-tailed likelihoods);
the variance of warmup draws (Stan's choice) is right everywhere once the
chains explore, but from an identity start it learns nothing along soft
directions. Starting from the curvature and refining with draw variances
gets both. ``STEP_FRACTION = 0.2`` keeps Langevin's step-size bias small: in
the stiffest direction the stationary variance of the unadjusted chain is
``1 / (1 - h lambda / 2)`` times the true one, 1.11 here (about 5% in sd),
and less elsewhere.

All of it is counted in ``grad_evals``. Warmups shorter than
:data:`MIN_WINDOWED_WARMUP` steps keep the curvature start only.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .preconditioner import Preconditioner
from .schedules import Constant
from .step_size import hessian, largest_curvature

__all__ = [
    "STEP_FRACTION", "MIN_WINDOWED_WARMUP", "DENSE_MAX_DIM", "PRECONDITIONERS",
    "laplace_start", "map_steps_default", "retune_step_size", "window_inverse_mass", "warmup_plan", "with_settings",
]

#: ``h = STEP_FRACTION / lambda_max`` of the preconditioned Hessian
STEP_FRACTION = 0.1
#: shorter warmups keep the curvature-based start only
MIN_WINDOWED_WARMUP = 200
#: ``preconditioner="auto"`` is dense up to this many unconstrained dimensions
DENSE_MAX_DIM = 256
PRECONDITIONERS = ("auto", "dense", "diagonal")


def use_dense(kind: str, dim: int) -> bool:
    if kind not in PRECONDITIONERS:
        raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {kind!r}")
    return kind == "dense" or (kind == "auto" and dim <= DENSE_MAX_DIM)


def _positive_inverse(h, dense):
    """``H^-1`` with eigenvalues (dense) or entries (diagonal) made positive."""
    if not dense:
        d = np.abs(np.diag(h))
        return 1.0 / np.maximum(d, 1e-8 * d.max())
    w, v = np.linalg.eigh(h)
    w = np.abs(w)
    w = np.maximum(w, 1e-8 * w.max())
    inv = (v / w) @ v.T
    return (inv + inv.T) / 2


def map_steps_default(num_data: int, batch_size: int) -> int:
    """Adam steps of the MAP search: five passes over the data, at least 1,000."""
    return max(1000, 5 * math.ceil(num_data / batch_size))


def laplace_start(backend, position, rng, *, batch_size, dense, seed, map_steps=None, learning_rate=0.05):
    """Step 1 above: ``(starts, centres, Preconditioner, step_size, rng, cost)``.

    ``position``: the chains' random starts (backend array ``(C, D)``);
    ``starts`` (backend array) and ``centres`` (NumPy, the per-chain MAPs)
    are ``(C, D)``; ``cost``: per-datum gradient evaluations per chain.
    """
    steps = map_steps or map_steps_default(backend.num_data, batch_size)
    centre, rng = backend.minimize(position, rng, steps, learning_rate, batch_size)
    centres = np.asarray(backend.to_numpy(centre), dtype=np.float64)
    finite = np.all(np.isfinite(centres), axis=1)
    if not finite.any():
        raise FloatingPointError(
            "the MAP search that starts warmup adaptation diverged in every chain; pass step_size=... or adapt=False"
        )
    potential = np.asarray(backend.to_numpy(backend.full_potential(backend.asarray(centres[finite]))), dtype=np.float64)
    best = centres[finite][int(np.nanargmin(potential))]
    centres[~finite] = best  # a chain whose search failed starts from the best mode
    h, hess_cost = hessian(backend, best)
    if not np.all(np.isfinite(h)) or not np.abs(np.diag(h)).max() > 0:
        raise FloatingPointError(
            "could not estimate the curvature of the potential at the MAP to precondition the sampler "
            "(non-finite gradients); pass step_size=... (and inverse_mass=...) or adapt=False"
        )
    pre = Preconditioner(_positive_inverse(h, dense))
    jitter = pre.scale(np.random.default_rng(seed).standard_normal(centres.shape))
    starts = centres + jitter
    step_size, more = retune_step_size(backend, np.concatenate([starts, centres]), pre)
    cost = steps * batch_size + backend.num_data + hess_cost + more
    return backend.asarray(starts), centres, pre, step_size, rng, cost


def retune_step_size(backend, positions, preconditioner):
    """``(h, cost)``: ``STEP_FRACTION / max lambda_max(L' H L)`` over the finite ``positions``."""
    points = np.asarray(positions, dtype=np.float64)
    points = points[np.all(np.isfinite(points), axis=1)]
    if points.shape[0] == 0:
        raise FloatingPointError("every chain diverged during warmup adaptation; pass a smaller step_size or adapt=False")
    lam, cost = largest_curvature(backend, points, preconditioner=preconditioner)
    lam = lam[np.isfinite(lam)]
    if lam.size == 0 or not lam.max() > 0:
        raise FloatingPointError("could not estimate the curvature during warmup adaptation; pass step_size=...")
    return float(STEP_FRACTION / lam.max()), cost


def window_inverse_mass(draws, dense: bool) -> Preconditioner:
    """``M^-1`` from a window's draws ``(n, C, D)``: pooled covariance (or variances), regularised as Stan does."""
    draws = np.asarray(draws, dtype=np.float64)
    flat = draws.reshape(-1, draws.shape[-1])
    flat = flat[np.all(np.isfinite(flat), axis=1)]
    n = flat.shape[0]
    if n < 2:
        raise FloatingPointError("every chain diverged during warmup adaptation; pass a smaller step_size or adapt=False")
    if dense:
        cov = np.atleast_2d(np.cov(flat, rowvar=False))
        scale = max(float(np.mean(np.diag(cov))), 1e-300)
        cov = (n / (n + 5.0)) * cov + 1e-3 * scale * (5.0 / (n + 5.0)) * np.eye(cov.shape[0])
        return Preconditioner((cov + cov.T) / 2)
    var = flat.var(axis=0, ddof=1)
    scale = max(float(np.mean(var)), 1e-300)
    var = (n / (n + 5.0)) * var + 1e-3 * scale * (5.0 / (n + 5.0))
    return Preconditioner(np.maximum(var, 1e-12 * var.max()))


def warmup_plan(num_warmup: int, block: int = 1):
    """``[(steps, action)]`` of the warmup: ``action`` is ``"retune"`` (h), ``"window"`` (M and h) or ``None``.

    Segment lengths are multiples of ``block`` (the driver's compiled block
    length), so every segment reuses one compiled block.
    """
    if num_warmup < MIN_WINDOWED_WARMUP:
        return [(num_warmup, None)] if num_warmup else []
    fractions = [(0.15, "retune"), (0.10, "window"), (0.20, "window"), (0.40, "window")]
    plan, used = [], 0
    for fraction, action in fractions:
        steps = max(block, int(round(fraction * num_warmup / block)) * block)
        plan.append((steps, action))
        used += steps
    plan.append((num_warmup - used, None))
    return plan


def with_settings(kernel, preconditioner, step_size):
    """``kernel`` with the preconditioner and a constant ``h``."""
    return dataclasses.replace(kernel, inverse_mass=preconditioner, step_size=Constant(step_size))
