"""The fitting loop of Pyro SVI: Pyro's ``SVI.step`` logic, with a trial of one compiled step.

:func:`run_svi` runs the first step eagerly (Pyro's validation on); from the
second, with ``jit_compile``, one graph per step (:mod:`.pyro_svi_graph`),
kept only if it reproduces an eager step exactly (loss, gradients and the
random stream). A non-finite loss skips the optimiser step and ends the run
with the last finite parameters.
"""

from __future__ import annotations

import pyro
import pyro.infer.util
import torch
from pyro import poutine

from ppzoo.interrupt import check_interrupt

__all__ = ["run_svi", "MIN_COMPILED_STEPS", "CONTROL_EVERY", "set_learning_rate"]


def _with_indices(fn, plate, current):
    """``fn`` with the data plate's subsample indices fixed to ``current["idx"]``."""

    def wrapped(*args, **kwargs):
        return poutine.condition(fn, data={plate: current["idx"]})(*args, **kwargs)

    wrapped.__wrapped__ = fn  # a warning about the program names the user's own (``pyro_svi.warn_looped``)
    return wrapped


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
            step_kwargs=None, jit_compile=True, control=None):
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
    """
    pyro.set_rng_seed(seed)
    losses, reason = [], None
    validate = pyro.infer.util.is_validation_enabled()
    device = next((a.device for a in args if isinstance(a, torch.Tensor)), torch.device("cpu"))
    rng_devices = [device] if device.type == "cuda" else []
    # one pair of wrappers for the whole run (the objective caches per program), reading this step's indices
    current = {}
    m, g = model, guide
    if batch_size is not None:
        m, g = _with_indices(model, plate[0], current), _with_indices(guide, plate[0], current)

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
            if t == 0 and control is not None and (first := control.begin(set(first_params))) is not None:
                set_learning_rate(optimizer, first)
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
