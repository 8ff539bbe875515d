"""The bi-Lipschitz map of Kinoshita & Toyoizumi (NeurIPS 2024), in torch.

With ``F(x) = psi(x) + ||x||^2 / (2 beta)`` (``psi`` an ICNN), ``F`` is
(1/beta)-strongly convex, so its Legendre-Fenchel conjugate ``F*`` is convex
and beta-smooth: ``grad F*`` is monotone and beta-Lipschitz. The map

    f(z) = grad F*(z) + alpha z,     grad F*(z) = argmax_x <x, z> - F(x)

is therefore alpha-strongly monotone (alpha-inverse-Lipschitz) and
(alpha + beta)-Lipschitz:

    alpha ||z_1 - z_2|| <= ||f(z_1) - f(z_2)|| <= (alpha + beta) ||z_1 - z_2||.

``grad F*(z)`` is the root of ``grad F(x) = z``, found per sample by damped
Newton steps (conjugate gradients with Hessian-vector products), backtracking
on ``||grad F(x) - z||``.
Gradients flow through the root by implicit differentiation: with ``H`` the
Hessian of ``F`` at the root, ``d x* = H^{-1} (dz - d_theta grad F d theta)``;
the backward pass solves ``H u = v`` by conjugate gradients with
Hessian-vector products instead of unrolling the solver.
"""

from __future__ import annotations

import torch
from torch import nn

from ..checks import check_constant, check_dim, check_injective
from .icnn import ICNN
from .inverse_lipschitz import InjectiveLinear

__all__ = ["BiLipschitz", "BiLipschitzDecoder", "conjugate_gradient_map"]


def _batched_dot(a, b):
    return (a * b).sum(-1, keepdim=True)


def _solve_root(potential, z, x0, tol, max_iter):
    """Root of ``grad potential(x) = z`` per sample (rows of ``z``) by damped Newton-CG; no graph kept.

    The Newton direction ``d ~ -H^{-1} g`` (truncated conjugate gradients,
    residual below 0.1 ||g||) decreases ``||g||^2``, so each step backtracks on
    the gradient norm: unlike the objective's value, it does not lose its
    precision near the root.
    """
    x = x0.detach().clone()
    with torch.enable_grad():
        for _ in range(max_iter):
            xg = x.requires_grad_(True)
            (grad,) = torch.autograd.grad(potential(xg).sum(), xg, create_graph=True)
            g = (grad - z).detach()
            gnorm = g.norm(dim=-1, keepdim=True)
            if float(gnorm.max()) < tol:
                break

            def hvp(p, grad=grad, xg=xg):
                return torch.autograd.grad(grad, xg, grad_outputs=p, retain_graph=True)[0]

            d = _conjugate_gradient(hvp, -g, 0.1 * gnorm, 2 * z.shape[-1] + 10)
            step = torch.ones_like(gnorm)
            x = x.detach()
            for _ in range(20):
                trial = (x + step * d).requires_grad_(True)
                (gt,) = torch.autograd.grad(potential(trial).sum(), trial)
                accept = (gt - z).norm(dim=-1, keepdim=True) <= (1 - 1e-4 * step) * gnorm
                if bool(accept.all()):
                    break
                step = torch.where(accept, step, 0.5 * step)
            if not bool(accept.any()):
                break  # no sample can improve further at this precision
            x = torch.where(accept, trial.detach(), x)
    return x.detach()


def _conjugate_gradient(hvp, v, tol, max_iter):
    """Solve ``H u = v`` per sample for symmetric positive definite ``H`` given by ``hvp``.

    ``tol`` is an absolute residual norm, a number or one per sample ``(..., 1)``.
    """
    u = torch.zeros_like(v)
    r = v.clone()
    p = r.clone()
    rr = _batched_dot(r, r)
    for _ in range(max_iter):
        if bool((rr.sqrt() < tol).all()):
            break
        hp = hvp(p)
        alpha = rr / _batched_dot(p, hp).clamp_min(1e-30)
        u = u + alpha * p
        r = r - alpha * hp
        rr_new = _batched_dot(r, r)
        p = r + (rr_new / rr.clamp_min(1e-30)) * p
        rr = rr_new
    return u


