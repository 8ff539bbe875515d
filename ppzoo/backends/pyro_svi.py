"""Pyro model/guide pairs seen by the SVI objectives (PyTorch).

:func:`log_density_terms` runs the guide with ``K`` particles vectorised by an
outer ``pyro.plate`` (dim ``-(max_plate_nesting + 1)``, as Pyro's own
``vectorize_particles=True`` does, so the program must broadcast over a new
leftmost batch dimension), replays the model on the draws and reduces every
site's log-density to per-particle ``(K,)`` terms outside the data plate and
``(K, B)`` terms inside it.
"""

from __future__ import annotations

import pyro
import pyro.util
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from ppzoo.backends.svi_common import (
    LogDensityTerms,
    check_guide_matches,
    normal_parameters,
    pick_data_plate,
)

__all__ = ["log_density_terms", "guess_max_plate_nesting", "PARTICLE_PLATE", "vectorized", "plates_of"]

PARTICLE_PLATE = "_ppzoo_particles"


def vectorized(fn, num_particles, max_plate_nesting):
    """``fn`` run inside the particle plate: every draw gets a leading ``(K, ...)`` batch dimension."""

    def wrapped(*args, **kwargs):
        with pyro.plate(PARTICLE_PLATE, num_particles, dim=-(max_plate_nesting + 1)):
            return fn(*args, **kwargs)

    return wrapped


def guess_max_plate_nesting(model, guide, args, kwargs) -> int:
    """The deepest plate nesting of ``model`` and ``guide`` (one unvectorised trace each)."""
    depth = 0
    with poutine.block(), pyro.validation_enabled(False):
        state = pyro.util.get_rng_state()  # probing must not move the user's random stream
        try:
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        finally:
            pyro.util.set_rng_state(state)
    for trace in (guide_trace, model_trace):
        for site in trace.nodes.values():
            if site["type"] == "sample":
                depth = max(depth, sum(1 for f in site["cond_indep_stack"] if f.vectorized))
    return depth


def plates_of(trace):
    """``{plate name: (size, subsample size)}`` and ``{observed site: {plate name: dim}}`` of a trace."""
    plates, observed = {}, {}
    for name, site in trace.nodes.items():
        if site["type"] != "sample":
            continue
        if site_is_subsample(site):
            fn = site["fn"]
            if name != PARTICLE_PLATE:  # the indices used (they may be conditioned), not the declared subsample size
                plates[name] = (int(fn.size), int(site["value"].shape[0]))
        elif site["is_observed"]:
            observed[name] = {f.name: f.dim for f in site["cond_indep_stack"] if f.vectorized and f.name != PARTICLE_PLATE}
    return plates, observed


def _reduce(lp, num_particles, particle_dim, data_dim, batch):
    """Sum a site's log-density to ``(K,)`` or, if ``data_dim`` is given, ``(K, B)``."""
    ndim = -particle_dim
    if lp.dim() < ndim:
        lp = lp.reshape((1,) * (ndim - lp.dim()) + tuple(lp.shape))
    keep = {lp.dim() + particle_dim} | ({lp.dim() + data_dim} if data_dim is not None else set())
    others = [d for d in range(lp.dim()) if d not in keep]
    if others:
        lp = lp.sum(dim=others, keepdim=True)
    if data_dim is None:
        return lp.reshape(-1).expand(num_particles) if lp.numel() == 1 else lp.reshape(num_particles)
    return lp.reshape(lp.shape[lp.dim() + particle_dim], lp.shape[lp.dim() + data_dim]).expand(num_particles, batch)


def _site_log_prob(site, path_only=False):
    value = site["value"]
    lp = site["fn"].log_prob(value)
    if path_only:
        # value, and a gradient through the draw only: log q(z) - log q(sg z) + sg(log q(sg z))
        held = site["fn"].log_prob(value.detach())
        lp = lp - held + held.detach()
    if site.get("mask") is not None:
        lp = torch.where(site["mask"], lp, lp.new_zeros(()))
    return lp


