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
   the potential (``D`` Hessian-vector products by autodiff, counted as ``2 D N``
   per-datum gradients), its eigenvalues (or entries) made positive
   (absolute value, floored at ``1e-8`` of the largest): the Laplace
   approximation. Minibatch Adam stops short of the mode along soft
   directions when the posterior is ill-conditioned (tens of posterior sds
   on a Gaussian with condition number ``10^4``, up to 250 on logistic
   regression of the raw breast-cancer features), so each chain's MAP is
   then refined by damped Newton steps ``theta <- theta - t M^-1 grad U``
   (full-data gradients, ``t`` halved until the potential falls,
   :func:`newton_refine`), with ``H`` taken again at the best chain's point
   while that point moves by more than a posterior sd (at most
   :data:`NEWTON_ROUNDS` Hessians), and ``H`` is taken once more at the
   best mode in the coordinates of the current ``M^-1`` (:func:`curvature_in_metric`:
   there its small eigenvalues are resolved as well as its large ones).
   A chain whose MAP lies more than ``max(STRANDED_GAP, D)`` above the best
   in potential (a spurious local optimum: a mixture with both components
   broad) is moved to the best MAP, with a warning. Each chain then starts
   at its own MAP plus one draw of
   ``N(0, M^-1)``, overdispersed around the mode as R-hat wants, and
   ``h = STEP_FRACTION / lambda_max(L' H L)`` (``L L' = M^-1``) over those
   starts (power iteration with Hessian-vector products, :mod:`.step_size`).
2. **Initial buffer** (15% of ``W``): the chains move into the bulk; then
   ``h`` is re-estimated at their positions.
3. **Slow windows** (10%, 20%, 40% of ``W``): at the end of each, ``S`` =
   the covariance (or variances) of the window's draws, all chains pooled,
   and the new ``M^-1 = w S + (1 - w) M^-1_old`` with
   ``w = n_eff / (n_eff + D + 1)``: the previous preconditioner counts as
   ``D + 1`` draws, the window as its effective number of draws ``n_eff``
   (:func:`effective_draws`). Langevin draws are strongly autocorrelated
   (about ``2 / (h lambda)`` steps apart per independent draw), so a short
   window holds far fewer than ``D`` independent draws when ``D`` is in the
   tens; its raw covariance is then nearly singular along directions it has
   not explored, and taken alone it shrinks ``M^-1`` there, which shrinks
   ``h`` and makes the next window explore less (measured on logistic
   regression of the raw breast-cancer features, D = 31: ``h`` fell from
   0.06 to ``1e-4`` over three windows). The average also keeps ``M^-1``
   positive definite. Stan's shrinkage towards a multiple of the identity
   (``(n / (n + 5)) S + 1e-3 (5 / (n + 5)) I``, relative to the mean
   variance) is used only when there is no previous ``M^-1``: it is not
   scale-free, and would inflate the stiffest direction of the raw
   breast-cancer posterior (variance ``5e-8`` against a mean of 0.3)
   eighty-fold. Then ``h`` is re-estimated at the chains' positions.
4. **Final buffer** (15%): ``M`` and ``h`` fixed, the chains settle.
5. **Check** (in :mod:`.driver`): when the largest rank-normalised split R-hat
   of the late warmup (the last window and the final buffer, whitened by the
   final ``M^-1``) is above 1.1, or a chain is no longer finite, warmup ended
   badly (a step size that collapsed shows the same way: chains that cannot
   move cannot mix); another slow window (40%) and final buffer (15%) run from
   where the chains are, at most twice. The attrs record it
   (``warmup_r_hat``, ``warmup_remedies``, ``extra_warmup``). Of the two
   remedies measured, extending beats restarting every chain from the best
   mode: on eight schools (non-centred, ``W = 1000``, seeds 0-5, whose late
   warmup R-hat is 1.6 to 2.1 in every seed) the final R-hat was above 1.01 in
   4 of 6 runs carrying on, 1 of 6 extending and 3 of 6 restarting, with
   median bulk ESS 396, 1,310 and 396; the restart throws away the chains'
   progress into the bulk. Over ``benchmarks/nuts_agreement.py``'s 17
   programs the check fired on 10, and extending left every verdict as it
   was, with bulk ESS per gradient evaluation changed by a geometric-mean
   factor of 1.08 (0.48 to 2.5). Neither remedy helps the funnel (its MAP is
   degenerate, ``v`` near -40) or varying slopes (its curvature varies tenfold
   over the posterior: with ``M^-1`` the posterior covariance, ``lambda_max(L'
   H L)`` is 7 to 38 from the 5th to the 95th percentile of NUTS draws, so a
   fixed step that is stable everywhere mixes slowly); both still end with the
   convergence warning.