def conjugate_gradient_map(potential, z: torch.Tensor, *, tol: float = 1e-5, max_iter: int = 50) -> torch.Tensor:
    """``grad F*(z) = argmin_x F(x) - <x, z>`` for a strongly convex ``F = potential``, ``z (..., n)``.

    Differentiable in ``z`` and in the parameters of ``potential`` by the
    implicit function theorem (conjugate gradients in the backward pass).
    """
    x_star = _solve_root(potential, z.detach(), z.detach(), tol, max_iter)
    if not torch.is_grad_enabled():
        return x_star
    # y = x* - (grad F(x*) - z) has the value x*; its derivative in (z, theta) with x* held
    # fixed is dz - d_theta grad F, and the hook turns the incoming cotangent v into H^{-1} v.
    with torch.enable_grad():
        xg = x_star.detach().requires_grad_(True)
        (grad_f,) = torch.autograd.grad(potential(xg).sum(), xg, create_graph=True)
    y = x_star - (grad_f - z)

    def implicit(v):
        if v is None:
            return None
        with torch.enable_grad():
            xh = x_star.detach().requires_grad_(True)
            (gh,) = torch.autograd.grad(potential(xh).sum(), xh, create_graph=True)

            def hvp(p):
                (hp,) = torch.autograd.grad(gh, xh, grad_outputs=p, retain_graph=True)
                return hp

            return _conjugate_gradient(hvp, v, tol, 4 * z.shape[-1] + 20)

    if y.requires_grad:
        y.register_hook(implicit)
    return y


class BiLipschitz(nn.Module):
    """``f(z) = grad F*(z) + alpha z`` on ``R^n``: alpha-inverse-Lipschitz and (alpha + beta)-Lipschitz.

    Args:
        dim: ``n``.
        alpha: the lower (inverse-Lipschitz) constant, ``> 0``.
        beta: ``> 0``; the upper constant is ``alpha + beta``.
        hidden: the ICNN's hidden widths.
        tol, max_iter: the conjugate solver's gradient-norm tolerance and iteration cap.

    Shapes: ``(..., n) -> (..., n)``.
    """

    def __init__(self, dim: int, alpha: float = 1.0, beta: float = 1.0, hidden=(64, 64), tol: float = 1e-5,
                 max_iter: int = 50):
        super().__init__()
        self.dim = check_dim("dim", dim)
        self.alpha = check_constant("alpha", alpha, positive=True)
        self.beta = check_constant("beta", beta, positive=True)
        self.tol, self.max_iter = check_constant("tol", tol, positive=True), check_dim("max_iter", max_iter)
        self.potential = ICNN(self.dim, hidden)

    def strongly_convex_potential(self, x: torch.Tensor) -> torch.Tensor:
        """``F(x) = psi(x) + ||x||^2 / (2 beta)``, shape ``(...,)``."""
        return self.potential(x) + (x * x).sum(-1) / (2.0 * self.beta)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = conjugate_gradient_map(self.strongly_convex_potential, z, tol=self.tol, max_iter=self.max_iter)
        return x + self.alpha * z

    @property
    def bounds(self) -> tuple[float, float]:
        """``(alpha, alpha + beta)``."""
        return self.alpha, self.alpha + self.beta


class BiLipschitzDecoder(nn.Module):
    """``f(z) = g_2(Q g_1(z))``: bi-Lipschitz maps around orthonormal columns ``Q`` (``R^d -> R^D``).

    ``||Q u|| = ||u||``, so ``alpha_1 alpha_2 ||dz|| <= ||df|| <= (alpha_1 + beta_1)(alpha_2 + beta_2) ||dz||``.
    ``alpha`` and ``beta`` are given per map (both maps get the same).
    Shapes: ``(..., d) -> (..., D)``.
    """

    def __init__(self, latent_dim: int, output_dim: int, alpha: float = 1.0, beta: float = 1.0, hidden=(64, 64),
                 output_map: bool = True, **solver):
        super().__init__()
        self.latent_dim = check_dim("latent_dim", latent_dim)
        self.output_dim = check_dim("output_dim", output_dim)
        check_injective(self.latent_dim, self.output_dim)
        self.inner = BiLipschitz(self.latent_dim, alpha, beta, hidden, **solver)
        self.embed = InjectiveLinear(self.latent_dim, self.output_dim, "orthogonal")
        self.outer = BiLipschitz(self.output_dim, alpha, beta, hidden, **solver) if output_map else None

    @property
    def bounds(self) -> tuple[float, float]:
        """``(lower, upper)`` constants of the composition."""
        lo, hi = self.inner.bounds
        if self.outer is not None:
            lo2, hi2 = self.outer.bounds
            lo, hi = lo * lo2, hi * hi2
        return lo, hi

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.embed(self.inner(z))
        return self.outer(x) if self.outer is not None else x
