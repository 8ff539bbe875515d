"""The fitting loop of Pyro SVI: Pyro's ``SVI.step`` logic, with a trial of one compiled step.

:func:`run_svi` runs the first step eagerly (Pyro's validation on); from the
second, with ``jit_compile``, one graph per step (:mod:`.pyro_svi_graph`),
kept only if it reproduces an eager step exactly (loss, gradients and the
random stream). A non-finite loss skips the optimiser step and ends the run
with the last finite parameters.
"""

from __future__ import annotations

import copy

import pyro
import pyro.infer.util
import pyro.util
import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from ppzoo.backends.batching import (
    NO_BATCH_ARGS,
    NO_PARAMS,
    UNMOVED_STEPS,
    BatchArgs,
    SVIProbe,
    plan_fit_minibatches,
    plate_sizes,
    take_batch,
    unmoved,
)
from ppzoo.interrupt import check_interrupt

__all__ = ["run_svi", "MIN_COMPILED_STEPS", "CONTROL_EVERY", "set_learning_rate"]


def _with_indices(fn, plate, current, batch_args=NO_BATCH_ARGS, num_data=None):
    """``fn`` with the data plate's subsample indices fixed to ``current["idx"]``; with ``batch_args``,
    the per-datum arguments sliced to those rows and the plate seen at its full size ``num_data``
    (:class:`_AtFullSize`)."""

    def wrapped(*args, **kwargs):
        conditioned = poutine.condition(fn, data={plate: current["idx"]})
        if not batch_args:
            return conditioned(*args, **kwargs)
        args, kwargs = take_batch(args, kwargs, batch_args, current["idx"])
        with _AtFullSize(plate, num_data):
            return conditioned(*args, **kwargs)

    wrapped.__wrapped__ = fn  # a warning about the program names the user's own (``pyro_svi.warn_looped``)
    return wrapped


class _AtFullSize(Messenger):
    """The data plate ``plate`` of a program given B rows of its data (sized by them) seen as the
    subsampling idiom's: its size recorded as ``N`` and its sites scaled by ``N`` over the size the
    program gave it, so the plate's scale is ``N / B`` and the objective applies it once."""

    def __init__(self, plate, num_data):
        super().__init__()
        self.plate, self.num_data, self.factor = plate, num_data, 1.0

    def _pyro_sample(self, msg):
        if msg["name"] == self.plate and site_is_subsample(msg):
            fn = copy.copy(msg["fn"])
            self.factor = self.num_data / fn.size
            fn.size = self.num_data
            msg["fn"] = fn
        elif self.factor != 1.0 and any(f.name == self.plate for f in msg["cond_indep_stack"]):
            msg["scale"] = msg["scale"] * self.factor


class _DataPlate:
    """The one thing :func:`~.sites.program_view` reads of a layout: the data plate's name."""

    def __init__(self, data_plate):
        self.data_plate = data_plate


def _quiet_state(fn):
    """``fn`` run in a throwaway parameter store, the random streams left as they were."""

    def run(*args):
        state = pyro.util.get_rng_state()
        try:
            with pyro.get_param_store().scope(), pyro.validation_enabled(False), torch.no_grad():
                return fn(*args)
        finally:
            pyro.util.set_rng_state(state)

    return run


