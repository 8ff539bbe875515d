"""A Pyro fit's sample-average objective as a function of one flat vector (for a quasi-Newton refinement).

:func:`saa_problem` runs inside the fit's parameter-store scope: the store's
unconstrained tensors (what Pyro's optimisers move) are flattened into one
vector, and the objective of :mod:`ppzoo.inference.svi.saa` over fixed draws
(the random stream reseeded before each evaluation, so every evaluation
sees the same draws) and its gradient are computed on all the data.
Evaluations leave the store at the point evaluated; the caller's random
state is put back after each.
"""

from __future__ import annotations

import numpy as np
import pyro
import pyro.util
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from ppzoo.backends.saa_problem import SAAProblem
from ppzoo.backends.svi_common import is_auxiliary

__all__ = ["saa_problem"]


def saa_problem(objective, model, guide, args, kwargs, *, plate, seeds) -> SAAProblem:
    """The sample-average ``objective`` at the current parameter store (call inside the fit's scope).

    ``plate = (name, N)`` or ``(None, None)``: the data plate is seen whole.
    ``seeds`` are accepted for symmetry with the NumPyro problem (any seed works here).
    """
    if plate[0] is not None:
        whole = {plate[0]: torch.arange(plate[1], device=_device(args, kwargs))}
        model, guide = poutine.condition(model, data=whole), poutine.condition(guide, data=whole)
    store = pyro.get_param_store()
    names = list(store.keys())
    leaves = [store._params[n] for n in names]  # the unconstrained tensors Pyro's optimisers move
    shapes = [leaf.shape for leaf in leaves]
    sizes = [leaf.numel() for leaf in leaves]
    x0 = torch.cat([leaf.detach().reshape(-1) for leaf in leaves]).cpu().numpy().astype(np.float64)

    def set_point(x):
        values = torch.as_tensor(np.asarray(x), dtype=leaves[0].dtype, device=leaves[0].device)
        with torch.no_grad():
            for leaf, part, shape in zip(leaves, torch.split(values, sizes), shapes):
                leaf.copy_(part.reshape(shape))

    def evaluate(x, seed):
        set_point(x)
        for leaf in leaves:
            leaf.grad = None
        state = pyro.util.get_rng_state()
        try:
            pyro.set_rng_seed(seed)
            with pyro.validation_enabled(False):
                loss = objective(model, guide, *args, **kwargs)
            grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        finally:
            pyro.util.set_rng_state(state)
        flat = torch.cat([
            (torch.zeros_like(leaf) if g is None else g).reshape(-1) for leaf, g in zip(leaves, grads)
        ])
        return float(loss.detach()), flat.detach().cpu().numpy().astype(np.float64)

    def params_at(x):
        set_point(x)
        return {n: store[n].detach().cpu().numpy() for n in names}

    def draws(x, num, seed):
        set_point(x)
        state = pyro.util.get_rng_state()
        try:
            pyro.set_rng_seed(seed)
            with torch.no_grad(), pyro.validation_enabled(False):
                runs = [poutine.trace(guide).get_trace(*args, **kwargs) for _ in range(num)]
        finally:
            pyro.util.set_rng_state(state)
        names = [n for n, site in runs[0].nodes.items()
                 if site["type"] == "sample" and not site_is_subsample(site) and not site["is_observed"]
                 and not is_auxiliary(site)]
        return {n: torch.stack([r.nodes[n]["value"].detach() for r in runs]).cpu().numpy() for n in names}

    return SAAProblem(x0, evaluate, params_at, draws)


def _device(args, kwargs):
    tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    return tensors[0].device if tensors else torch.device("cpu")
