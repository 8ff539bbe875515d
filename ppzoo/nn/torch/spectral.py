"""A Lipschitz MLP by exact spectral normalisation (an upper bound only), in torch.

Each layer's weight is divided by its largest singular value (computed
exactly, not by power iteration, so the bound is a guarantee rather than an
estimate), activations are 1-Lipschitz (``tanh``), and the output is scaled
by ``lipschitz``: ``||f(a) - f(b)|| <= lipschitz * ||a - b||``. Nothing
bounds it from below, so as a decoder it can collapse: the baseline the
inverse-Lipschitz decoders are compared against.
"""

from __future__ import annotations

import torch
from torch import nn

from ..checks import check_constant, check_dim, check_hidden

__all__ = ["SpectralMLP"]


class SpectralMLP(nn.Module):
    """``f: R^in -> R^out``, ``lipschitz``-Lipschitz. Shapes: ``(..., in_dim) -> (..., out_dim)``."""

    def __init__(self, in_dim: int, out_dim: int, hidden=(64, 64), lipschitz: float = 1.0):
        super().__init__()
        widths = (check_dim("in_dim", in_dim), *check_hidden(hidden), check_dim("out_dim", out_dim))
        self.lipschitz = check_constant("lipschitz", lipschitz, positive=True)
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            w = layer.weight / torch.linalg.matrix_norm(layer.weight, ord=2)
            x = x @ w.T + layer.bias
            if i < len(self.layers) - 1:
                x = torch.tanh(x)
        return self.lipschitz * x