def minibatch_probe(model, guide, args, kwargs, plate) -> SVIProbe:
    """The :class:`~.batching.SVIProbe` of a Pyro model and guide with data plate ``plate``
    (:func:`~.batching.plan_fit_minibatches`): the model traced alone in a throwaway parameter store,
    its latents at feasible or check-point values, the random streams left as they were."""
    from pyro.infer.autoguide import AutoGuide

    from ppzoo.backends.pyro_backend import (
        at_check_point,
        feasible,
        length_indexed_past,
        pyro_sites,
        trace_pyro,
    )
    from ppzoo.backends.sites import program_view

    frame = lambda site: next((f for f in site["cond_indep_stack"] if f.name == plate), None)  # noqa: E731
    first = _quiet_state(trace_pyro)(model, args, kwargs)
    nodes = first.nodes
    local = tuple(n for n, s in nodes.items() if s["type"] == "sample" and not s["is_observed"]
                  and not site_is_subsample(s) and frame(s))
    own = None
    if plate in nodes and site_is_subsample(nodes[plate]):
        fn = nodes[plate]["fn"]
        own = None if fn.subsample_size in (None, fn.size) else int(fn.subsample_size)
    num_data = int(nodes[plate]["fn"].size) if plate in nodes else None
    whole_local = {}

    @_quiet_state
    def run(a, kw, idx):
        trace = trace_pyro(model, a, kw, data={plate: idx})
        return {n: plate_sizes(s, frame(s).dim) for n, s in trace.nodes.items()
                if s["type"] == "sample" and s["is_observed"] and not site_is_subsample(s) and frame(s)}

    @_quiet_state
    def view(a, kw, idx):
        whole = int(idx.shape[0]) == num_data
        given = {} if whole else {n: v.index_select(axis, idx) for n, (v, axis) in whole_local.items()}
        trace = trace_pyro(model, a, kw, data={plate: idx, **given}, point=at_check_point)
        if whole:
            for n in local:
                site = trace.nodes[n]
                axis = site["value"].dim() - site["fn"].event_dim + frame(site).dim
                if axis >= 0:
                    whole_local[n] = (site["value"], axis)
        plates = {n: (int(s["fn"].size), int(s["value"].shape[0])) for n, s in trace.nodes.items()
                  if s["type"] == "sample" and site_is_subsample(s)}
        deterministic = [(n, s["value"], [f.name for f in s["cond_indep_stack"] if f.vectorized])
                         for n, s in trace.nodes.items() if s["type"] == "sample" and s["infer"].get("_deterministic")]
        latent = {n for n, s in nodes.items() if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)}
        return program_view(pyro_sites(trace)[0], plates, deterministic, _DataPlate(plate), latent, local_given=True)

    @_quiet_state
    def indexed_past(a, kw, idx):
        return length_indexed_past(lambda: trace_pyro(model, a, kw, data={plate: idx}))

    @_quiet_state
    def param_shapes(program, a, kw):
        from pyro.infer.autoguide.initialization import InitMessenger

        trace = poutine.trace(InitMessenger(feasible)(program)).get_trace(*a, **kw)
        return {n: tuple(s["value"].shape) for n, s in trace.nodes.items() if s["type"] == "param"}

    return SVIProbe(run, view, indexed_past, param_shapes, local, isinstance(guide, AutoGuide), own)


def plan_batches(model, guide, args, kwargs, plate, batch_args=None, batch_size=None) -> tuple[BatchArgs, bool]:
    """``(the arguments to slice, full-batch instead)`` for fitting with minibatches of ``plate =
    (name, N)`` (:func:`~.batching.plan_fit_minibatches`). A plate that declares its own
    ``subsample_size`` takes exactly that many indices in Pyro: another ``batch_size`` is a ``ValueError``."""
    device = next((a.device for a in args if isinstance(a, torch.Tensor)), torch.device("cpu"))
    probe = minibatch_probe(model, guide, args, kwargs, plate[0])
    if probe.own_subsample is not None and batch_size is not None and batch_size != probe.own_subsample:
        raise ValueError(
            f"batch_size={batch_size}, but the model's data plate {plate[0]!r} declares subsample_size="
            f"{probe.own_subsample}, and a Pyro plate takes exactly that many indices: pass "
            f"batch_size={probe.own_subsample}, or leave batch_size out (the plate's own setting)"
        )
    return plan_fit_minibatches(probe, model, guide, args, kwargs, plate=plate[0], num_data=plate[1],
                                arange=lambda a, b, c: torch.arange(a, b, c, device=device), batch_args=batch_args)


#: steps between calls of ``control`` (as NumPyro's compiled blocks)
CONTROL_EVERY = 50