def _accumulate(trace, kinds, num_particles, particle_dim, data_plate, data_scale, path_only=False):
    """Per-kind sums ``{kind: [global (K,), local (K, B) or None]}`` over the trace's sample sites."""
    out = {kind: [None, None] for kind in set(kinds.values())}
    batch = device = None
    for name, site in trace.nodes.items():
        if name not in kinds:
            continue
        lp = _site_log_prob(site, path_only=path_only)
        device = lp.device
        scale = site["scale"]
        frame = next((f for f in site["cond_indep_stack"] if f.name == data_plate), None)
        slot = out[kinds[name]]
        if frame is None:
            glob = _reduce(lp * scale, num_particles, particle_dim, None, None)
            slot[0] = glob if slot[0] is None else slot[0] + glob
        else:
            batch = frame.size
            local = _reduce(lp * (scale / data_scale), num_particles, particle_dim, frame.dim, batch)
            slot[1] = local if slot[1] is None else slot[1] + local
    for slot in out.values():
        if slot[0] is None:
            slot[0] = torch.zeros(num_particles, device=device)
    return out, batch


def log_density_terms(
    model, guide, args, kwargs, *, num_particles, max_plate_nesting, estimator="reparam", data_plate=None, conditioned=None
) -> tuple[LogDensityTerms, object, object]:
    """Run ``guide`` with ``num_particles`` vectorised draws and the model on them.

    Returns ``(terms, guide_trace, model_trace)``. ``conditioned`` (a dict)
    fixes sample sites in both, e.g. a plate's subsample indices.
    """
    particle_dim = -(max_plate_nesting + 1)
    vec_guide = vectorized(guide, num_particles, max_plate_nesting)
    vec_model = vectorized(model, num_particles, max_plate_nesting)
    if conditioned:
        vec_guide = poutine.condition(vec_guide, data=conditioned)
        vec_model = poutine.condition(vec_model, data=conditioned)
    guide_trace = poutine.trace(vec_guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(vec_model, trace=guide_trace)).get_trace(*args, **kwargs)

    model_latents = _latent_sites(model_trace)
    guide_latents = _latent_sites(guide_trace)
    check_guide_matches(model_latents, guide_latents, estimator)
    plates, observed = plates_of(model_trace)
    data_plate = pick_data_plate(plates, observed, data_plate)
    data_scale = plates[data_plate][0] / plates[data_plate][1] if data_plate else 1.0
    # without a data plate group_log_weights takes the joint bound anyway (there are no local terms)
    joint = any(
        data_plate not in {f.name for f in model_trace.nodes[n]["cond_indep_stack"]} for n in model_latents
    )

    kinds = {n: ("prior" if n in model_latents else "obs") for n in _sample_sites(model_trace)}
    model_parts, batch = _accumulate(model_trace, kinds, num_particles, particle_dim, data_plate, data_scale)
    guide_parts, _ = _accumulate(
        guide_trace, {n: "guide" for n in guide_latents}, num_particles, particle_dim, data_plate, data_scale,
        path_only=estimator in ("stl", "dreg"),
    )
    device = next(s["value"].device for s in model_trace.nodes.values() if s["type"] == "sample")

    def part(parts, kind):
        glob, local = parts.get(kind, (torch.zeros(num_particles, device=device), None))
        if batch is not None and local is None:
            local = torch.zeros(num_particles, batch, device=device)
        return glob, local

    (obs_g, obs_l), (prior_g, prior_l), (q_g, q_l) = part(model_parts, "obs"), part(model_parts, "prior"), part(guide_parts, "guide")
    terms = LogDensityTerms(
        obs_global=obs_g, obs_local=obs_l, prior_global=prior_g, prior_local=prior_l, guide_global=q_g, guide_local=q_l,
        data_scale=float(data_scale), joint=bool(joint), stop_gradient=torch.Tensor.detach,
    )
    if estimator == "dreg":
        held = poutine.Trace()
        for name, site in guide_trace.nodes.items():
            site = dict(site)
            if name in guide_latents:
                site["value"] = site["value"].detach()
            held.add_node(name, **site)
        direct_trace = poutine.trace(poutine.replay(vec_model, trace=held)).get_trace(*args, **kwargs)
        direct, _ = _accumulate(direct_trace, {n: "model" for n in kinds}, num_particles, particle_dim, data_plate, data_scale)
        terms.direct_global, terms.direct_local = part(direct, "model")
    return terms, guide_trace, model_trace


