"""Guards on the Pyro backend's compiled graphs: a compiled graph must never change the answer.

A traced graph (``make_fx`` or ``torch.jit.trace``) keeps the branch that the
model's Python control flow took while it was traced: ``if w > 0:`` on a
parameter is decided once, for the point the graph was traced at, and every
later call replays that branch. :class:`~.pyro_backend.PyroBackend` guards
its graphs twice:

- :func:`parameter_reads`, before a graph is traced: one eager run of the
  model's potential, for one chain, under a ``TorchFunctionMode`` that marks
  every tensor computed from ``theta`` and records where such a tensor is
  turned into a Python value (``bool``, ``float``, ``int``, ``.item()``,
  ``.tolist()``, ``.numpy()``): the model's control flow then depends on the
  parameters, and the backend runs eagerly from the start, before any draw.
  Reads of the data alone (a check of the observations, a shape) are not
  recorded: they take the same branch at every point.
- :class:`CheckedGraph`, while the graph runs: at its first call and at the
  calls :func:`scheduled` names (1, 2, 4, 8, ..., then every
  :data:`CHECK_PERIOD`-th), the graph's values and gradients at the chains'
  current points (:data:`CHECK_CHAINS` chains per check, in turn) are
  compared with an eager run at the same points (:func:`relative_gap`, to
  :data:`RTOL` of the potential's magnitude); at the first disagreement the
  backend runs eagerly from then on, that call included. This catches what
  the probe cannot see (a branch taken on a minibatch's values, a read that
  escapes the marking: a model that keeps state between calls, say).

What the guard guarantees: a model whose Python control flow reads a value
computed from the parameters is found before its first draw, whichever
branch the first trace took, and then runs exactly as with
``jit_compile=False`` (the same draws); every compiled graph agrees with
eager at its first call and at every scheduled call, at the points the
checked chains were at. What it does not: a disagreement only the schedule
can see is found at the first scheduled call that lands where graph and
eager differ. The steps between the last agreeing check and that one may
have used the traced branch, and they are not redone (their draws stay
biased toward it), so the warning then says to rerun with
``jit_compile=False``; and a region the chains visit only between checks is
never seen: with a fraction ``p`` of the steps there, each check finds it
with probability about ``p``, so the bias it leaves is of order ``p`` times
the branches' difference, and about ``(1 - p) ** checks`` is the chance of
missing it altogether.
"""

from __future__ import annotations

import os
import traceback

import torch
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree

__all__ = ["parameter_reads", "CheckedGraph", "scheduled", "relative_gap", "eager_warning",
           "CHECK_PERIOD", "CHECK_CHAINS", "RTOL"]

#: after the calls at powers of two, a compiled graph is checked against eager every this many calls
CHECK_PERIOD = 1024
#: chains run eagerly per check (in turn)
CHECK_CHAINS = 4
#: float32 tolerance of a check, relative to the potential's magnitude (:func:`relative_gap`)
RTOL = 1e-4

#: tensor methods that turn a tensor into a Python value (what Python control flow reads)
_READS = frozenset({"__bool__", "__float__", "__int__", "__index__", "__complex__", "item", "tolist", "numpy",
                    "__array__"})
_INTERNAL = tuple(os.path.dirname(m.__file__) + os.sep for m in (torch, __import__("pyro"))) + (
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
    os.path.dirname(traceback.__file__) + os.sep,
)


class _Reads(TorchFunctionMode):
    """Marks every tensor computed from a marked one; records where a marked tensor is read."""

    def __init__(self, marked):
        super().__init__()
        self._ids = {id(t) for t in marked}
        self._keep = list(marked)  # alive, so that no id is reused while marking
        self.found = []

    def _mark(self, tensor):
        if isinstance(tensor, torch.Tensor) and id(tensor) not in self._ids:
            self._ids.add(id(tensor))
            self._keep.append(tensor)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        leaves = pytree.tree_leaves((args, kwargs))
        marked = any(isinstance(t, torch.Tensor) and id(t) in self._ids for t in leaves)
        name = getattr(func, "__name__", "")
        if marked and name in _READS:
            self.found.append(_where(name))
        out = func(*args, **kwargs)
        if marked:
            for t in pytree.tree_leaves(out):
                self._mark(t)
            if args and (name == "__setitem__" or (name.endswith("_") and not name.startswith("__"))):
                self._mark(args[0])  # written into in place
            if "out" in kwargs:
                for t in pytree.tree_leaves(kwargs["out"]):
                    self._mark(t)
        return out


def _where(name):
    """``"<file>:<line> (<call>)"`` of the innermost frame outside torch, Pyro and ppzoo's backends."""
    frames = traceback.extract_stack()[:-2]
    outside = [f for f in frames if not f.filename.startswith(_INTERNAL)]
    frame = (outside or frames)[-1]
    return f"{frame.filename}:{frame.lineno} ({name})"


