"""Langevin updates, written once as pure functions of arrays.

Convention used throughout ppzoo (DESIGN.md):

    theta' = theta - h * grad_U(theta) + sqrt(2 * h * T) * xi,   xi ~ N(0, I),

with ``U(theta) = -log p(theta) - sum_i log p(x_i | theta)`` (so the target is
``exp(-U / T)``; ``T = 1`` is the posterior). Note the factor: this ``h`` is
the Euler step of ``d theta = -grad U dt + sqrt(2T) dW``; libraries that write
``theta' = theta + (eps / 2) grad log p + sqrt(eps) xi`` use ``eps = 2h``.

The functions use only array arithmetic, so they run unchanged on JAX arrays
(inside ``jit``/``scan``/``vmap``) and on torch tensors.
"""

from __future__ import annotations

__all__ = ["langevin_update"]


def langevin_update(position, gradient, step_size, noise, temperature=1.0):
    """One Euler–Maruyama step of overdamped Langevin dynamics.

    Preconditioned samplers pass ``M^-1 g`` as ``gradient`` and ``L xi`` (with
    ``L L' = M^-1``) as ``noise`` (:mod:`.preconditioner`).

    Args:
        position: ``theta``, shape ``(C, D)`` (or any shape).
        gradient: an estimate of ``grad U(theta)``, same shape.
        step_size: ``h > 0`` (scalar, or broadcastable to the position).
        noise: standard normal draws ``xi``, same shape as ``position``.
        temperature: ``T >= 0``; noise is scaled by ``sqrt(2 h T)``.

    Returns:
        ``position - h * gradient + sqrt(2 h T) * noise``.
    """
    return position - step_size * gradient + (2.0 * step_size * temperature) ** 0.5 * noise
