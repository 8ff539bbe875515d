"""One Pyro SVI step, the loss and its gradient with respect to the parameters, as one compiled graph.

``make_fx`` runs the step once and records every ATen op it dispatches: the
guide and model traces, the objective and the backward pass
(``torch.autograd.grad``), so the graph has no Python, no effect handlers and
no autograd engine left in it; ``torch.jit.trace`` then compiles the graph
(both in :func:`~.torch_graph.compile_graph`, the sampler's compile step
too), which runs without TorchScript's optimisation passes (see ``StepGraph``).
The graph's inputs are the parameters themselves (the parameter store's
unconstrained tensors, ``torch.nn`` weights registered with ``pyro.module``
included: the tracer follows those very tensor objects wherever the programs
use them, so nothing in the programs has to change) and the tensors that
change from step to step (subsample indices, the objective's numbers such as
``beta``, the tensors among the programs' arguments).

Random draws stay in the graph as ops (``normal_``, ``randperm``, ...): every
call draws afresh from torch's generator, in the same order as an eager step,
so a compiled fit reproduces the eager one's draws.

What a graph cannot hold makes :func:`compile_step` answer ``None`` and a
reason, and the caller stays eager: Python control flow that reads a value
computed from the parameters or the draws (``make_fx`` refuses to read one),
an op the tracer cannot follow, a loss that does not depend on the
parameters. Reads of the data alone (a shape, a check of the inputs) are
fine: the data do not change.
"""

from __future__ import annotations

import torch
from torch.utils import _pytree as pytree

from ppzoo.backends.torch_graph import compile_graph

__all__ = ["compile_step", "StepGraph"]


class StepGraph:
    """``step(inputs) -> (loss, grads)`` or ``None`` where ``inputs`` no longer match the trace.

    ``grads`` is aligned with the ``leaves`` given to :func:`compile_step`
    (``None`` for a leaf the loss does not use). ``inputs`` is the pytree the
    step was traced with: its tensors may change value from call to call; its
    structure, its tensors' shapes and dtypes and its other leaves must not.
    """

    def __init__(self, compiled, leaves, used, spec, constants, signature):
        self._compiled = compiled
        #: the parameters, in the order of the gradients
        self.leaves = list(leaves)
        self._used = used
        self._spec = spec
        self._constants = constants
        self._signature = signature

    def __call__(self, inputs):
        tensors, spec, constants = _split(inputs)
        if spec != self._spec or not _same_constants(constants, self._constants) or _signature(tensors) != self._signature:
            return None
        # TorchScript's optimising executor rewrites every addmm as mm + add (on the benchmark's VAE: 850 mm
        # and 900 add calls per 50 steps against 550 mm and 300 addmm): about 10% slower than the traced ops
        with torch.no_grad(), torch.jit.optimized_execution(False):
            loss, grads = self._compiled(self.leaves, tensors)
        grads = iter(grads)
        return loss, [next(grads) if used else None for used in self._used]


#: marks a tensor's place among the constant leaves
_TENSOR = object()


def _split(inputs):
    """``(tensor leaves, tree spec, non-tensor leaves with _TENSOR in the tensors' places)``."""
    flat, spec = pytree.tree_flatten(inputs)
    tensors = [x for x in flat if isinstance(x, torch.Tensor)]
    constants = [_TENSOR if isinstance(x, torch.Tensor) else x for x in flat]
    return tensors, spec, constants


def _same_constants(a, b):
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x is y:
            continue
        try:
            if type(x) is not type(y) or not bool(x == y):
                return False
        except (TypeError, ValueError):  # e.g. an array, whose == is elementwise
            return False
    return True


def _signature(tensors):
    return [(tuple(t.shape), t.dtype, t.device) for t in tensors]


def _rebuild(spec, constants, tensors):
    tensors = iter(tensors)
    return pytree.tree_unflatten([next(tensors) if c is _TENSOR else c for c in constants], spec)


def _reads_a_value(err):
    return "_local_scalar_dense" in str(err) or "data-dependent" in str(err)


def compile_step(loss_fn, leaves, inputs, rng_devices=()):
    """Trace ``loss_fn(inputs)`` and its gradient with respect to ``leaves`` into one graph.

    Args:
        loss_fn: ``inputs -> loss``, a scalar tensor computed from ``leaves``
            (tensors that require grad, used by the programs directly).
        leaves: the parameters, in the order of the returned gradients.
        inputs: a pytree of what changes from step to step (see :class:`StepGraph`).
        rng_devices: CUDA devices whose generators the trace may advance.

    Returns ``(StepGraph, None)``, or ``(None, reason)`` where the step cannot
    be compiled. The trace runs the step once for real; the random stream is
    restored afterwards, so tracing draws nothing the fit will see.
    """
    leaves = list(leaves)
    tensors, spec, constants = _split(inputs)
    used = []

    def joint(leaves, tensors):
        loss = loss_fn(_rebuild(spec, constants, tensors))
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        used[:] = [g is not None for g in grads]
        return loss.detach(), [g for g in grads if g is not None]

    with torch.random.fork_rng(devices=list(rng_devices)):
        try:
            compiled = compile_graph(lambda leaves, tensors: joint(leaves, tensors), (leaves, tensors))
        except RuntimeError as err:
            if _reads_a_value(err):
                return None, "the programs' Python control flow reads a value computed from the parameters or the draws"
            if "does not require grad" in str(err) or "One of the differentiated Tensors" in str(err):
                return None, "the loss does not depend on the parameters"
            return None, f"the step could not be traced ({type(err).__name__}: {_first_line(err)})"
        except Exception as err:  # noqa: BLE001 - whatever the tracer cannot follow, the eager step is the answer
            return None, f"the step could not be traced ({type(err).__name__}: {_first_line(err)})"
        if not any(used):
            return None, "the loss does not depend on the parameters"
    return StepGraph(compiled, leaves, used, spec, constants, _signature(tensors)), None


def _first_line(err):
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""