def parameter_reads(fn, theta, idx):
    """Where ``fn(theta, idx)`` (one chain: ``theta (D,)``, ``idx (B,)``) turns a tensor computed from
    ``theta`` into a Python value: a list of ``"<file>:<line> (<method>)"``, empty when it never does.
    Runs ``fn`` once eagerly (the caller sets Pyro's validation); should the run fail under the
    marking mode, nothing is reported and the graph's checks remain."""
    theta = theta.detach().clone()
    try:
        with _Reads([theta]) as mode:
            fn(theta, idx)
    except Exception:  # noqa: BLE001 - the model's own errors surface when the graph is traced
        return []
    return list(dict.fromkeys(mode.found))


def scheduled(call):
    """Whether the ``call``-th call (from 1) of a compiled graph is checked against eager."""
    return call & (call - 1) == 0 or call % CHECK_PERIOD == 0


def relative_gap(compiled, eager):
    """The largest gap between ``(values (C,), grads (C, D))`` of a graph and of eager, chain by chain,
    relative to the chain's magnitude: ``|U|`` for the value; for the gradient the larger of its
    largest entry and ``|U|`` (a gradient near a mode is a small sum of large per-datum terms, and
    summed in another order in float32 it moves by a few ``1e-7 |U|``). ``inf`` where one is finite
    and the other is not."""
    (value, grad), (value_e, grad_e) = compiled, eager
    finite = torch.isfinite(value) & torch.isfinite(grad).all(-1)
    finite_e = torch.isfinite(value_e) & torch.isfinite(grad_e).all(-1)
    if (finite != finite_e).any():
        return float("inf")
    if not finite.any():
        return 0.0
    value, grad, value_e, grad_e = value[finite], grad[finite], value_e[finite], grad_e[finite]
    scale_v = torch.maximum(value_e.abs(), value.abs()).clamp(min=1.0)
    scale_g = torch.maximum(torch.maximum(grad_e.abs().amax(-1), grad.abs().amax(-1)), scale_v)
    gaps = torch.maximum((value - value_e).abs() / scale_v, (grad - grad_e).abs().amax(-1) / scale_g)
    return float(gaps.max())


def chain_rows(idx, rows):
    """The indices of the chains ``rows``: ``idx[rows]`` for per-chain indices ``(C, B)``; a shared
    ``(B,)`` (the full-data pass's chunks, the same for every chain) is every chain's."""
    return idx if idx.dim() == 1 else idx[rows]


class CheckedGraph:
    """A compiled ``(theta, idx) -> (values, grads)`` with its call count; :meth:`__call__` runs it
    and, at :func:`scheduled` calls, ``eager`` too: ``(result, disagreed)``, the eager result (all
    chains) where the graph disagreed.

    A check runs at most :data:`CHECK_CHAINS` chains eagerly (the eager run costs one model trace
    per chain, the graph about one in all), taking the chains in turn from check to check, so that
    its cost does not grow with the number of chains."""

    def __init__(self, graph, eager):
        self.graph, self.eager, self.calls, self.checks, self.gap = graph, eager, 0, 0, 0.0

    def __call__(self, theta, idx, check=True):
        self.calls += 1
        out = self.graph(theta, idx)
        if not (check and scheduled(self.calls)):
            return out, False
        num_chains = theta.shape[0]
        first = self.checks * CHECK_CHAINS
        rows = (torch.arange(min(CHECK_CHAINS, num_chains), device=theta.device) + first) % num_chains
        self.checks += 1
        self.gap = relative_gap((out[0][rows], out[1][rows]), self.eager(theta[rows], chain_rows(idx, rows)))
        if self.gap <= RTOL:
            return out, False
        return self.eager(theta, idx), True


def eager_warning(found=None, calls=None, key=None, gap=None):
    """The ``RuntimeWarning`` text for the fallback, from the probe's ``found`` or a check's ``calls``."""
    head = "value-dependent Python control flow in the model"
    tail = "running eagerly; pass jit_compile=False to skip the compiled graph"
    if found:
        where = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        return (f"{head}: it turns a tensor computed from the parameters into a Python value at {where}, so a "
                f"compiled graph would keep the branch it was traced on; {tail} (the draws are those of an "
                "eager run)")
    return (f"{head} (or something else a trace cannot hold): the compiled graph {key} disagreed with an eager "
            f"run at its call {calls}, at points the chains visited, by {gap:.2g} of the potential's magnitude "
            f"(tolerance {RTOL:g}); {tail}. The steps before that call used the compiled graph: rerun with "
            "jit_compile=False for draws that do not depend on it")
