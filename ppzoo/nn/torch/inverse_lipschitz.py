"""The inverse-Lipschitz decoder of Kinoshita et al. (ICML 2023), in torch.

The decoder is the composition

    f(z) = h_2(B h_1(z)),   h_i(x) = grad[psi_i(x) + (L/2)||x||^2] = grad psi_i(x) + L x

with ``psi_i`` input-convex networks and ``B`` an injective linear map
``R^d -> R^D``. A gradient of a convex function is monotone, so ``h_i`` is
L-strongly monotone, ``<h(a) - h(b), a - b> >= L ||a - b||^2``, and by
Cauchy-Schwarz L-inverse-Lipschitz: ``||h(a) - h(b)|| >= L ||a - b||``. With
``||B u|| >= sigma_min(B) ||u||`` the composition satisfies

    ||f(z_1) - f(z_2)|| >= L * sigma_min(B) * L * ||z_1 - z_2||.

The user sets the overall constant ``c`` (``constant=``); each gradient map
gets ``L = sqrt(c)`` and ``B`` keeps ``sigma_min(B) >= 1``, so the bound is
at least ``c``. ``c = 0`` is the plain (Brenier-map) decoder of Wang, Blei &
Cunningham (2021), injective but with no lower bound.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..checks import check_constant, check_dim, check_injective
from .icnn import ICNN, gradient_map

__all__ = ["StronglyMonotoneMap", "InjectiveLinear", "InverseLipschitz", "EMBEDDINGS"]

EMBEDDINGS = ("trainable", "orthogonal", "identity")


class StronglyMonotoneMap(nn.Module):
    """``h(x) = grad psi(x) + L x``, ``x`` of shape ``(..., dim)``: L-inverse-Lipschitz for any ICNN ``psi``."""

    def __init__(self, dim: int, hidden=(64, 64), strength: float = 1.0, icnn: ICNN | None = None):
        super().__init__()
        self.strength = check_constant("strength", strength)
        if icnn is not None and not isinstance(icnn, ICNN):
            raise TypeError(f"icnn must be a ppzoo.nn.torch.ICNN, got {type(icnn).__name__}")
        self.potential = icnn if icnn is not None else ICNN(dim, hidden)
        if self.potential.dim != dim:
            raise ValueError(f"icnn must read dim={dim} inputs, got one with dim={self.potential.dim}")

    def forward(self, x: torch.Tensor, strength: float | None = None) -> torch.Tensor:
        L = self.strength if strength is None else strength
        return gradient_map(self.potential, x) + L * x


class InjectiveLinear(nn.Module):
    """``x -> B x`` from ``R^d`` to ``R^D`` (``d <= D``) with ``sigma_min(B) >= 1``.

    ``kind``:
        ``"identity"``: ``B = [I_d; 0]`` (fixed, every singular value 1);
        ``"orthogonal"``: ``B = Q`` with orthonormal columns (QR of a free
        matrix; every singular value 1, so ``B`` is also 1-Lipschitz);
        ``"trainable"``: ``B = Q diag(1 + softplus(s)) V^T`` with ``Q`` orthonormal
        columns and ``V`` orthogonal: every singular value is ``1 + softplus(s_j) > 1``.
    """

    def __init__(self, in_dim: int, out_dim: int, kind: str = "trainable"):
        super().__init__()
        self.in_dim, self.out_dim = check_dim("in_dim", in_dim), check_dim("out_dim", out_dim)
        check_injective(self.in_dim, self.out_dim)
        if kind not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {kind!r}")
        self.kind = kind
        if kind != "identity":
            self.left = nn.Parameter(torch.randn(out_dim, in_dim) / math.sqrt(out_dim))
        if kind == "trainable":
            self.right = nn.Parameter(torch.randn(in_dim, in_dim) / math.sqrt(in_dim))
            self.raw_scale = nn.Parameter(torch.full((in_dim,), -2.0))

    def matrix(self) -> torch.Tensor:
        """``B``, shape ``(D, d)``."""
        if self.kind == "identity":
            return torch.eye(self.out_dim, self.in_dim)
        q, _ = torch.linalg.qr(self.left)
        if self.kind == "orthogonal":
            return q
        v, _ = torch.linalg.qr(self.right)
        return (q * (1.0 + F.softplus(self.raw_scale))) @ v.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "identity":
            return F.pad(x, (0, self.out_dim - self.in_dim))
        return x @ self.matrix().T


class InverseLipschitz(nn.Module):
    """A decoder ``f: R^d -> R^D`` with ``||f(z_1) - f(z_2)|| >= c ||z_1 - z_2||``.

    ``f(z) = h_2(B h_1(z))`` (see the module docstring), so distinct latent
    codes give outputs at least ``c`` times their distance apart and the
    posterior cannot collapse onto the prior. The output is unconstrained
    (e.g. Bernoulli logits or a Gaussian mean).

    Args:
        latent_dim, output_dim: ``d <= D``.
        constant: the overall inverse-Lipschitz constant ``c >= 0``; each of
            the two gradient maps gets ``L = sqrt(c)``. Change it during
            training (annealing) by setting ``decoder.constant`` or passing
            ``constant=`` to the call.
        hidden: hidden widths of both ICNNs.
        embedding: how ``B`` is parametrised (:class:`InjectiveLinear`).
        output_map: ``False`` drops ``h_2`` (then ``f = B h_1`` with bound ``sqrt(c)``
            times ``sigma_min(B)``; set ``constant`` to ``c**2`` to keep ``c``).

    Shapes: ``z (..., d) -> (..., D)``.
    """

    def __init__(self, latent_dim: int, output_dim: int, constant: float = 1.0, hidden=(64, 64),
                 embedding: str = "trainable", output_map: bool = True):
        super().__init__()
        self.latent_dim = check_dim("latent_dim", latent_dim)
        self.output_dim = check_dim("output_dim", output_dim)
        check_injective(self.latent_dim, self.output_dim)
        self.constant = constant
        self.inner = StronglyMonotoneMap(self.latent_dim, hidden)
        self.embed = InjectiveLinear(self.latent_dim, self.output_dim, embedding)
        self.outer = StronglyMonotoneMap(self.output_dim, hidden) if output_map else None

    @property
    def constant(self) -> float:
        return self._constant

    @constant.setter
    def constant(self, value):
        self._constant = check_constant("constant", value)

    def lower_bound(self, constant: float | None = None) -> float:
        """The guaranteed inverse-Lipschitz constant: ``sqrt(c) * sigma_min(B) * sqrt(c)`` (or without ``h_2``)."""
        c = self.constant if constant is None else check_constant("constant", constant)
        with torch.no_grad():
            s = float(torch.linalg.svdvals(self.embed.matrix()).min())
        return math.sqrt(c) * s * (math.sqrt(c) if self.outer is not None else 1.0)

    def forward(self, z: torch.Tensor, constant: float | None = None) -> torch.Tensor:
        c = self.constant if constant is None else check_constant("constant", constant)
        L = math.sqrt(c)
        x = self.embed(self.inner(z, L))
        return self.outer(x, L) if self.outer is not None else x
