"""Pyro programs seen through the gradient-oracle contract (PyTorch).

The minibatch is chosen by ``poutine.condition`` on the data plate's name,
which fixes the plate's subsample indices; the plate then scales the data
sites by ``N / B`` itself. Latent values are conditioned in the constrained
space, ``biject_to(support)`` from Pyro maps ``theta`` there and its
log-Jacobian enters the prior term.

Chains: the value and gradient of every chain, ``vmap(grad_and_value(.))``
over one chain's potential, is traced once per shape into a graph of ATen
ops with ``make_fx`` (which unrolls both the ``vmap`` and the backward pass)
and compiled with ``torch.jit.trace``, so the Python cost of Pyro's effect
handlers is paid once, when tracing, and the graph holds one chain-batched
copy of the model (eager ``vmap`` over a Pyro trace costs about as much as a
Python loop over chains; ``torch.jit.trace`` cannot see through ``vmap``
itself). Models ``vmap`` cannot run fall back to one traced graph per chain,
as Pyro's own HMC compiles with ``jit_compile=True``. Distribution argument
validation is switched off inside the potential, since its data-dependent
checks cannot be traced. A trace keeps the branch the model's Python control
flow took, so the graphs are guarded (:mod:`.pyro_guard`) and the backend
runs eagerly where a model's control flow reads the parameters.
"""

from __future__ import annotations

import re
import warnings
from functools import partial

import array_api_compat
import numpy as np
import pyro
import pyro.util
import torch
from pyro import poutine
from pyro.distributions.transforms import biject_to
from pyro.infer.autoguide.initialization import InitMessenger
from pyro.poutine.util import site_is_subsample

from ppzoo.backends.base import Backend, reduce_info
from ppzoo.backends.batching import (
    BatchArgs,
    check_observed_lengths,
    check_point,
    plan_minibatches,
    plate_sizes,
    take_batch,
    unobserved_data,
)
from ppzoo.backends.layout import (
    DeterministicSite,
    PlateRecord,
    deterministic_site,
    model_name,
    plan_layout,
    reads_data_elsewhere,
)
from ppzoo.backends.pyro_guard import RTOL, CheckedGraph, chain_rows, eager_warning, parameter_reads
from ppzoo.backends.sites import (
    Site,
    constrain,
    fixed_sites,
    log_density,
    log_joint,
    plate_scale,
    pointwise_log_likelihood,
    program_view,
    raise_unobserved,
    site_records,
    unconstrain,
)
from ppzoo.backends.torch_graph import compile_graph

__all__ = ["PyroBackend", "trace_pyro"]

#: data per chunk when the full-data gradient or likelihood is summed
FULL_DATA_CHUNK = 4096
#: the fallback graph (for models ``vmap`` cannot run) holds one copy of the
#: model per chain; past this many chains it is not worth compiling
MAX_COMPILED_CHAINS = 64


def torch_device(device):
    if device is None:
        return torch.device("cpu")
    asked = device
    if isinstance(device, str) and device.split(":")[0] == "gpu":  # JAX's name for it, as ppzoo.checks allows
        device = "cuda" + device[3:]
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={asked!r} is not a torch device: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={asked!r} was asked for but CUDA is not available to torch")
    if device.type == "cpu" and device.index not in (None, 0):
        raise ValueError(f"device={str(device)!r}: torch has 1 cpu device(s), numbered 0 to 0")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was asked for but CUDA is not available to torch")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device={str(device)!r}: torch has {count} CUDA device(s), numbered 0 to {count - 1}")
    return device


def to_torch(tree, device):
    def convert(leaf):
        if type(leaf).__module__.startswith("pandas") and hasattr(leaf, "to_numpy"):  # a Series, a DataFrame
            leaf = leaf.to_numpy()
        if isinstance(leaf, torch.Tensor):  # floats in the default dtype, as NumPy's below and the parameters
            return leaf.to(device=device, dtype=torch.get_default_dtype() if leaf.is_floating_point() else None)
        if isinstance(leaf, np.ndarray) or type(leaf).__module__.startswith(("jax", "jaxlib")):
            leaf = np.asarray(leaf)
            dtype = torch.get_default_dtype() if np.issubdtype(leaf.dtype, np.floating) else None
            return torch.as_tensor(leaf, dtype=dtype, device=device)
        if isinstance(leaf, (list, tuple)):
            return type(leaf)(convert(v) for v in leaf)
        if isinstance(leaf, dict):
            return {k: convert(v) for k, v in leaf.items()}
        return leaf

    return convert(tree)


