"""The one compile step of the Pyro backend: record a function's ATen ops, then compile them.

``make_fx`` runs ``fn`` once on real tensors and records every ATen op it
dispatches: Pyro's effect handlers, ``torch.func.vmap`` and the backward
pass (``torch.func.grad`` or ``torch.autograd.grad``) are unrolled into a
plain graph, so none of their Python cost is paid again. ``torch.jit.trace``
then compiles that graph (``torch.jit.trace`` alone cannot see through
``torch.func``; ``make_fx`` can). Both the sampler's chain-batched gradient
(:mod:`.pyro_backend`) and the SVI step (:mod:`.pyro_svi_graph`) go through
:func:`compile_graph`.
"""

from __future__ import annotations

import warnings

import torch
from torch.fx.experimental.proxy_tensor import make_fx

__all__ = ["compile_graph"]


def compile_graph(fn, example_inputs: tuple):
    """``fn``'s ops for inputs shaped like ``example_inputs``, compiled.

    ``fn`` takes the inputs as positional arguments (``make_fx`` reads its
    arity from the signature). Returns the ``torch.jit.trace`` of the
    ``make_fx`` graph, or the graph itself where ``torch.jit.trace`` fails (it
    then runs op by op, a little more Python per op). Raises what ``make_fx``
    raises (a model's Python control flow on a traced value, an op it cannot
    follow): the caller decides what to fall back to.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        graph = make_fx(fn)(*example_inputs)
        try:
            return torch.jit.trace(graph, example_inputs, check_trace=False)
        except Exception:  # noqa: BLE001 - whatever TorchScript refuses, the fx graph runs as it is
            return graph