def set_learning_rate(optimizer, learning_rate) -> None:
    """Set the learning rate of every torch optimiser a ``pyro.optim`` optimiser (made with a dict of
    arguments) has made, and of those it makes later."""
    optimizer.pt_optim_args = {**optimizer.pt_optim_args, "lr": learning_rate}
    for optim in optimizer.optim_objs.values():
        for group in optim.param_groups:
            group["lr"] = learning_rate


#: fits shorter than this stay eager: tracing a step costs about as much as tens of eager steps
MIN_COMPILED_STEPS = 20


def run_svi(objective, model, guide, args, kwargs, *, optimizer, num_steps, plate, batch_size, seed, annealed, on_step,
            step_kwargs=None, jit_compile=True, control=None, batch_args=None):
    """Fit with ``objective`` for ``num_steps``; returns ``(params, losses, stop_reason, compiled_as)``.

    Each step: the loss and its gradient, then the optimiser step only if the
    loss is finite. A non-finite loss, or parameters that are not finite after
    a step (constrained: a scale's ``exp`` can overflow), stops the run with the
    parameters of the last finite loss restored. ``plate = (name, N)`` and ``batch_size`` subsample the data
    plate (indices drawn uniformly with replacement). ``on_step(t, loss)`` is
    called each step; Ctrl-C stops the run after the last completed step.

    The first step runs eagerly (parameters found by tracing, as Pyro's
    ``SVI.step`` does; Pyro's validation on). With ``jit_compile`` (and at
    least :data:`MIN_COMPILED_STEPS` steps) the second step is traced into one
    graph (:mod:`ppzoo.backends.pyro_svi_graph`), run eagerly as well from the
    same random state, and the graph is kept only if it reproduces that step:
    the same loss, gradients and random draws. ``compiled_as`` says which:
    ``"graph"``, or ``"eager"`` and why. ``control`` (a
    :class:`ppzoo.diagnostics.fit_convergence.PlateauSchedule`) gives the first
    learning rate from the parameters' names, before the first update, and
    every :data:`CONTROL_EVERY` steps a new one or the signal to stop; a
    learning rate is set in every torch optimiser of ``optimizer``.

    With ``batch_size``, minibatches are taken as ``ppzoo.sample`` takes them
    (:func:`plan_batches`): a program that indexes its data by the plate's
    indices gets them; one written for all its data gets its per-datum
    arguments (``batch_args``, or those with N rows) sliced to the minibatch,
    its plate scaled by ``N / B``.
    """
    _check_optimizer(optimizer)
    chosen = BatchArgs()
    if batch_size is not None and plate[0] is not None:
        chosen, full_batch = plan_batches(model, guide, args, kwargs, plate, batch_args, batch_size)
        if full_batch:
            batch_size = None
    pyro.set_rng_seed(seed)
    losses, reason = [], None
    validate = pyro.infer.util.is_validation_enabled()
    device = next((a.device for a in args if isinstance(a, torch.Tensor)), torch.device("cpu"))
    rng_devices = [device] if device.type == "cuda" else []
    # one pair of wrappers for the whole run (the objective caches per program), reading this step's indices
    current = {}
    m, g = model, guide
    if batch_size is not None:
        m, g = (_with_indices(p, plate[0], current, chosen, plate[1]) for p in (model, guide))

    def inputs_at(t):
        """What changes from step to step: indices, the objective's numbers, the programs' arguments."""
        kw = dict(kwargs, annealing_step=t) if annealed else kwargs
        step_keys = ()
        if step_kwargs is not None:
            changing = step_kwargs(t)
            kw, step_keys = {**kw, **changing}, tuple(changing)
        extras, kw = objective.split_extras(kw, count_step=torch.is_grad_enabled())
        idx = torch.randint(plate[1], (batch_size,), device=device) if batch_size is not None else None
        return {"idx": idx, "extras": extras, "args": args, "kwargs": kw, "step_keys": step_keys}

    def loss_of(inputs):
        if inputs["idx"] is not None:
            current["idx"] = inputs["idx"]
        return objective.pyro_loss(m, g, inputs["args"], inputs["kwargs"], inputs["extras"])

    def eager_step(inputs, validation):
        with poutine.trace(param_only=True) as capture, pyro.validation_enabled(validation):
            loss = loss_of(inputs)
        if loss.requires_grad:
            loss.backward()
        return loss.detach(), {name: site["value"].unconstrained() for name, site in capture.trace.nodes.items()}

    compiled, first_params, saved = None, {}, None
    compiled_as = "eager (jit_compile=False)" if not jit_compile else f"eager (fewer than {MIN_COMPILED_STEPS} steps)"
    try:
        for t in range(num_steps):
            inputs = inputs_at(t)
            out = compiled(_graph_inputs(inputs, device)) if compiled is not None else None
            if out is not None:
                loss, grads = out
                leaves = compiled.leaves
                for leaf, grad in zip(leaves, grads):
                    leaf.grad = grad
            else:
                trial = t == 1 and jit_compile and num_steps >= MIN_COMPILED_STEPS
                before = _rng_state(rng_devices) if trial else None
                # Pyro's argument validation checks the first step; after it, it only costs time
                loss, params = eager_step(inputs, t == 0 and validate)
                leaves = list(params.values())
                if trial:
                    compiled, compiled_as = _compile(
                        loss_of, inputs, loss, params, first_params, before, device, rng_devices,
                    )
                if t == 0:
                    first_params = params
            value = float(loss)
            if value != value or value in (float("inf"), float("-inf")):
                reason = f"the loss was not finite at step {t}"
                _restore(leaves, saved)
                break
            saved = [leaf.detach().clone() for leaf in leaves]  # the last parameters with a finite loss
            if t == 0 and not first_params:
                raise ValueError(NO_PARAMS)
            if t == 0 and control is not None and (first := control.begin(set(first_params))) is not None:
                set_learning_rate(optimizer, first)
            if t == 0:
                _first_step(optimizer, leaves)
            else:
                optimizer(leaves)
            pyro.infer.util.zero_grads(leaves)
            losses.append(value)
            on_step(t, value)
            if not _all_finite(pyro.get_param_store()):
                reason = f"the parameters were not finite after step {t}"
                _restore(leaves, saved)
                break
            if control is not None and (t + 1) % CONTROL_EVERY == 0:
                learning_rate, stop = control.decide()
                if learning_rate is not None:
                    set_learning_rate(optimizer, learning_rate)
                if stop:
                    break
            check_interrupt()
    except KeyboardInterrupt:
        reason = f"interrupted after {len(losses)} steps"
    store = pyro.get_param_store()
    values = {name: store[name].detach().cpu().numpy() for name in store.keys()}
    return values, losses, reason, compiled_as