def feasible(site):
    """A value for a latent site that no handler has given one: for a continuous site
    ``biject_to(support)`` of zeros (a point of the support, as Pyro's ``init_to_feasible`` but
    without drawing from the prior, so that an improper prior such as ``ImproperUniform`` can be
    traced); a discrete site is drawn from its distribution."""
    fn = site["fn"]
    if fn.support.is_discrete:
        return fn.sample()
    transform = biject_to(fn.support)
    device = next((v.device for v in vars(fn).values() if isinstance(v, torch.Tensor)), None)
    return transform(torch.zeros(transform.inverse_shape(fn.shape()), device=device))


def at_check_point(site):
    """As :func:`feasible`, at ``biject_to(support)`` of :func:`~.batching.check_point` values of
    the site's own unconstrained shape (so a site whose shape the data set still gets a value)."""
    fn = site["fn"]
    if fn.support.is_discrete:
        return fn.sample()
    transform = biject_to(fn.support)
    shape = transform.inverse_shape(fn.shape())
    device = next((v.device for v in vars(fn).values() if isinstance(v, torch.Tensor)), None)
    values = torch.as_tensor(check_point(int(np.prod(shape, dtype=int))), dtype=torch.get_default_dtype(), device=device)
    return transform(values.reshape(shape))


def trace_pyro(model, args, kwargs, data=None, point=feasible):
    """Trace a Pyro program once, optionally conditioning on ``data``, validation off; latents not
    in ``data`` take a feasible value (:func:`feasible`, or ``point``) instead of a draw from their prior."""
    fn = poutine.condition(model, data=data) if data else model
    # outside the conditioning, so it sees the conditioned values and leaves them be
    fn = InitMessenger(point)(fn)
    with pyro.validation_enabled(False):
        try:
            return poutine.trace(fn).get_trace(*args, **kwargs)
        except ValueError as err:
            if "subsample_size does not match len(subsample)" not in str(err) or not data:
                raise
            plate = next((name for name, value in data.items() if _is_index_vector(value)), "the data plate")
            raise ValueError(
                f"plate {plate!r} fixes its own subsample_size, and Pyro refuses it any other set of indices: "
                "ppzoo draws the minibatches itself (batch_size=) and needs the plate whole for its full-data "
                f"gradients; write pyro.plate({plate!r}, N, subsample_size=None) (or leave subsample_size out), "
                "indexing the data by the plate's indices as before"
            ) from None


def _is_index_vector(value) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() == 1 and not value.is_floating_point()


def pyro_sites(trace) -> tuple[list[Site], dict[str, PlateRecord]]:
    """The trace's sample statements as :class:`~.sites.Site` and its subsampled plates as ``PlateRecord``."""
    sites, plates = [], {}
    for name, site in trace.nodes.items():
        if site["type"] != "sample":
            continue
        if site_is_subsample(site):
            fn = site["fn"]
            plates[name] = PlateRecord(name, int(fn.size), None if fn.subsample_size in (None, fn.size) else int(fn.subsample_size))
            continue
        if site["infer"].get("_deterministic"):  # pyro.deterministic: reported, not data
            continue
        frames = tuple((f.name, f.dim) for f in site["cond_indep_stack"] if f.vectorized)
        value = site["value"]
        if site["is_observed"] and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = torch.as_tensor(value, dtype=torch.get_default_dtype())  # pyro.condition(model, {"sigma": 1.0})
        sites.append(
            Site(name, site["fn"], value, bool(site["is_observed"]), site.get("scale", 1.0), site.get("mask"), frames)
        )
    return sites, plates


def _throwaway_trace(model, args, kwargs):
    """One trace of ``model`` in a throwaway parameter store, the random streams left as they were."""
    state = pyro.util.get_rng_state()
    try:
        with pyro.get_param_store().scope(), torch.no_grad():
            return trace_pyro(model, to_torch(tuple(args), None), to_torch(dict(kwargs), None))
    finally:
        pyro.util.set_rng_state(state)


def site_names(model, args, kwargs) -> tuple[list, list]:
    """``(latent sites, observed sites)`` of one trace of ``model`` (:func:`_throwaway_trace`)."""
    trace = _throwaway_trace(model, args, kwargs)
    sites = [(n, s["is_observed"]) for n, s in trace.nodes.items() if s["type"] == "sample"
             and not site_is_subsample(s) and not s["infer"].get("_deterministic")]
    return [n for n, o in sites if not o], [n for n, o in sites if o]


