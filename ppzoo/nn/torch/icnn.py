"""Input-convex neural networks (Amos, Xu & Kolter 2017) and their gradient maps, in torch.

An ICNN is a scalar function psi: R^n -> R that is convex in its input by
construction::

    u_1     = A_0 x + b_0
    u_{k+1} = W_k^+ s(u_k) + A_k x + b_k          k = 1 .. K-1
    psi(x)  = w^+ . s(u_K) + a . x

with ``s = softplus`` (convex and non-decreasing) and the hidden-path weights
``W_k^+``, ``w^+`` entrywise non-negative: a non-negative sum of convex
functions plus an affine one is convex, and a convex non-decreasing function
of a convex one is convex. The non-negative weights are stored as
``softplus(raw)``, so any optimiser keeps them valid.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..checks import check_dim, check_hidden, check_nonnegative

__all__ = ["ICNN", "gradient_map"]


def _inverse_softplus(w: torch.Tensor) -> torch.Tensor:
    # weights of exactly 0 are stored as softplus(raw) = 1e-6
    w = w.double().clamp_min(1e-6)
    return (w + torch.log(-torch.expm1(-w))).to(torch.get_default_dtype())


class ICNN(nn.Module):
    """A scalar input-convex network ``psi(x)``, ``x`` of shape ``(..., dim)`` -> ``(...,)``.

    Args:
        dim: input dimension ``n``.
        hidden: widths of the hidden layers ``(h_1, ..., h_K)``.
        hidden_weights: optional initial hidden-path weights, a sequence of
            ``K`` arrays: ``W_1 .. W_{K-1}`` of shapes ``(h_{k+1}, h_k)`` and the
            output weights ``w`` of shape ``(h_K,)``; each must be entrywise >= 0.
    """

    def __init__(self, dim: int, hidden=(64, 64), *, hidden_weights=None):
        super().__init__()
        self.dim = check_dim("dim", dim)
        self.hidden = check_hidden(hidden)
        self.inputs = nn.ModuleList([nn.Linear(self.dim, h) for h in self.hidden])
        self.skip = nn.Linear(self.dim, 1, bias=False)
        shapes = [(b, a) for a, b in zip(self.hidden[:-1], self.hidden[1:])] + [(self.hidden[-1],)]
        if hidden_weights is None:
            # |N(0, 1/fan_in)|: the hidden path starts at the scale of the input path
            raws = [_inverse_softplus(torch.randn(s).abs() / math.sqrt(s[-1])) for s in shapes]
        else:
            weights = list(hidden_weights)
            if len(weights) != len(shapes):
                raise ValueError(f"hidden_weights must hold {len(shapes)} arrays for hidden={self.hidden}, got {len(weights)}")
            raws = []
            for i, (w, s) in enumerate(zip(weights, shapes)):
                a = check_nonnegative(f"hidden_weights[{i}]", w.detach().cpu().numpy() if torch.is_tensor(w) else w)
                if a.shape != s:
                    raise ValueError(f"hidden_weights[{i}] must have shape {s}, got {a.shape}")
                raws.append(_inverse_softplus(torch.as_tensor(a, dtype=torch.get_default_dtype())))
        self.raw_weights = nn.ParameterList([nn.Parameter(r) for r in raws])

    def hidden_path_weights(self) -> list[torch.Tensor]:
        """The non-negative weights ``[W_1^+, ..., W_{K-1}^+, w^+]``."""
        return [F.softplus(r) for r in self.raw_weights]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.hidden_path_weights()
        u = self.inputs[0](x)
        for k in range(1, len(self.hidden)):
            u = F.softplus(u) @ weights[k - 1].T + self.inputs[k](x)
        return F.softplus(u) @ weights[-1] + self.skip(x).squeeze(-1)


def gradient_map(potential, x: torch.Tensor) -> torch.Tensor:
    """``grad_x potential(x)`` for a batch ``x`` of shape ``(..., n)``, differentiable in the parameters.

    The gradient is taken by autograd inside the forward pass
    (``create_graph=True``), so the result can be trained through; under
    ``torch.no_grad()`` it comes back detached.
    """
    keep_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        x_in = x if x.requires_grad else x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(potential(x_in).sum(), x_in, create_graph=True)
    return g if keep_graph else g.detach()
