"""A Lipschitz MLP by exact spectral normalisation (upper bound only), in JAX (Equinox).

Weights divided by their exact largest singular value, ``tanh`` activations,
output scaled by ``lipschitz``: ``||f(a) - f(b)|| <= lipschitz ||a - b||``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ..checks import check_constant, check_dim, check_hidden
from .icnn import Dense

__all__ = ["SpectralMLP"]


class SpectralMLP(eqx.Module):
    """``f: R^in -> R^out``, ``lipschitz``-Lipschitz. Shapes: ``(..., in_dim) -> (..., out_dim)``."""

    layers: list
    lipschitz: float = eqx.field(static=True)

    def __init__(self, in_dim: int, out_dim: int, hidden=(64, 64), lipschitz: float = 1.0, *, key):
        widths = (check_dim("in_dim", in_dim), *check_hidden(hidden), check_dim("out_dim", out_dim))
        self.lipschitz = check_constant("lipschitz", lipschitz, positive=True)
        keys = jax.random.split(key, len(widths) - 1)
        self.layers = [Dense(a, b, key=k) for a, b, k in zip(widths[:-1], widths[1:], keys)]

    def __call__(self, x):
        for i, layer in enumerate(self.layers):
            w = layer.weight / jnp.linalg.norm(layer.weight, ord=2)
            x = x @ w.T + layer.bias
            if i < len(self.layers) - 1:
                x = jnp.tanh(x)
        return self.lipschitz * x