def observed_plates(model, args, kwargs) -> dict:
    """``{observed site: {plate name: dim}}`` of one trace of ``model`` (:func:`_throwaway_trace`)."""
    trace = _throwaway_trace(model, args, kwargs)
    return {n: {f.name: f.dim for f in s["cond_indep_stack"] if f.vectorized} for n, s in trace.nodes.items()
            if s["type"] == "sample" and s["is_observed"] and not site_is_subsample(s)
            and not s["infer"].get("_deterministic")}


def conditioned_names(model) -> set:
    """The names of the sites that ``pyro.condition`` / ``poutine.condition`` wrappers around
    ``model`` give values (``pyro.condition(model, data={"sigma": 1.0})``, possibly under other handlers)."""
    from pyro.poutine.condition_messenger import ConditionMessenger
    from pyro.poutine.messenger import _context_wrap

    found, fn = set(), model
    for _ in range(100):
        if isinstance(fn, partial) and fn.func is _context_wrap and len(fn.args) >= 2:
            messenger, fn = fn.args[0], fn.args[1]
            if isinstance(messenger, ConditionMessenger) and isinstance(getattr(messenger, "data", None), dict):
                found |= set(messenger.data)
        elif isinstance(fn, partial):
            fn = fn.func
        else:
            break
    return found


def pyro_deterministic(trace) -> tuple[DeterministicSite, ...]:
    """The trace's ``pyro.deterministic`` statements."""
    found = []
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or not site["infer"].get("_deterministic"):
            continue
        shape = tuple(site["value"].shape)
        frames = [f for f in site["cond_indep_stack"] if f.vectorized]
        # Pyro makes the whole value one event by default; where the plates' dims fit the value
        # (the axis at each plate's dim has the plate's size) they name its axes, as in NumPyro
        fits = all(-len(shape) <= f.dim and shape[f.dim] == f.size for f in frames)
        event_dim = 0 if fits else int(site["fn"].event_dim)
        found.append(deterministic_site(name, shape, [(f.name, f.dim) for f in frames], event_dim))
    return tuple(found)


def _inverse_shape(support, shape):
    return biject_to(support).inverse_shape(torch.Size(shape))


def _numpy(value):
    return value.detach().cpu().numpy()


def _chain_indices(idx, num_chains):
    """Each chain's indices: the rows of per-chain ``idx (C, B)``, or a shared ``idx (B,)`` for every chain."""
    return idx.unbind(0) if idx.dim() == 2 else (idx,) * num_chains


def _side_by_side(fn):
    """``fn`` for every chain, one trace per chain: ``(theta (C, D), idx (C, B) or (B,)) -> (C,)``."""

    def forward(theta, idx):
        return torch.stack([fn(th, ix) for th, ix in zip(theta.unbind(0), _chain_indices(idx, theta.shape[0]))])

    return forward


def _per_chain(fn):
    """Values ``(C,)`` and gradients ``(C, D)`` of ``fn`` by one trace per chain, with autograd."""
    return _with_autograd(_side_by_side(fn))


def _with_autograd(forward):
    def call(theta, idx):
        with torch.enable_grad():
            theta = theta.detach().requires_grad_(True)
            value = forward(theta, idx)
            if not value.requires_grad:  # a term constant in theta (a flat prior's)
                return value.detach(), torch.zeros_like(theta)
            (grad,) = torch.autograd.grad(value.sum(), theta, allow_unused=True)
        return value.detach(), torch.zeros_like(theta) if grad is None else grad

    return call


def _eager(fn):
    """Values ``(C,)`` and gradients ``(C, D)`` of ``fn`` by one eager trace per chain, Pyro's validation off."""
    per_chain = _per_chain(fn)

    def unvalidated(theta, idx):
        with pyro.validation_enabled(False):
            return per_chain(theta, idx)

    return unvalidated


def _compile(fn, theta, idx):
    """A compiled ``(theta (C, D), idx (C, B)) -> (values (C,), grads (C, D))`` for these shapes,
    and how it was compiled (``"vmap"``, ``"per-chain"``, ``"per-chain forward"`` or ``"eager"``).

    First choice: ``make_fx(vmap(grad_and_value(fn)))`` traced by
    ``torch.jit.trace``, one chain-batched graph of forward and backward ops.
    Fallbacks, for models that ``vmap`` cannot run: the chains' traces side by
    side with their backward pass traced too; then, for graphs whose backward
    reuses an op's output (``exp`` in the transform of a positive site) and
    so cannot be traced through ``autograd.grad``, only the forward pass is
    traced and autograd runs on it (how Pyro's HMC compiles).
    """
    with warnings.catch_warnings(), pyro.validation_enabled(False), torch.enable_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        theta, idx = theta.detach(), idx.detach()
        batched = _vmapped_graph(fn, theta, idx)
        if batched is not None:
            return batched, "vmap"
        if theta.shape[0] > MAX_COMPILED_CHAINS:
            return _eager(fn), "eager"
        try:
            return torch.jit.trace(_per_chain(fn), (theta, idx), check_trace=False), "per-chain"
        except RuntimeError:  # the backward pass reuses an op's output: trace the forward pass only
            forward = torch.jit.trace(_side_by_side(fn), (theta.requires_grad_(True), idx), check_trace=False)
            return _with_autograd(forward), "per-chain forward"