def _sample_sites(trace):
    return [n for n, s in trace.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)]


def _latent_sites(trace):
    return {
        n: s["fn"]
        for n, s in trace.nodes.items()
        if s["type"] == "sample" and not site_is_subsample(s) and not s["is_observed"]
    }


# -- fitting and evaluation -------------------------------------------------


def _with_params(fn, params):
    return poutine.substitute(fn, data=params) if params else fn


def data_plate_of(model, guide, args, kwargs, data_plate=None):
    """``(plate name or None, N, subsample size)`` from one unvectorised trace (random stream untouched)."""
    state = pyro.util.get_rng_state()
    try:
        with poutine.block(), pyro.validation_enabled(False):
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
            trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    finally:
        pyro.util.set_rng_state(state)
    plates, observed = plates_of(trace)
    name = pick_data_plate(plates, observed, data_plate)
    return (name, *plates[name]) if name else (None, None, None)


def _with_indices(fn, plate, current):
    """``fn`` with the data plate's subsample indices fixed to ``current["idx"]``."""

    def wrapped(*args, **kwargs):
        return poutine.condition(fn, data={plate: current["idx"]})(*args, **kwargs)

    return wrapped


#: fits shorter than this stay eager: tracing a step costs about as much as tens of eager steps
MIN_COMPILED_STEPS = 20