Why this choice, among those tried: the curvature at the origin alone puts
the scales right for generalised linear models (whose Hessian there is
``X' X / 4`` plus the prior's), but not for models whose curvature depends on
where one is (scales of hierarchical models, heavy-tailed likelihoods);
the variance of warmup draws (Stan's choice) is right everywhere once the
chains explore, but from an identity start it learns nothing along soft
directions. Starting from the curvature and refining with draw variances
gets both. Measured (``benchmarks/adaptation.py``, SVRG-LD, 16 chains, the
zoo and the raw breast-cancer features): this scheme meets 0.1 sd / 10% on 7
of 9 models; Stan's (identity start, regularised windows) on 4, with a tenth
of the effective draws per gradient, and 87 sd off on the mixture, 3.4 on
the raw features; the Laplace start without windows fails eight schools
(0.33 sd) and the neural network (4.5 sd: ``h`` chosen once, before the
chains reach the bulk); windows not averaged with the previous ``M^-1`` give
a third of the effective draws on the raw features. ``STEP_FRACTION = 0.1`` keeps Langevin's step-size bias small: in
the stiffest direction the stationary variance of the unadjusted chain is
``1 / (1 - h lambda / 2)`` times the true one, 1.05 here (about 2.6% in sd),
and less elsewhere.

All of it is counted in ``grad_evals``. Warmups shorter than
:data:`MIN_WINDOWED_WARMUP` steps keep the curvature start only.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ppzoo.diagnostics import arviz_compat
from ppzoo.diagnostics.convergence import quiet_arithmetic
from ppzoo.interrupt import check_interrupt

from .preconditioner import Preconditioner
from .step_size import hessian, hessian_columns, largest_curvature, spread

__all__ = [
    "STEP_FRACTION", "MIN_WINDOWED_WARMUP", "DENSE_MAX_DIM", "NEWTON_STEPS", "NEWTON_HALVINGS", "NEWTON_ROUNDS",
    "STRANDED_GAP", "PRECONDITIONERS", "laplace_start", "map_steps_default", "newton_refine", "curvature_in_metric",
    "retune_step_size", "window_inverse_mass", "effective_draws", "warmup_plan", "whiten",
]

#: ``h = STEP_FRACTION / lambda_max`` of the preconditioned Hessian
STEP_FRACTION = 0.1
#: shorter warmups keep the curvature-based start only
MIN_WINDOWED_WARMUP = 200
#: ``preconditioner="auto"`` is dense up to this many unconstrained dimensions
DENSE_MAX_DIM = 256
#: damped Newton steps that refine the MAP search's end points, per Hessian
NEWTON_STEPS = 10
#: halvings of a Newton step at most, until the potential falls
NEWTON_HALVINGS = 8
#: at most this many Hessians for the Newton steps (a new one while the best MAP moves by
#: more than one posterior sd)
NEWTON_ROUNDS = 4
#: a chain's MAP more than ``max(STRANDED_GAP, D)`` above the best chain's in potential starts from the best
STRANDED_GAP = 10.0
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
    """Step 1 above, but for the step size: ``(starts, centres, Preconditioner, rng, cost)``.

    ``position``: the chains' random starts (backend array ``(C, D)``);
    ``starts`` (backend array) and ``centres`` (NumPy, the per-chain MAPs)
    are ``(C, D)``; ``cost`` ``(C,)``: per-datum gradient evaluations per chain, its own
    (its MAP search, the potentials and gradients at its points) plus its share
    (:func:`.step_size.spread`) of what was computed once for all (the Hessians at the best
    mode). The driver then chooses ``h`` over the starts and centres (:func:`retune_step_size`).
    """
    steps = map_steps or map_steps_default(backend.num_data, batch_size)
    centre, rng = backend.minimize(position, rng, steps, learning_rate, batch_size)
    check_interrupt()
    # a copy: under 64-bit JAX, to_numpy gives a read-only view of the device buffer, and the
    # centres are written below
    centres = np.array(backend.to_numpy(centre), dtype=np.float64)
    finite = np.all(np.isfinite(centres), axis=1)
    if not finite.any():
        raise FloatingPointError(
            "the MAP search that starts warmup adaptation diverged in every chain; pass step_size=... or adapt=False"
        )
    potential = np.full(centres.shape[0], np.inf)
    potential[finite] = _full_potential(backend, centres[finite])
    best = int(np.argmin(potential))
    centres[~finite] = centres[best]  # a chain whose search failed starts from the best mode
    cost, shared = steps * batch_size + backend.num_data, 0
    for _ in range(NEWTON_ROUNDS):
        check_interrupt()
        h, hess_cost = hessian(backend, centres[best])
        shared += hess_cost  # one Hessian, at the best chain's mode
        if not np.all(np.isfinite(h)) or not np.abs(np.diag(h)).max() > 0:
            raise FloatingPointError(
                "could not estimate the curvature of the potential at the MAP to precondition the sampler "
                "(non-finite gradients); pass step_size=... (and inverse_mass=...) or adapt=False"
            )
        pre = Preconditioner(_positive_inverse(h, dense))
        before = centres[best].copy()
        centres, potential, converged, newton_cost = newton_refine(backend, centres, pre, potential)
        cost += newton_cost
        best = int(np.argmin(potential))
        if converged and _metric_length(pre, centres[best] - before) < 1.0:
            break  # every chain is at its mode, and the Hessian was taken within a posterior sd of the best
    # A chain whose search ended far above the best mode (a spurious local optimum, or a saddle
    # it did not leave) starts from the best mode too: left there, it makes the first window's
    # pooled covariance span both basins, and the step size collapses for every chain. Within
    # one mode the chains' potentials agree to well under D / 2, the Laplace approximation's spread.
    stranded = potential > potential[best] + max(STRANDED_GAP, centres.shape[1])
    if stranded.any():
        warnings.warn(
            f"{int(stranded.sum())} of {centres.shape[0]} chains' MAP searches ended in modes worse than the best "
            f"by more than max({STRANDED_GAP:g}, D) in potential; they start from the best mode",
            RuntimeWarning,
            stacklevel=2,
        )
        centres[stranded] = centres[best]
        potential[stranded] = potential[best]
    # the curvature once more at the best mode, in the coordinates of the Laplace metric
    pre, more = curvature_in_metric(backend, centres[best], pre)
    jitter = pre.scale(np.random.default_rng(seed).standard_normal(centres.shape))
    return backend.asarray(centres + jitter), centres, pre, rng, cost + spread(shared + more, centres.shape[0])


def curvature_in_metric(backend, point, preconditioner, chunk=64):
    """The Laplace preconditioner at ``point`` ``(D,)`` from the Hessian in the coordinates of
    ``preconditioner`` (``M^-1 = L L'``): ``H_z = L' H L`` from Hessian-vector products along
    the columns of ``L`` (autodiff, :func:`.step_size.hessian_columns`), then ``M^-1 = L
    H_z^-1 L'`` (``H_z``'s eigenvalues made positive as in step 1; for a diagonal
    ``preconditioner``, only ``H_z``'s diagonal, and a diagonal result).

    In these coordinates ``H_z`` is near the identity, so its small eigenvalues are resolved
    as well as its large ones: the raw Hessian of a badly scaled model (condition number
    ``1.9e7`` on the raw breast-cancer features) loses them to single-precision rounding.
    Returns ``(Preconditioner, cost)``, ``cost`` = ``2 D N`` per-datum gradient evaluations.
    """
    dim = np.asarray(point).shape[0]
    cost = 2 * dim * backend.num_data
    diagonal = not preconditioner.dense
    directions = np.diag(preconditioner.factor) if diagonal else preconditioner.factor.T  # row k: L e_k
    hl = hessian_columns(backend, point, directions, chunk)  # row k: H L e_k
    hz = np.sum(hl * directions, axis=1) if diagonal else hl @ preconditioner.factor  # (L' H L)[k, j]
    if not np.all(np.isfinite(hz)):
        return preconditioner, cost
    if diagonal:
        return Preconditioner(preconditioner.factor**2 * _positive_inverse(np.diag(hz), False)), cost
    z = _positive_inverse((hz + hz.T) / 2, True)
    minv = preconditioner.factor @ z @ preconditioner.factor.T
    return Preconditioner((minv + minv.T) / 2), cost


def _full_potential(backend, theta):
    return np.asarray(backend.to_numpy(backend.full_potential(backend.asarray(theta))), dtype=np.float64)


def _metric_length(preconditioner, delta):
    """``sqrt(delta' M delta)``: the length of ``delta`` ``(D,)`` in posterior sds of the Laplace approximation."""
    if preconditioner.dense:
        return float(np.linalg.norm(np.linalg.solve(preconditioner.factor, delta)))
    return float(np.linalg.norm(delta / preconditioner.factor))


def newton_refine(backend, points, preconditioner, potential=None, steps=NEWTON_STEPS, halvings=NEWTON_HALVINGS):
    """Damped Newton steps ``theta <- theta - t M^-1 grad U(theta)`` from each row of ``points``
    ``(C, D)`` (NumPy), ``M^-1`` the preconditioner (an inverse Hessian), with ``t`` the first
    of ``1, 1/2, 1/4, ...`` (at most ``halvings`` halvings) that lowers the full-data
    potential; a chain whose step fails to lower it stays. Stops early, ``converged``, once
    every chain's Newton decrement ``sqrt(g' M^-1 g)`` is below 0.01 (a hundredth of a
    posterior sd) or no chain's step lowers the potential.

    ``potential``: ``U`` at ``points`` if known (``(C,)``), else computed.
    Returns ``(points, potential, converged, cost)``, ``cost`` the per-datum gradient
    evaluations per chain: ``N`` per full gradient and per full potential evaluated.
    """
    x = np.array(points, dtype=np.float64)
    minv = preconditioner.inverse_mass
    n = backend.num_data
    cost = 0
    if potential is None:
        potential = _full_potential(backend, x)
        cost += n
    u = np.array(potential, dtype=np.float64)
    for _ in range(steps):
        g = np.asarray(backend.to_numpy(backend.full_grad(backend.asarray(x))), dtype=np.float64)
        cost += n
        direction = -(g @ minv if minv.ndim == 2 else minv * g)
        decrement = np.sqrt(np.abs(np.sum(-direction * g, axis=1)))
        pending = np.isfinite(decrement) & (decrement > 1e-2)
        if not pending.any():
            return x, u, True, cost
        moving = pending.copy()
        t = np.ones(x.shape[0])
        for _ in range(halvings + 1):
            # every chain is evaluated (one compiled shape); only the pending ones can move
            proposal = np.where(pending[:, None], x + t[:, None] * direction, x)
            u_new = _full_potential(backend, proposal)
            cost += n
            better = pending & np.all(np.isfinite(proposal), axis=1) & np.isfinite(u_new) & ((u_new < u) | ~np.isfinite(u))
            x[better] = proposal[better]
            u[better] = u_new[better]
            pending &= ~better
            if not pending.any():
                break
            t = np.where(pending, t / 2, t)
        if not (moving & ~pending).any():
            return x, u, True, cost  # no step lowers the potential any more: as far as float precision goes
    return x, u, False, cost


def retune_step_size(backend, positions, preconditioner, fraction=STEP_FRACTION):
    """``(h, cost)``: ``fraction / max lambda_max(L' H L)`` over the finite ``positions``
    (``fraction``: :data:`STEP_FRACTION`, or a kernel's :meth:`adapted_step_fraction`);
    ``cost``: the per-datum gradient evaluations spent in all (every point's power iteration)."""
    points = np.asarray(positions, dtype=np.float64)
    points = points[np.all(np.isfinite(points), axis=1)]
    if points.shape[0] == 0:
        raise FloatingPointError("every chain diverged during warmup adaptation; pass a smaller step_size or adapt=False")
    lam, cost = largest_curvature(backend, points, preconditioner=preconditioner)
    lam = lam[np.isfinite(lam)]
    if lam.size == 0 or not lam.max() > 0:
        raise FloatingPointError("could not estimate the curvature during warmup adaptation; pass step_size=...")
    return float(fraction / lam.max()), cost * points.shape[0]


def window_inverse_mass(draws, dense: bool, previous: Preconditioner | None = None) -> Preconditioner:
    """``M^-1`` from a window's draws ``(n, C, D)``: the pooled covariance (or variances) ``S``,
    averaged with the ``previous`` preconditioner as in step 3 above; with no ``previous``,
    regularised as Stan does instead."""
    draws = np.asarray(draws, dtype=np.float64)
    flat = draws.reshape(-1, draws.shape[-1])
    flat = flat[np.all(np.isfinite(flat), axis=1)]
    n = flat.shape[0]
    if n < 2:
        raise FloatingPointError("every chain diverged during warmup adaptation; pass a smaller step_size or adapt=False")
    estimate = np.atleast_2d(np.cov(flat, rowvar=False)) if dense else flat.var(axis=0, ddof=1)
    if previous is not None and previous.dense == dense:
        kept = draws[:, np.all(np.isfinite(draws), axis=(0, 2))]
        weight = 0.0
        if kept.shape[0] > 1 and kept.shape[1] > 0:
            n_eff = effective_draws(kept, previous)
            weight = n_eff / (n_eff + previous.dim + 1.0)
        blended = weight * estimate + (1.0 - weight) * previous.inverse_mass
        return Preconditioner((blended + blended.T) / 2 if dense else blended)
    if dense:
        scale = max(float(np.mean(np.diag(estimate))), 1e-300)
        cov = (n / (n + 5.0)) * estimate + 1e-3 * scale * (5.0 / (n + 5.0)) * np.eye(estimate.shape[0])
        return Preconditioner((cov + cov.T) / 2)
    scale = max(float(np.mean(estimate)), 1e-300)
    var = (n / (n + 5.0)) * estimate + 1e-3 * scale * (5.0 / (n + 5.0))
    return Preconditioner(np.maximum(var, 1e-12 * var.max()))


def whiten(draws, preconditioner) -> np.ndarray:
    """``z = L^-1 theta`` of ``draws`` ``(..., D)`` for ``M^-1 = L L'`` (``None``: as they are)."""
    z = np.asarray(draws, dtype=np.float64)
    if preconditioner is None:
        return z
    if preconditioner.dense:
        return np.linalg.solve(preconditioner.factor, z.reshape(-1, z.shape[-1]).T).T.reshape(z.shape)
    return z / preconditioner.factor


def effective_draws(draws, preconditioner) -> float:
    """The effective number of independent draws in a window ``(n, C, D)`` (finite): ArviZ's
    bulk ESS (rank-normalised, all chains) of the slowest coordinate, in the coordinates
    ``z = L^-1 theta`` of the ``preconditioner``; at least 1, at most ``n C``."""
    z = whiten(draws, preconditioner)
    with quiet_arithmetic():  # a coordinate that does not move has a zero variance: its ESS is NaN, left out
        ess = arviz_compat.ess_array(np.swapaxes(z, 0, 1))  # (C, n, D)
    ess = ess[np.isfinite(ess)]
    total = draws.shape[0] * draws.shape[1]
    return float(np.clip(ess.min(), 1.0, total)) if ess.size else 1.0


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
