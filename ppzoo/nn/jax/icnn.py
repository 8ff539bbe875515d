"""Input-convex neural networks and their gradient maps, in JAX (Equinox modules).

The same network as :mod:`ppzoo.nn.torch.icnn`::

    u_1     = A_0 x + b_0
    u_{k+1} = W_k^+ s(u_k) + A_k x + b_k          k = 1 .. K-1
    psi(x)  = w^+ . s(u_K) + a . x

``s = softplus``, ``W_k^+ = softplus(raw_k) >= 0``. Modules are Equinox
pytrees, registered in NumPyro models with ``numpyro.contrib.module.eqx_module``.
Calls accept any leading batch shape: ``(..., n) -> (...)``.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..checks import check_dim, check_hidden, check_nonnegative

__all__ = ["ICNN", "gradient_map", "Dense"]


def _inverse_softplus(w):
    w = np.maximum(np.asarray(w, dtype=np.float64), 1e-6)
    return w + np.log(-np.expm1(-w))


class Dense(eqx.Module):
    """``x @ weight.T + bias`` on ``(..., in)``; initialised like ``torch.nn.Linear`` (uniform, 1/sqrt(fan_in))."""

    weight: jax.Array
    bias: jax.Array | None

    def __init__(self, in_dim: int, out_dim: int, *, key, bias: bool = True):
        k1, k2 = jax.random.split(key)
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = jax.random.uniform(k1, (out_dim, in_dim), minval=-bound, maxval=bound)
        self.bias = jax.random.uniform(k2, (out_dim,), minval=-bound, maxval=bound) if bias else None

    def __call__(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias


class ICNN(eqx.Module):
    """A scalar input-convex network ``psi(x)``, ``x (..., dim) -> (...)``.

    Args:
        dim: input dimension.
        hidden: hidden widths ``(h_1, ..., h_K)``.
        key: a ``jax.random`` key.
        hidden_weights: optional initial hidden-path weights (``W_1 .. W_{K-1}``
            of shapes ``(h_{k+1}, h_k)``, then ``w`` of shape ``(h_K,)``), entrywise >= 0.
    """

    inputs: list
    skip: Dense
    raw_weights: list
    dim: int = eqx.field(static=True)
    hidden: tuple = eqx.field(static=True)

    def __init__(self, dim: int, hidden=(64, 64), *, key, hidden_weights=None):
        self.dim = check_dim("dim", dim)
        self.hidden = check_hidden(hidden)
        keys = jax.random.split(key, len(self.hidden) + 2)
        self.inputs = [Dense(self.dim, h, key=k) for h, k in zip(self.hidden, keys)]
        self.skip = Dense(self.dim, 1, key=keys[-2], bias=False)
        shapes = [(b, a) for a, b in zip(self.hidden[:-1], self.hidden[1:])] + [(self.hidden[-1],)]
        if hidden_weights is None:
            wkeys = jax.random.split(keys[-1], len(shapes))
            weights = [np.abs(np.asarray(jax.random.normal(k, s))) / math.sqrt(s[-1]) for k, s in zip(wkeys, shapes)]
        else:
            weights = list(hidden_weights)
            if len(weights) != len(shapes):
                raise ValueError(f"hidden_weights must hold {len(shapes)} arrays for hidden={self.hidden}, got {len(weights)}")
            weights = [check_nonnegative(f"hidden_weights[{i}]", w) for i, w in enumerate(weights)]
            for i, (w, s) in enumerate(zip(weights, shapes)):
                if w.shape != s:
                    raise ValueError(f"hidden_weights[{i}] must have shape {s}, got {w.shape}")
        self.raw_weights = [jnp.asarray(_inverse_softplus(w), dtype=jnp.float32) for w in weights]

    def hidden_path_weights(self) -> list:
        """The non-negative weights ``[W_1^+, ..., W_{K-1}^+, w^+]``."""
        return [jax.nn.softplus(r) for r in self.raw_weights]

    def __call__(self, x):
        weights = self.hidden_path_weights()
        u = self.inputs[0](x)
        for k in range(1, len(self.hidden)):
            u = jax.nn.softplus(u) @ weights[k - 1].T + self.inputs[k](x)
        return jax.nn.softplus(u) @ weights[-1] + self.skip(x)[..., 0]


def gradient_map(potential, x):
    """``grad_x potential(x)`` for ``x (..., n)`` by a nested ``jax.grad`` (``potential`` is per-sample)."""
    return jax.grad(lambda y: jnp.sum(potential(y)))(x)
