"""The inverse-Lipschitz decoder of Kinoshita et al. (ICML 2023), in JAX (Equinox).

``f(z) = h_2(B h_1(z))`` with ``h_i = grad psi_i + L x`` (``psi_i`` ICNNs) and
``B`` injective: ``||f(z_1) - f(z_2)|| >= L sigma_min(B) L ||z_1 - z_2||``.
See :mod:`ppzoo.nn.torch.inverse_lipschitz` for the argument; the two
implementations compute the same function.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from ..checks import check_constant, check_dim, check_injective
from .icnn import ICNN, gradient_map

__all__ = ["StronglyMonotoneMap", "InjectiveLinear", "InverseLipschitz", "EMBEDDINGS"]

EMBEDDINGS = ("trainable", "orthogonal", "identity")


class StronglyMonotoneMap(eqx.Module):
    """``h(x) = grad psi(x) + L x``, ``x (..., dim)``: L-inverse-Lipschitz for any ICNN ``psi``."""

    potential: ICNN
    strength: float = eqx.field(static=True)

    def __init__(self, dim: int, hidden=(64, 64), strength: float = 1.0, *, key=None, icnn: ICNN | None = None):
        self.strength = check_constant("strength", strength)
        if icnn is not None and not isinstance(icnn, ICNN):
            raise TypeError(f"icnn must be a ppzoo.nn.jax.ICNN, got {type(icnn).__name__}")
        if icnn is None and key is None:
            raise ValueError("key must be a jax.random key when no icnn is given")
        self.potential = icnn if icnn is not None else ICNN(dim, hidden, key=key)
        if self.potential.dim != dim:
            raise ValueError(f"icnn must read dim={dim} inputs, got one with dim={self.potential.dim}")

    def __call__(self, x, strength=None):
        L = self.strength if strength is None else strength
        return gradient_map(self.potential, x) + L * x


class InjectiveLinear(eqx.Module):
    """``x -> B x``, ``R^d -> R^D`` (``d <= D``) with ``sigma_min(B) >= 1`` (kinds as in the torch module)."""

    left: jax.Array | None
    right: jax.Array | None
    raw_scale: jax.Array | None
    in_dim: int = eqx.field(static=True)
    out_dim: int = eqx.field(static=True)
    kind: str = eqx.field(static=True)

    def __init__(self, in_dim: int, out_dim: int, kind: str = "trainable", *, key):
        self.in_dim, self.out_dim = check_dim("in_dim", in_dim), check_dim("out_dim", out_dim)
        check_injective(self.in_dim, self.out_dim)
        if kind not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {kind!r}")
        self.kind = kind
        k1, k2 = jax.random.split(key)
        self.left = None if kind == "identity" else jax.random.normal(k1, (out_dim, in_dim)) / math.sqrt(out_dim)
        trainable = kind == "trainable"
        self.right = jax.random.normal(k2, (in_dim, in_dim)) / math.sqrt(in_dim) if trainable else None
        self.raw_scale = jnp.full((in_dim,), -2.0) if trainable else None

    def matrix(self):
        """``B``, shape ``(D, d)``."""
        if self.kind == "identity":
            return jnp.eye(self.out_dim, self.in_dim)
        q, _ = jnp.linalg.qr(self.left)
        if self.kind == "orthogonal":
            return q
        v, _ = jnp.linalg.qr(self.right)
        return (q * (1.0 + jax.nn.softplus(self.raw_scale))) @ v.T

    def __call__(self, x):
        if self.kind == "identity":
            pad = [(0, 0)] * (x.ndim - 1) + [(0, self.out_dim - self.in_dim)]
            return jnp.pad(x, pad)
        return x @ self.matrix().T


class InverseLipschitz(eqx.Module):
    """A decoder ``f: R^d -> R^D`` with ``||f(z_1) - f(z_2)|| >= c ||z_1 - z_2||``.

    Args:
        latent_dim, output_dim: ``d <= D``.
        constant: the overall constant ``c >= 0``; each gradient map gets
            ``L = sqrt(c)``. A schedule passes ``constant=`` to the call
            (a number or a traced scalar), which overrides the stored one.
        hidden, embedding, output_map: as in :class:`ppzoo.nn.torch.InverseLipschitz`.
        key: a ``jax.random`` key.

    Shapes: ``z (..., d) -> (..., D)``.
    """

    inner: StronglyMonotoneMap
    embed: InjectiveLinear
    outer: StronglyMonotoneMap | None
    latent_dim: int = eqx.field(static=True)
    output_dim: int = eqx.field(static=True)
    constant: float = eqx.field(static=True)

    def __init__(self, latent_dim: int, output_dim: int, constant: float = 1.0, hidden=(64, 64),
                 embedding: str = "trainable", output_map: bool = True, *, key):
        self.latent_dim = check_dim("latent_dim", latent_dim)
        self.output_dim = check_dim("output_dim", output_dim)
        check_injective(self.latent_dim, self.output_dim)
        self.constant = check_constant("constant", constant)
        k1, k2, k3 = jax.random.split(key, 3)
        self.inner = StronglyMonotoneMap(self.latent_dim, hidden, key=k1)
        self.embed = InjectiveLinear(self.latent_dim, self.output_dim, embedding, key=k2)
        self.outer = StronglyMonotoneMap(self.output_dim, hidden, key=k3) if output_map else None

    def lower_bound(self, constant=None) -> float:
        """The guaranteed constant ``sqrt(c) * sigma_min(B) * sqrt(c)`` (or without ``h_2``)."""
        c = self.constant if constant is None else check_constant("constant", constant)
        s = float(jnp.linalg.svd(self.embed.matrix(), compute_uv=False).min())
        return math.sqrt(c) * s * (math.sqrt(c) if self.outer is not None else 1.0)

    def __call__(self, z, constant=None):
        if constant is None:
            L = math.sqrt(self.constant)
        elif isinstance(constant, (int, float)):
            L = math.sqrt(check_constant("constant", constant))
        else:
            L = jnp.sqrt(constant)
        x = self.embed(self.inner(z, L))
        return self.outer(x, L) if self.outer is not None else x