def run_svi(objective, model, guide, args, kwargs, *, optimizer, num_steps, plate, batch_size, seed, annealed, on_step,
            step_kwargs=None, jit_compile=True):
    """Fit with ``objective`` for ``num_steps``; returns ``(params, losses, stop_reason, compiled_as)``.

    Each step: the loss and its gradient, then the optimiser step only if the
    loss is finite; a non-finite loss stops the run with the last finite
    parameters. ``plate = (name, N)`` and ``batch_size`` subsample the data
    plate (indices drawn uniformly with replacement). ``on_step(t, loss)`` is
    called each step; Ctrl-C stops the run after the last completed step.

    The first step runs eagerly (parameters found by tracing, as Pyro's
    ``SVI.step`` does; Pyro's validation on). With ``jit_compile`` (and at
    least :data:`MIN_COMPILED_STEPS` steps) the second step is traced into one
    graph (:mod:`ppzoo.backends.pyro_svi_graph`), run eagerly as well from the
    same random state, and the graph is kept only if it reproduces that step:
    the same loss, gradients and random draws. ``compiled_as`` says which:
    ``"graph"``, or ``"eager"`` and why.
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
        extras, kw = objective.split_extras(kw, "pyro")
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

    compiled, first_params = None, {}
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
                break
            optimizer(leaves)
            pyro.infer.util.zero_grads(leaves)
            losses.append(value)
            on_step(t, value)
    except KeyboardInterrupt:
        reason = f"interrupted after {len(losses)} steps"
    store = pyro.get_param_store()
    values = {name: store[name].detach().cpu().numpy() for name in store.keys()}
    return values, losses, reason, compiled_as


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
    scale = b.abs().max() if b.numel() else b.new_zeros(())
    return bool(torch.allclose(a, b, rtol=1e-4, atol=float(1e-5 * (1.0 + scale))))


def evaluate(
    model, guide, args, kwargs, *, params, num_particles, data_plate=None, max_plate_nesting=None, full_data=True, terms_only=False
):
    """Draw ``num_particles`` times from the guide (no gradient) and score the draws under the model.

    Returns ``(terms, latents, log_likelihood, observed, local)``: the
    :class:`LogDensityTerms` (torch), ``{latent: (K, ...)}``,
    ``{observed site: (K, N)}`` per datum (``(K, 1)`` without a data plate),
    ``{observed site: value}``, the names of the latents inside the data
    plate; the data plate is seen whole when ``full_data``. ``terms_only``
    returns ``None`` for all but ``terms``.
    """
    # torch modules registered with pyro.module keep their own (trained in place) weights
    params = {k: v for k, v in (params or {}).items() if "$$$" not in k}
    model, guide = _with_params(model, params), _with_params(guide, params)
    if max_plate_nesting is None:
        max_plate_nesting = guess_max_plate_nesting(model, guide, args, kwargs)
    plate, size, sub = data_plate_of(model, guide, args, kwargs, data_plate)
    conditioned = {plate: torch.arange(size)} if (full_data and plate and sub != size) else None
    with torch.no_grad(), pyro.validation_enabled(False):
        terms, guide_trace, model_trace = log_density_terms(
            model, guide, args, kwargs, num_particles=num_particles, max_plate_nesting=max_plate_nesting,
            data_plate=plate, conditioned=conditioned,
        )
        if terms_only:
            return terms, None, None, None, None
        particle_dim = -(max_plate_nesting + 1)
        names = [n for n in _sample_sites(model_trace) if model_trace.nodes[n]["is_observed"] and n not in (conditioned or {})]
        data_scale = terms.data_scale
        parts, _ = _accumulate(model_trace, {n: n for n in names}, num_particles, particle_dim, plate, data_scale)
    loglik = {n: (p[1] if p[1] is not None else p[0][:, None]) for n, p in parts.items()}
    latents = {n: _particles_first(guide_trace.nodes[n], num_particles, max_plate_nesting) for n in _latent_sites(guide_trace)}
    observed = {n: model_trace.nodes[n]["value"] for n in names}
    local = {n for n in latents if plate in {f.name for f in guide_trace.nodes[n]["cond_indep_stack"]}}
    return terms, latents, loglik, observed, local


def _particles_first(site, num_particles, max_plate_nesting):
    """A vectorised draw ``(K, plate dims.., event)`` as ``(K, event)`` or ``(K, B, event)``: unused plate dims dropped."""
    value = site["value"].detach()
    event_dim = site["fn"].event_dim
    batch_dims = value.dim() - event_dim
    if batch_dims < max_plate_nesting + 1:
        value = value.reshape((1,) * (max_plate_nesting + 1 - batch_dims) + tuple(value.shape))
    value = value.expand((num_particles,) + tuple(value.shape[1:]))
    unused = tuple(d for d in range(1, max_plate_nesting + 1) if value.shape[d] == 1)
    return value.squeeze(dim=unused) if unused else value


def local_normal_sites(model, guide, args, kwargs, *, params, data_plate=None):
    """``{site: (loc, scale)}``, ``(N, d)`` NumPy, for the guide's Normal latents inside the data plate (all data)."""
    params = {k: v for k, v in (params or {}).items() if "$$$" not in k}
    model, guide = _with_params(model, params), _with_params(guide, params)
    plate, size, _ = data_plate_of(model, guide, args, kwargs, data_plate)
    if plate is None:
        return {}
    device = next((a.device for a in args if torch.is_tensor(a)), None)
    with torch.no_grad(), pyro.validation_enabled(False), poutine.block():
        g = poutine.condition(guide, data={plate: torch.arange(size, device=device)})
        trace = poutine.trace(g).get_trace(*args, **kwargs)
    out = {}
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
            continue
        frames = [f for f in site["cond_indep_stack"] if f.name == plate]
        if not frames:
            continue
        found = normal_parameters(
            site["fn"], tuple(site["value"].shape), site["fn"].event_dim, frames[0].dim,
            to_numpy=lambda t: t.detach().cpu().numpy(),
        )
        if found is not None:
            out[name] = found
    return out