def _check_optimizer(optimizer) -> None:
    """The torch optimiser ``optimizer`` makes, on a throwaway parameter with gradient 1 for
    :data:`~.batching.UNMOVED_STEPS` steps: a ``ValueError`` where it does not move it (a learning rate
    of 0). Optimisers it cannot be tried on that way (a learning-rate scheduler, arguments given as a
    function of the parameter's name) are not tried; errors in their arguments are said at the
    first step (:func:`_first_step`)."""
    args = getattr(optimizer, "pt_optim_args", None)
    constructor = getattr(optimizer, "pt_optim_constructor", None)
    if not isinstance(args, dict) or not isinstance(constructor, type) or not issubclass(constructor, torch.optim.Optimizer):
        return
    probe = torch.zeros(2, requires_grad=True)
    try:
        optim = constructor([probe], **args)
        for _ in range(UNMOVED_STEPS):
            probe.grad = torch.ones(2)
            optim.step()
    except Exception:  # noqa: BLE001 - said with the optimizer's name at the first step
        return
    if not bool((probe != 0).any()):
        raise ValueError(unmoved(constructor.__name__, "pyro.optim.Adam({'lr': 0.01})"))


def _first_step(optimizer, leaves) -> None:
    """The optimiser's first step, where torch makes its optimisers from the arguments given to the
    ``pyro.optim`` one: their errors (a learning rate that is negative or a string) name the optimizer."""
    try:
        optimizer(leaves)
    except (TypeError, ValueError) as err:
        name = getattr(getattr(optimizer, "pt_optim_constructor", None), "__name__", type(optimizer).__name__)
        raise type(err)(
            f"optimizer {name} cannot take a step ({err}); check its arguments: a learning rate "
            "is a positive number, e.g. pyro.optim.Adam({'lr': 0.01})"
        ) from err


