"""Empirical Lipschitz ratios ``||f(a) - f(b)|| / ||a - b||`` of a torch map, for checking its bounds."""

from __future__ import annotations

import torch

from ..checks import check_constant, check_dim

__all__ = ["lipschitz_ratios"]


def _ratio(f, a, b):
    return (f(a) - f(b)).norm(dim=-1) / (a - b).norm(dim=-1)


def lipschitz_ratios(f, dim: int, *, num_pairs: int = 10_000, search_pairs: int = 64, search_steps: int = 200,
                     scale: float = 2.0, seed: int = 0, lr: float = 0.05) -> dict:
    """Smallest and largest ratio found on random pairs and by gradient search.

    Random pairs: ``a, b ~ N(0, scale^2 I)``, ``num_pairs`` of them, half of
    them close pairs ``b = a + 1e-3 * scale * e`` (which probe the Jacobian's
    singular values). Search: from ``search_pairs`` random starts, Adam on
    ``(a, b)`` minimises (and separately maximises) the log ratio for
    ``search_steps`` steps; every iterate counts.

    Returns ``{"random_min", "random_max", "search_min", "search_max"}`` (floats).
    """
    dim = check_dim("dim", dim)
    num_pairs, search_pairs = check_dim("num_pairs", num_pairs), check_dim("search_pairs", search_pairs)
    scale = check_constant("scale", scale, positive=True)
    gen = torch.Generator().manual_seed(seed)
    a = scale * torch.randn(num_pairs, dim, generator=gen)
    b = scale * torch.randn(num_pairs, dim, generator=gen)
    close = torch.arange(num_pairs) % 2 == 1
    b[close] = a[close] + 1e-3 * scale * torch.randn(int(close.sum()), dim, generator=gen)
    with torch.no_grad():
        r = torch.cat([_ratio(f, a[i:i + 1024], b[i:i + 1024]) for i in range(0, num_pairs, 1024)])
    out = {"random_min": float(r.min()), "random_max": float(r.max())}
    for sign, key in ((1.0, "search_min"), (-1.0, "search_max")):
        a = (scale * torch.randn(search_pairs, dim, generator=gen)).requires_grad_(True)
        b = (a.detach() + 0.1 * scale * torch.randn(search_pairs, dim, generator=gen)).requires_grad_(True)
        opt = torch.optim.Adam([a, b], lr=lr * scale)
        best = float("inf") if sign > 0 else 0.0
        for _ in range(search_steps):
            ratio = _ratio(f, a, b)
            worst = float(ratio.detach().min()) if sign > 0 else float(ratio.detach().max())
            best = min(best, worst) if sign > 0 else max(best, worst)
            opt.zero_grad()
            (sign * torch.log(ratio).sum()).backward()
            opt.step()
        out[key] = best
    return out