def _vmapped_graph(fn, theta, idx):
    """``make_fx(vmap(grad_and_value(fn)))`` compiled by ``torch.jit.trace`` (called inside
    ``_compile``'s settings), or ``None`` where ``vmap`` or ``make_fx`` cannot run the model."""
    # a shared idx (B,) is not batched: the data rows it selects are read once for all chains
    batched_fn = torch.func.vmap(torch.func.grad_and_value(fn), in_dims=(0, 0 if idx.dim() == 2 else None))
    try:
        traced = compile_graph(lambda theta, idx: batched_fn(theta, idx), (theta, idx))
    except Exception:  # noqa: BLE001 - whatever stops vmap or make_fx, the per-chain graph is the answer
        return None

    def batched(theta, idx):
        grad, value = traced(theta, idx)
        return value, grad

    return batched


def _eager_hvp(fn, theta, v, idx):
    """``H v`` ``(C, D)`` of ``fn(theta (D,), idx (B,))`` by double backward, one chain at a time."""
    out = []
    with pyro.validation_enabled(False), torch.enable_grad():
        for th, vec, ix in zip(theta.unbind(0), v.unbind(0), _chain_indices(idx, theta.shape[0])):
            point = th.detach().requires_grad_(True)
            value = fn(point, ix)
            hv = None
            if value.requires_grad:  # else a term constant in theta (a flat prior)
                (grad,) = torch.autograd.grad(value, point, create_graph=True)
                if grad.requires_grad:  # else a term linear in theta: no curvature
                    (hv,) = torch.autograd.grad(grad, point, grad_outputs=vec, allow_unused=True)
            out.append(torch.zeros_like(th) if hv is None else hv.detach())
    return torch.stack(out)


def _hvp_graph(fn, theta, v, idx):
    """``vmap`` over chains of ``grad (grad fn . v)``, recorded by ``make_fx`` and compiled:
    ``(theta (C, D), v (C, D), idx (C, B)) -> (C, D)``; ``None`` where it cannot be recorded."""

    def single(th, vec, ix):
        return torch.func.grad(lambda t: torch.dot(torch.func.grad(lambda u: fn(u, ix))(t), vec))(th)

    batched = torch.func.vmap(single, in_dims=(0, 0, 0 if idx.dim() == 2 else None))
    with warnings.catch_warnings(), pyro.validation_enabled(False):
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            return compile_graph(lambda theta, v, idx: batched(theta, v, idx), (theta.detach(), v.detach(), idx))
        except Exception:  # noqa: BLE001 - whatever stops vmap, grad or make_fx, the eager product is the answer
            return None


def length_indexed_past(run) -> int | None:
    """The length of the array that ``run()`` (a run of a program) indexes past its end, read from
    torch's ``IndexError`` ("... with size N"), or ``None`` (no such error; the program's other
    errors are reported where it is run)."""
    try:
        run()
    except IndexError as err:
        found = re.search(r"with size (\d+)", str(err))
        return int(found.group(1)) if found else None
    except Exception:  # noqa: BLE001 - reported where the program is run
        return None
    return None


