"""Langevin updates, written once as pure functions of arrays, and the tuning they read.

Convention used throughout ppzoo:

    theta' = theta - h * M^-1 grad_U(theta) + sqrt(2 * h * T) * L xi,   xi ~ N(0, I),  L L' = M^-1,

with ``U(theta) = -log p(theta) - sum_i log p(x_i | theta)`` (so the target is
``exp(-U / T)``; ``T = 1`` is the posterior) and ``M^-1`` a fixed symmetric
positive-definite preconditioner (the identity unless one is given or
adapted). Note the factor: this ``h`` is the Euler step of
``d theta = -M^-1 grad U dt + sqrt(2T) L dW``; libraries that write
``theta' = theta + (eps / 2) grad log p + sqrt(eps) xi`` use ``eps = 2h``
(BlackJAX's ``overdamped_langevin`` uses the same ``h`` as here).

The step size and ``M^-1`` are **state**, not settings: one :class:`Tuning`
holds them as arrays and is passed to every step, as BlackJAX passes the
step size to each step and NumPyro threads its ``adapt_state``. Warmup
adaptation changes it between blocks of steps without recompiling them.

The functions use only array arithmetic, so they run unchanged on JAX arrays
(inside ``jit``/``scan``/``vmap``) and on torch tensors.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = [
    "Tuning", "make_tuning", "langevin_update", "langevin_step", "apply_inverse_mass", "apply_factor",
    "apply_factor_transpose",
]


class Tuning(NamedTuple):
    """The step size and preconditioner of every step: numbers and arrays of the backend.

    ``h_t = step_size * (decay[0] + t) ** -decay[1]`` at step ``t`` (from 0, warmup
    included): ``decay`` is ``None`` for a constant step, or the offset ``b`` and
    power ``gamma`` of a polynomial decay (``PolynomialDecay(a, b, gamma)`` has
    ``step_size = a``). ``inverse_mass`` is ``M^-1``, ``(D,)`` (diagonal) or
    ``(D, D)`` (dense), and ``factor`` its ``L`` (``L L' = M^-1``) of the same
    shape; both ``None`` for ``M = I``. Under JAX all of them are arguments
    (data) of the compiled steps, so changing them does not recompile; whether
    ``decay`` and ``inverse_mass`` are ``None`` is part of their structure.
    """

    step_size: Any
    inverse_mass: Any = None
    factor: Any = None
    decay: Any = None

    def step_size_at(self, step):
        """``h_t`` for step ``t`` (a Python int, or a traced integer under JAX)."""
        if self.decay is None:
            return self.step_size
        offset, power = self.decay
        return self.step_size * (offset + step) ** (-power)


def make_tuning(backend, step_size, preconditioner=None) -> Tuning:
    """The :class:`Tuning` of a step size and a preconditioner, as ``backend``'s arrays.

    ``step_size``: a positive number, or a schedule of :mod:`.schedules`
    (``Constant``, ``PolynomialDecay``: its ``tuning_parts()``);
    ``preconditioner``: a :class:`~.preconditioner.Preconditioner`, or ``None`` for ``M = I``.
    """
    step_size, decay = step_size.tuning_parts() if hasattr(step_size, "tuning_parts") else (step_size, None)
    # numbers stay Python floats: plain scalars for torch, traced (not constant) arguments under jax.jit
    step_size, decay = float(step_size), None if decay is None else (float(decay[0]), float(decay[1]))
    if preconditioner is None:
        return Tuning(step_size, decay=decay)
    minv, factor = preconditioner.arrays(backend)
    return Tuning(step_size, minv, factor, decay)


def apply_inverse_mass(minv, x):
    """``M^-1 x`` for chain-batched ``x`` ``(C, D)``; ``minv`` ``(D,)`` or ``(D, D)``."""
    return x @ minv if minv.ndim == 2 else minv * x


def apply_factor(factor, xi):
    """``L xi`` for chain-batched ``xi`` ``(C, D)``: covariance ``L L' = M^-1``."""
    return xi @ factor.T if factor.ndim == 2 else factor * xi


def apply_factor_transpose(factor, g):
    """``L' g`` for chain-batched ``g`` ``(C, D)``: a gradient in the coordinates ``z`` of ``theta = L z``."""
    return g @ factor if factor.ndim == 2 else factor * g


def langevin_update(position, gradient, step_size, noise, temperature=1.0):
    """One Euler–Maruyama step of overdamped Langevin dynamics.

    Preconditioned samplers pass ``M^-1 g`` as ``gradient`` and ``L xi`` (with
    ``L L' = M^-1``) as ``noise`` (:func:`langevin_step` does).

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


def langevin_step(position, gradient, noise, tuning: Tuning, step, temperature=1.0):
    """The preconditioned step of step number ``step`` with ``tuning``'s ``h_t`` and ``M^-1``.

    ``theta' = theta - h_t M^-1 g + sqrt(2 h_t T) L xi`` for chain-batched
    ``position``, ``gradient`` and ``noise`` ``(C, D)``. Returns ``(theta', h_t)``.
    """
    h = tuning.step_size_at(step)
    if tuning.inverse_mass is not None:
        gradient, noise = apply_inverse_mass(tuning.inverse_mass, gradient), apply_factor(tuning.factor, noise)
    return langevin_update(position, gradient, h, noise, temperature), h