def _all_finite(store) -> bool:
    """Every parameter in ``store`` finite in its constrained space (where a scale's ``exp`` overflows)."""
    return all(bool(torch.isfinite(store[name]).all()) for name in store.keys())


def _restore(leaves, saved) -> None:
    """Put the unconstrained parameters ``leaves`` back to ``saved`` (``None``: the first step failed; nothing to restore)."""
    if saved is None:
        return
    with torch.no_grad():
        for leaf, value in zip(leaves, saved):
            leaf.copy_(value)


def _graph_inputs(inputs, device):
    """The objective's numbers as 0-d tensors: graph inputs rather than constants frozen at their first value."""
    extras = {
        k: torch.as_tensor(v, dtype=torch.get_default_dtype(), device=device) if isinstance(v, (int, float)) else v
        for k, v in inputs["extras"].items()
    }
    return {**inputs, "extras": extras}


def _rng_state(rng_devices):
    return torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in rng_devices]


def _set_rng_state(state, rng_devices):
    torch.set_rng_state(state[0])
    for d, s in zip(rng_devices, state[1]):
        torch.cuda.set_rng_state(s, d)


def _same_rng_state(a, b):
    return torch.equal(a[0], b[0]) and all(torch.equal(x, y) for x, y in zip(a[1], b[1]))


def _compile(loss_of, inputs, eager_loss, params, first_params, before, device, rng_devices):
    """``(StepGraph or None, compiled_as)``, right after an eager step.

    ``before`` is the random state the eager step started from (its gradients
    are in ``.grad``). The graph is run from that same state and kept only if
    it gives the same loss and gradients and leaves the random stream where
    the eager step left it; either way the stream ends there.
    """
    from ppzoo.backends.pyro_svi_graph import compile_step

    if set(params) != set(first_params):
        return None, "eager (the parameters differ from step to step)"
    changing = [k for k in inputs["step_keys"] if not isinstance(inputs["kwargs"].get(k), torch.Tensor)]
    if changing:
        return None, f"eager (step_kwargs gives non-tensor values for {changing}, which a graph would freeze)"
    graph_inputs = _graph_inputs(inputs, device)
    if any(not isinstance(v, torch.Tensor) for v in graph_inputs["extras"].values()):
        return None, "eager (the objective's per-step values are not numbers)"
    after = _rng_state(rng_devices)
    leaves = list(params.values())
    with pyro.validation_enabled(False), poutine.trace(param_only=True) as capture:
        graph, why = compile_step(loss_of, leaves, graph_inputs, rng_devices)
    if graph is None:
        return None, f"eager ({why})"
    if set(capture.trace.nodes) != set(params):
        return None, "eager (the traced step used other parameters than the eager one)"
    _set_rng_state(before, rng_devices)
    try:
        out = graph(graph_inputs)
    except Exception:  # noqa: BLE001 - a graph that cannot run is not used; the eager step stands
        out = None
    same = out is not None and _same_rng_state(_rng_state(rng_devices), after) and _close(out[0], eager_loss)
    if same:
        same = all(
            (g is None and leaf.grad is None) or (g is not None and leaf.grad is not None and _close(g, leaf.grad))
            for leaf, g in zip(leaves, out[1])
        )
    _set_rng_state(after, rng_devices)
    if not same:
        return None, "eager (the compiled step did not reproduce the eager one)"
    return graph, "graph"


def _close(a, b):
    """Equal up to float rounding (the graph runs the eager step's own ops, in the same order)."""
    scale = float(b.abs().max()) if b.numel() else 0.0
    scale = scale if scale < float("inf") else 0.0  # a non-finite gradient (the step will stop the fit) matches as NaN
    return bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5 * (1.0 + scale), equal_nan=True))