class PyroBackend(Backend):
    """The gradient oracle of a Pyro program (see :class:`ppzoo.backends.base.Backend`).

    ``jit_compile=False`` runs the chains' traces eagerly (slower). With
    ``jit_compile=True`` the compiled graphs are guarded against Python control
    flow that depends on the parameters (:mod:`.pyro_guard`): where it is found
    the backend runs eagerly, with a ``RuntimeWarning``, and ``eager_reason``
    says why.
    """

    name = "pyro"
    #: look for reads of parameter values before tracing a graph (:func:`.pyro_guard.parameter_reads`)
    probe_control_flow = True
    #: compare compiled graphs with eager runs on a schedule (:class:`.pyro_guard.CheckedGraph`)
    check_compiled = True

    def __init__(self, model, args=(), kwargs=None, data_plate=None, device=None, trace=None, jit_compile=True,
                 batch_args=None):
        self.model = model
        self.device = torch_device(device)
        self.args = to_torch(tuple(args), self.device)
        self.kwargs = to_torch(dict(kwargs or {}), self.device)
        self.jit_compile = jit_compile
        if trace is None:
            trace = trace_pyro(model, self.args, self.kwargs)
        full = {
            n: torch.arange(s["fn"].size, device=self.device)
            for n, s in trace.nodes.items()
            if s["type"] == "sample" and site_is_subsample(s) and s["fn"].subsample_size not in (None, s["fn"].size)
        }
        if full:  # see the full data, not the model's own subsample
            trace = trace_pyro(model, self.args, self.kwargs, data=full)
        sites, plates = pyro_sites(trace)
        missing = unobserved_data(model, self.args, self.kwargs, [s.name for s in sites if not s.observed],
                                  [s.name for s in sites if s.observed])
        if missing:
            raise_unobserved(missing)
        records = site_records(sites, _inverse_shape, _numpy)
        self.layout = plan_layout(records, plates, data_plate, model, pyro_deterministic(trace))
        self._transforms = {s.name: biject_to(trace.nodes[s.name]["fn"].support) for s in self.layout.latent}
        self.batch_args = BatchArgs()
        if self.layout.data_plate is not None:
            check_observed_lengths(model, self.args, self.kwargs, [o.name for o in self.layout.observed],
                                   self.layout.data_plate, self.layout.num_data)
        if self.layout.data_plate is not None and self.layout.num_data > 1:
            self.batch_args, findings, how = plan_minibatches(
                self._batch_sizes, self._view, self._indexed_past, model, self.args, self.kwargs,
                plate=self.layout.data_plate, num_data=self.layout.num_data,
                arange=partial(torch.arange, device=self.device), batch_args=batch_args,
            )
            if findings:  # full-batch (with a warning) or an error
                reads_data_elsewhere(plates[self.layout.data_plate], model_name(model), findings, how)
                self.layout = plan_layout(records, plates, data_plate, model, pyro_deterministic(trace), full_batch=True)
                self.batch_args = BatchArgs()
        self._observed = {s.name: torch.as_tensor(trace.nodes[s.name]["value"], dtype=torch.get_default_dtype())
                          if isinstance(trace.nodes[s.name]["value"], (int, float)) else trace.nodes[s.name]["value"]
                          for s in self.layout.all_observed}
        #: latents given a value by a conditioning handler: fixed values, not data (:func:`~.sites.fixed_sites`)
        self.fixed = fixed_sites(self.layout, conditioned_names(model))
        self._compiled = {}
        #: how each ``(function, theta shape, idx shape, dtype)`` was compiled (see ``_compile``)
        self.compiled_as = {}
        #: why the compiled graphs were given up for eager runs (:mod:`.pyro_guard`), or ``None``
        self.eager_reason = None

    # -- single-chain maths (the per-site logic is ppzoo.backends.sites') ------------------
    def _constrain_single(self, theta):
        """``(D,) -> ({site: value}, log|J|)`` through Pyro's ``biject_to``."""
        return constrain(theta, self.layout, self._transforms)

    def _trace(self, args, kwargs, params, idx):
        data = dict(params)
        if self.layout.data_plate is not None:
            data[self.layout.data_plate] = idx
        return trace_pyro(self.model, args, kwargs, data=data)

    def _sites(self, params, idx):
        """The run on the minibatch ``idx`` (the per-datum arguments sliced to it): its sites and the
        data plate's scale (:func:`~.sites.plate_scale`)."""
        args, kwargs = take_batch(self.args, self.kwargs, self.batch_args, idx)
        trace = self._trace(args, kwargs, params, idx)
        plates = {
            n: (int(s["fn"].size), int(s["value"].shape[0])) for n, s in trace.nodes.items()
            if s["type"] == "sample" and site_is_subsample(s)
        }
        return pyro_sites(trace)[0], plate_scale(plates, self.layout)

    def _batch_sizes(self, args, kwargs, idx):
        """Per observed site in the data plate, its distribution's and its value's size along the
        plate, in a run on ``idx``."""
        trace = self._trace(args, kwargs, {}, idx)
        return {s.name: plate_sizes(trace.nodes[s.name], s.plate_dim) for s in self.layout.observed}

    def _view(self, args, kwargs, idx):
        """The :class:`~.sites.ProgramView` of a run on ``idx`` with these arguments, the latents at
        :func:`at_check_point` (:func:`~.batching.check_data_reading`)."""
        with torch.no_grad():
            trace = trace_pyro(self.model, args, kwargs, data={self.layout.data_plate: idx}, point=at_check_point)
        plates = {n: (int(s["fn"].size), int(s["value"].shape[0])) for n, s in trace.nodes.items()
                  if s["type"] == "sample" and site_is_subsample(s)}
        deterministic = [(n, s["value"], [f.name for f in s["cond_indep_stack"] if f.vectorized])
                         for n, s in trace.nodes.items() if s["type"] == "sample" and s["infer"].get("_deterministic")]
        return program_view(pyro_sites(trace)[0], plates, deterministic, self.layout, self.layout.latent_names)

    def _indexed_past(self, args, kwargs, idx):
        """The length of an array that a run on the plate's indices ``idx`` indexes past its end
        (torch's ``IndexError``), or ``None``."""
        with torch.no_grad():
            return length_indexed_past(lambda: self._trace(args, kwargs, {}, idx))

    def _log_joint(self, params, idx):
        """``(log prior of the global sites, sum_{i in idx} log p(x_i | params))`` (the latter unscaled)."""
        sites, scale = self._sites(params, idx)
        return log_joint(sites, self.layout, params, scale)

    def _potential_single(self, theta, idx):
        params, log_det = self._constrain_single(theta)
        log_prior, log_lik = self._log_joint(params, idx)
        return -(log_prior + log_det) - (self.layout.num_data / idx.shape[0]) * log_lik

    def _lik_single(self, theta, idx):
        return -self._log_joint(self._constrain_single(theta)[0], idx)[1]

    def _first_single(self, theta, idx):
        """The full-data pass's first term: the prior, ``log|J|`` and the likelihood of the first
        chunk ``idx``, from one run (all the data where N <= ``FULL_DATA_CHUNK``: a program whose
        sites outside the data plate change with the rows it is given runs full-batch or is
        refused, :func:`~.batching.check_data_reading`)."""
        params, log_det = self._constrain_single(theta)
        log_prior, log_lik = self._log_joint(params, idx)
        return -(log_prior + log_det + log_lik)

    # -- chain batching -------------------------------------------------------
    def _value_and_grad(self, fn, theta, idx):
        """``fn(theta (D,), idx (B,))`` for every chain: values ``(C,)`` and gradients ``(C, D)``.

        With ``jit_compile`` the chain-batched value and gradient,
        ``vmap(grad_and_value(fn))``, is traced once per shape to a graph of
        ATen ops (``make_fx``, which unrolls both ``vmap`` and the backward
        pass) and that graph is compiled with ``torch.jit.trace``. The graph
        holds one copy of the model whatever the number of chains. A model
        that ``vmap`` cannot run (an in-place write of a latent into a fresh
        tensor, say) falls back to tracing each chain's graph side by side.

        Every graph is guarded (:mod:`.pyro_guard`): before it is traced, one
        eager run looks for a tensor computed from ``theta`` turned into a
        Python value (``if w > 0:``); while it runs, its first call and
        calls 2, 4, 8, ... then every ``CHECK_PERIOD``-th are compared with
        an eager run at the same points. Either finding makes this backend
        eager from then on, with one ``RuntimeWarning`` (``eager_reason``).
        """
        if not self.jit_compile or self.eager_reason is not None:
            return _eager(fn)(theta, idx)
        key = (fn.__name__, tuple(theta.shape), tuple(idx.shape), theta.dtype)
        if key not in self._compiled:
            if self.probe_control_flow:
                with pyro.validation_enabled(False):
                    found = parameter_reads(fn, theta[0], _chain_indices(idx, 1)[0])
                if found:
                    self._run_eagerly(eager_warning(found=found))
                    return _eager(fn)(theta, idx)
            graph, self.compiled_as[key] = _compile(fn, theta, idx)
            self._compiled[key] = graph if self.compiled_as[key] == "eager" else CheckedGraph(graph, _eager(fn))
        graph = self._compiled[key]
        if not isinstance(graph, CheckedGraph):
            return graph(theta, idx)
        out, disagreed = graph(theta, idx, check=self.check_compiled)
        if disagreed:
            self._run_eagerly(eager_warning(calls=graph.calls, key=key, gap=graph.gap))
        return out

    def _run_eagerly(self, reason):
        """From now on every value and gradient is eager; one ``RuntimeWarning`` says why."""
        if self.eager_reason is None:
            warnings.warn(reason, RuntimeWarning, stacklevel=4)
        self.eager_reason = reason
        self.compiled_as = {k: "eager (value-dependent control flow)" for k in self.compiled_as}
        self._compiled = {}

    def potential(self, theta, idx):
        return self._value_and_grad(self._potential_single, theta, idx)[0]

    def grad(self, theta, idx):
        return self._value_and_grad(self._potential_single, theta, idx)[1]

    def _chunks(self):
        """The full-data pass's chunks of indices ``(B,)``, shared by every chain: the compiled graph
        reads each chunk's rows once for all chains (per-chain copies of the rows cost 5x as much,
        logistic regression at d = 100, 4 chains)."""
        n = self.layout.num_data
        size = min(n, FULL_DATA_CHUNK)
        for start in range(0, n, size):
            yield torch.arange(start, min(start + size, n), device=self.device)

    def _full_value_and_grad(self, theta):
        chunks = self._chunks()
        value, grad = self._value_and_grad(self._first_single, theta, next(chunks))
        for idx in chunks:
            v, g = self._value_and_grad(self._lik_single, theta, idx)
            value, grad = value + v, grad + g
        return value, grad

    def full_potential(self, theta):
        return self._full_value_and_grad(theta)[0]

    def full_grad(self, theta):
        return self._full_value_and_grad(theta)[1]

    def full_hvp(self, theta, v):
        """``H v`` ``(C, D)`` of the full-data potential at ``theta`` ``(C, D)``, summed over the
        prior and chunks of the data, by double backward: ``H v = grad (grad U . v)``.

        With ``jit_compile`` each term's chain-batched product is compiled once per shape like the
        gradients (``vmap`` of the product, recorded by ``make_fx``); its first call is compared
        with the eager product, and a model the gradients' guard ran eagerly runs its products
        eagerly too. Without a compiled graph: one chain at a time, eagerly."""
        theta = torch.as_tensor(theta, dtype=torch.get_default_dtype(), device=self.device)
        v = torch.as_tensor(v, dtype=theta.dtype, device=self.device)
        chunks = self._chunks()
        total = self._hvp(self._first_single, theta, v, next(chunks))
        for idx in chunks:
            total = total + self._hvp(self._lik_single, theta, v, idx)
        return total

    def _hvp(self, fn, theta, v, idx):
        """``H v`` ``(C, D)`` of one term ``fn(theta (D,), idx (B,))``, per chain."""
        if not self.jit_compile or self.eager_reason is not None:
            return _eager_hvp(fn, theta, v, idx)
        key = ("hvp", fn.__name__, tuple(theta.shape), tuple(idx.shape), theta.dtype)
        if key not in self._compiled:
            with pyro.validation_enabled(False):
                found = parameter_reads(fn, theta[0], _chain_indices(idx, 1)[0]) if self.probe_control_flow else None
            if found:
                self._run_eagerly(eager_warning(found=found))
                return _eager_hvp(fn, theta, v, idx)
            graph = _hvp_graph(fn, theta, v, idx)
            if graph is not None:  # its first call against eager, on the first chain
                compiled, eager = graph(theta, v, idx)[:1].to(theta.dtype), _eager_hvp(fn, theta[:1], v[:1], chain_rows(idx, slice(0, 1)))
                scale = max(float(eager.abs().max()), 1.0)
                if not float((compiled - eager).abs().max()) <= RTOL * scale:
                    graph = None
            self._compiled[key] = graph
            self.compiled_as[key] = "vmap" if graph is not None else "eager"
        graph = self._compiled[key]
        # a graph may hold a float64 constant of the model's and promote to it: products are returned in theta's dtype
        return _eager_hvp(fn, theta, v, idx) if graph is None else graph(theta, v, idx).to(theta.dtype)

    # -- conversions ----------------------------------------------------------
    def pointwise(self, theta):
        theta = torch.as_tensor(np.asarray(theta), dtype=torch.get_default_dtype(), device=self.device)
        full = torch.arange(self.layout.num_data, device=self.device)
        log_densities, logliks = [], []
        with torch.no_grad():
            for th in theta:
                params, log_det = self._constrain_single(th)
                sites, _ = self._sites(params, full)
                log_densities.append(log_density(sites, log_det))
                logliks.append(pointwise_log_likelihood({s.name: s for s in sites}, self.layout))
        loglik = {s.name: torch.stack([d[s.name] for d in logliks]).cpu().numpy() for s in self.layout.all_observed}
        return torch.stack(log_densities).cpu().numpy(), loglik

    def constrain(self, theta):
        theta = torch.as_tensor(np.asarray(theta), dtype=torch.get_default_dtype(), device=self.device)
        with torch.no_grad():
            out = {}
            for s in self.layout.latent:
                u = theta[:, s.offset : s.offset + s.size].reshape((-1,) + s.unconstrained_shape)
                out[s.name] = self._transforms[s.name](u).cpu().numpy()
        return out

    def deterministic(self, theta):
        if not self.layout.deterministic:
            return {}
        theta = torch.as_tensor(np.asarray(theta), dtype=torch.get_default_dtype(), device=self.device)
        full = torch.arange(self.layout.num_data, device=self.device)
        args, kwargs = take_batch(self.args, self.kwargs, self.batch_args, full)
        runs = []
        with torch.no_grad():
            for th in theta:
                trace = self._trace(args, kwargs, self._constrain_single(th)[0], full)
                runs.append({s.name: trace.nodes[s.name]["value"] for s in self.layout.deterministic})
        return {s.name: torch.stack([run[s.name] for run in runs]).cpu().numpy() for s in self.layout.deterministic}

    def unconstrain(self, values):
        as_tensor = partial(torch.as_tensor, dtype=torch.get_default_dtype(), device=self.device)
        return unconstrain({k: as_tensor(np.asarray(v)) for k, v in values.items()}, self.layout, self._transforms)

    def strategy_values(self, init_strategy, num_chains, seed):
        runs = []
        devices = [self.device] if self.device.type == "cuda" else []
        for chain in range(num_chains):
            # each chain its own seed, without touching the user's global torch RNG
            with torch.random.fork_rng(devices=devices), pyro.validation_enabled(False):
                torch.manual_seed(seed * 10007 + chain)
                trace = poutine.trace(InitMessenger(init_strategy)(self.model)).get_trace(*self.args, **self.kwargs)
            runs.append({s.name: trace.nodes[s.name]["value"].detach() for s in self.layout.latent})
        return {name: torch.stack([run[name] for run in runs]) for name in runs[0]}

    def observed_data(self):
        return {k: v.detach().cpu().numpy() for k, v in self._observed.items()}

    # -- array primitives ----------------------------------------------------
    def rng(self, seed):
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def init_positions(self, rng, num_chains, radius=2.0):
        u = torch.rand((num_chains, self.dim), generator=rng, device=self.device, dtype=torch.get_default_dtype())
        return (2.0 * u - 1.0) * radius, rng

    def minimize(self, theta, rng, num_steps, learning_rate, batch_size):
        n = self.layout.num_data
        param = theta.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([param], lr=learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, num_steps, eta_min=learning_rate / 100)
        for _ in range(num_steps):
            idx = torch.randint(n, (param.shape[0], batch_size), generator=rng, device=self.device)
            param.grad = self.grad(param.detach(), idx) / n
            optimizer.step()
            schedule.step()
        return param.detach(), rng

    def cond(self, pred, true_fn, false_fn, *operands):
        return true_fn(*operands) if bool(pred) else false_fn(*operands)

    def to_numpy(self, x):
        return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

    def asarray(self, x):
        return torch.as_tensor(np.asarray(x), dtype=torch.get_default_dtype(), device=self.device)

    def restore_array(self, x):
        return torch.as_tensor(np.array(x), device=self.device)

    def rng_state(self, rng):
        return rng.get_state().numpy()

    def restore_rng(self, saved):
        generator = torch.Generator(device=self.device)
        generator.set_state(torch.as_tensor(np.asarray(saved, dtype=np.uint8)))
        return generator

    def run_block(self, kernel, state, rng, num_draws, thinning, tuning, method="update"):
        step = getattr(kernel, method)
        batch_size = kernel.batch_size
        num_chains = state.position.shape[0]
        n = self.layout.num_data
        shape, dtype = state.position.shape, state.position.dtype
        positions, infos = [], []
        with torch.no_grad():
            for _ in range(num_draws):
                steps = []
                for _ in range(thinning):
                    idx = torch.randint(n, (num_chains, batch_size), generator=rng, device=self.device)
                    noise = torch.randn(shape, generator=rng, device=self.device, dtype=dtype)
                    state, info = step(self, state, idx, noise, tuning)
                    steps.append(info)
                if thinning > 1:
                    stacked = {k: torch.stack([i[k] for i in steps]) for k in steps[0]}
                    steps = [reduce_info(stacked, array_api_compat.array_namespace(state.position))]
                infos.append(steps[0])
                positions.append(state.position)
        positions = torch.stack(positions).cpu().numpy()
        infos = {k: torch.stack([i[k] for i in infos]).cpu().numpy() for k in infos[0]}
        return state, rng, positions, infos
