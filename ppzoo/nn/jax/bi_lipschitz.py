"""The bi-Lipschitz map of Kinoshita & Toyoizumi (NeurIPS 2024), in JAX (Equinox).

``f(z) = grad F*(z) + alpha z`` with ``F = psi + ||x||^2 / (2 beta)``: alpha-
inverse-Lipschitz and (alpha + beta)-Lipschitz (see
:mod:`ppzoo.nn.torch.bi_lipschitz`). ``grad F*(z)``, the root of
``grad F(x) = z``, is found per sample by damped Newton-CG (Hessian-vector
products by forward-over-reverse differentiation); a ``jax.custom_vjp``
differentiates through the root implicitly: the cotangent ``v`` becomes
``u = H^{-1} v`` (conjugate gradients), ``z`` receives ``u`` and the
potential's parameters ``-d/dtheta <grad F(x*; theta), u>``.
"""

from __future__ import annotations

from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.sparse.linalg import cg

from ..checks import check_constant, check_dim, check_injective
from .icnn import ICNN
from .inverse_lipschitz import InjectiveLinear

__all__ = ["BiLipschitz", "BiLipschitzDecoder", "conjugate_gradient_map"]


def _newton_root(potential, params, z, tol, max_iter):
    """Root of ``grad_x potential(params, x) = z`` for one sample ``z (n,)``."""
    grad = jax.grad(potential, argnums=1)
    n = z.shape[-1]

    def residual(x):
        return grad(params, x) - z

    def cond(state):
        _, gnorm, it, stalled = state
        return (gnorm > tol) & (it < max_iter) & ~stalled

    def body(state):
        x, gnorm, it, _ = state
        g = residual(x)
        d, _ = cg(lambda p: jax.jvp(lambda y: grad(params, y), (x,), (p,))[1], -g, tol=0.1, maxiter=2 * n + 10)

        def bt_cond(s):
            step, trial_norm, k = s
            return (trial_norm > (1 - 1e-4 * step) * gnorm) & (k < 20)

        def bt_body(s):
            step, _, k = s
            step = 0.5 * step
            return step, jnp.linalg.norm(residual(x + step * d)), k + 1

        step, new_norm, _ = jax.lax.while_loop(bt_cond, bt_body, (1.0, jnp.linalg.norm(residual(x + d)), 0))
        ok = new_norm <= (1 - 1e-4 * step) * gnorm
        x_new = jnp.where(ok, x + step * d, x)
        return x_new, jnp.where(ok, new_norm, gnorm), it + 1, ~ok

    g0 = jnp.linalg.norm(residual(z))
    x, *_ = jax.lax.while_loop(cond, body, (z, g0, 0, jnp.array(False)))
    return x


@partial(jax.custom_vjp, nondiff_argnums=(0, 3, 4))
def _legendre_root(potential, params, z, tol, max_iter):
    return _newton_root(potential, params, z, tol, max_iter)


def _legendre_root_fwd(potential, params, z, tol, max_iter):
    x = _newton_root(potential, params, z, tol, max_iter)
    return x, (params, x)


def _legendre_root_bwd(potential, tol, max_iter, residuals, v):
    params, x = residuals
    grad = jax.grad(potential, argnums=1)
    u, _ = cg(lambda p: jax.jvp(lambda y: grad(params, y), (x,), (p,))[1], v, tol=1e-6, maxiter=4 * x.shape[-1] + 20)
    _, pullback = jax.vjp(lambda p: grad(p, x), params)
    (g_params,) = pullback(-u)
    return g_params, u


_legendre_root.defvjp(_legendre_root_fwd, _legendre_root_bwd)


def conjugate_gradient_map(potential, params, z, *, tol: float = 1e-5, max_iter: int = 50):
    """``grad F*(z) = argmin_x F(x) - <x, z>`` with ``F(x) = potential(params, x)`` (per sample, strongly convex).

    ``z (..., n) -> (..., n)``; differentiable in ``z`` and ``params`` (implicitly).
    """
    flat = z.reshape(-1, z.shape[-1])
    root = jax.vmap(lambda zi: _legendre_root(potential, params, zi, tol, max_iter))(flat)
    return root.reshape(z.shape)


def _strongly_convex(static, beta, params, x):
    return eqx.combine(params, static)(x) + jnp.sum(x * x) / (2.0 * beta)


class BiLipschitz(eqx.Module):
    """``f(z) = grad F*(z) + alpha z`` on ``R^n`` (``alpha``-inverse-Lipschitz, ``(alpha + beta)``-Lipschitz).

    Shapes: ``(..., n) -> (..., n)``. Arguments as :class:`ppzoo.nn.torch.BiLipschitz`, plus ``key``.
    """

    potential: ICNN
    dim: int = eqx.field(static=True)
    alpha: float = eqx.field(static=True)
    beta: float = eqx.field(static=True)
    tol: float = eqx.field(static=True)
    max_iter: int = eqx.field(static=True)

    def __init__(self, dim: int, alpha: float = 1.0, beta: float = 1.0, hidden=(64, 64), tol: float = 1e-5,
                 max_iter: int = 50, *, key):
        self.dim = check_dim("dim", dim)
        self.alpha = check_constant("alpha", alpha, positive=True)
        self.beta = check_constant("beta", beta, positive=True)
        self.tol, self.max_iter = check_constant("tol", tol, positive=True), check_dim("max_iter", max_iter)
        self.potential = ICNN(self.dim, hidden, key=key)

    @property
    def bounds(self) -> tuple[float, float]:
        """``(alpha, alpha + beta)``."""
        return self.alpha, self.alpha + self.beta

    def __call__(self, z):
        params, static = eqx.partition(self.potential, eqx.is_inexact_array)
        potential = partial(_strongly_convex, static, self.beta)
        return conjugate_gradient_map(potential, params, z, tol=self.tol, max_iter=self.max_iter) + self.alpha * z


class BiLipschitzDecoder(eqx.Module):
    """``f(z) = g_2(Q g_1(z))`` with orthonormal ``Q`` (``R^d -> R^D``); bounds multiply."""

    inner: BiLipschitz
    embed: InjectiveLinear
    outer: BiLipschitz | None

    def __init__(self, latent_dim: int, output_dim: int, alpha: float = 1.0, beta: float = 1.0, hidden=(64, 64),
                 output_map: bool = True, *, key, **solver):
        latent_dim, output_dim = check_dim("latent_dim", latent_dim), check_dim("output_dim", output_dim)
        check_injective(latent_dim, output_dim)
        k1, k2, k3 = jax.random.split(key, 3)
        self.inner = BiLipschitz(latent_dim, alpha, beta, hidden, key=k1, **solver)
        self.embed = InjectiveLinear(latent_dim, output_dim, "orthogonal", key=k2)
        self.outer = BiLipschitz(output_dim, alpha, beta, hidden, key=k3, **solver) if output_map else None

    @property
    def bounds(self) -> tuple[float, float]:
        lo, hi = self.inner.bounds
        if self.outer is not None:
            lo2, hi2 = self.outer.bounds
            lo, hi = lo * lo2, hi * hi2
        return lo, hi

    def __call__(self, z):
        x = self.embed(self.inner(z))
        return self.outer(x) if self.outer is not None else x
