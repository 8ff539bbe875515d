"""The default step size: the inverse of the largest curvature.

Unadjusted Langevin on a target with Hessian ``H`` is stable only for
``h < 2 / lambda_max(H)``, and its bias in the stiffest direction grows like
``h * lambda_max``. With no step size given, ppzoo estimates ``lambda_max``
of the full-data potential by power iteration and sets
``h = FRACTION / lambda_max``, held fixed for the whole run.

The estimate is the largest over the chains' starting points and the origin
of the unconstrained space: for log-concave GLMs such as logistic regression
the curvature is largest at the origin, so the step stays stable wherever
the chains go. This is deliberately conservative. Estimating the curvature
again in the bulk of the posterior allows a far larger step (for logistic
regression of the breast-cancer data, ``lambda_max`` is 1,890 at the origin
but 59 at the posterior mean), but SGLD's minibatch noise then biases the
posterior means by several tenths of a posterior standard deviation on that
model; that trade is left to warmup adaptation with preconditioning.

The Hessian-vector products come from automatic differentiation of the
full-data potential (``Backend.full_hvp``: ``jax.jvp`` of the gradient, or
torch's double backward), exact up to rounding where central differences of
the gradient lose most of single precision's digits along directions of small
curvature. Each product is counted as ``2 N`` per-datum gradient evaluations
(forward over reverse costs about two gradients) in ``grad_evals``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["largest_curvature", "default_step_size", "hessian", "hessian_columns", "spread", "FRACTION"]

#: ``h = FRACTION / lambda_max``
FRACTION = 1.0


def largest_curvature(backend, positions, num_iters: int = 20, seed: int = 0, preconditioner=None):
    """Power-iteration estimate of the largest Hessian eigenvalue of ``U`` at each point.

    With a ``preconditioner`` (``M^-1 = L L'``, :mod:`.preconditioner`) it is
    the largest eigenvalue of ``L' H L``, which is what bounds the
    preconditioned Langevin step.

    Args:
        backend: the gradient oracle.
        positions: ``(P, D)`` NumPy array of points in unconstrained space.
        num_iters: power iterations (each two full-data gradients per point).

    Returns:
        ``(lambda_max, cost)``: ``(P,)`` NumPy array of estimates (``|v' H v|``
        at the final iterate), and ``cost`` per-datum gradient evaluations per point.
    """
    theta = np.asarray(positions, dtype=np.float64)
    scale = (lambda v: v) if preconditioner is None else preconditioner.scale
    scale_t = (lambda v: v) if preconditioner is None else preconditioner.scale_transpose
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(theta.shape)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    estimate = np.zeros(theta.shape[0])
    point = backend.asarray(theta)
    for _ in range(num_iters):
        hv = scale_t(_hvp(backend, point, scale(v)))  # L' H L v
        estimate = np.abs(np.sum(v * hv, axis=1))
        norm = np.linalg.norm(hv, axis=1, keepdims=True)
        v = np.where(norm > 0, hv / np.where(norm > 0, norm, 1.0), v)
    return estimate, 2 * num_iters * backend.num_data


def _hvp(backend, points, directions) -> np.ndarray:
    """``H(points_c) directions_c`` ``(P, D)`` as float64 NumPy (``points`` a backend array)."""
    return np.asarray(backend.to_numpy(backend.full_hvp(points, backend.asarray(directions))), dtype=np.float64)


def hessian_columns(backend, point, directions, chunk: int = 64) -> np.ndarray:
    """``H(point) directions_k`` for each row ``k`` of ``directions`` ``(K, D)``: ``(K, D)``
    (``chunk`` products per call, the point repeated)."""
    theta = np.asarray(point, dtype=np.float64)
    out = np.empty(directions.shape)
    for start in range(0, directions.shape[0], chunk):
        rows = slice(start, min(directions.shape[0], start + chunk))
        count = rows.stop - rows.start
        out[rows] = _hvp(backend, backend.asarray(np.repeat(theta[None], count, axis=0)), directions[rows])
    return out


def hessian(backend, point, chunk: int = 64):
    """The Hessian of ``U`` at ``point`` ``(D,)``, ``(D, D)``, symmetrised, from ``D``
    Hessian-vector products along the axes; returns ``(H, cost)`` with ``cost`` the
    per-datum gradient evaluations (``2 D N``)."""
    dim = np.asarray(point).shape[0]
    columns = hessian_columns(backend, point, np.eye(dim), chunk)
    return (columns + columns.T) / 2, 2 * dim * backend.num_data


def spread(total, num_chains: int) -> np.ndarray:
    """``total`` per-datum gradient evaluations of work shared by ``num_chains`` chains, as each
    chain's share ``(C,)`` (integers summing to ``total``): the chains' ``grad_evals`` then add
    up to the work done."""
    total = int(total)
    return np.full(num_chains, total // num_chains, dtype=np.int64) + (np.arange(num_chains) < total % num_chains)


def default_step_size(backend, positions, preconditioner=None):
    """``h = FRACTION / max lambda_max`` over ``positions`` ``(C, D)`` and the origin
    (of the preconditioned Hessian when a ``preconditioner`` is given).

    Returns ``(h, cost)`` with ``cost`` the per-datum gradient evaluations
    spent in all (``2 * 20 * N`` per point, the origin included). Raises ``FloatingPointError`` when the curvature cannot
    be estimated (non-finite gradients at every point).
    """
    points = np.asarray(positions)
    points = np.concatenate([points, np.zeros((1, points.shape[1]))], axis=0)
    lam, cost = largest_curvature(backend, points, preconditioner=preconditioner)
    lam = lam[np.isfinite(lam)]
    if lam.size == 0 or not np.max(lam) > 0:
        raise FloatingPointError(
            "could not estimate the curvature of the potential to choose a default step size "
            "(non-finite gradients); pass step_size=..."
        )
    return float(FRACTION / np.max(lam)), cost * points.shape[0]
