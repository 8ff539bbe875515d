"""NumPyro model/guide pairs seen by the SVI objectives (JAX).

:func:`log_density_terms` runs one particle (guide draw, model replayed on
it) as a pure function of its PRNG key and ``jax.vmap``s it over ``K`` keys,
as NumPyro's own ``Trace_ELBO(vectorize_particles=True)`` does: the program
needs no broadcasting discipline. Keys follow ``Trace_ELBO``: one particle uses
``rng_key`` itself, ``K > 1`` particles use ``random.split(rng_key, K)``, and
each particle splits its key into the model's and the guide's seeds.
"""

from __future__ import annotations

import re
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import random
from numpyro import handlers

from ppzoo.backends.batching import (
    NO_BATCH_ARGS,
    NO_PARAMS,
    UNMOVED_STEPS,
    BatchArgs,
    SVIProbe,
    check_observed_lengths,
    plan_fit_minibatches,
    plate_sizes,
    take_batch,
    unmoved,
)
from ppzoo.backends.sites import check_observed_site, log_prob
from ppzoo.backends.svi_common import (
    LogDensityTerms,
    check_guide_matches,
    check_observations_finite,
    is_auxiliary,
    normal_parameters,
    pick_data_plate,
)
from ppzoo.interrupt import check_interrupt

__all__ = ["log_density_terms", "plates_of", "particle_keys"]


def particle_keys(rng_key, num_particles):
    """The per-particle keys ``(K, ...)`` (``rng_key`` itself, batched, when ``K = 1``)."""
    return rng_key[None] if num_particles == 1 else random.split(rng_key, num_particles)


def plates_of(trace):
    """``{plate name: (size, subsample size)}`` and ``{observed site: {plate name: dim}}`` of a trace."""
    plates, observed = {}, {}
    for name, site in trace.items():
        if site["type"] == "plate":
            # the indices actually used (they may have been substituted), not the declared subsample size
            plates[name] = (int(site["args"][0]), int(site["value"].shape[0]))
        elif site["type"] == "sample" and site["is_observed"]:
            observed[name] = {f.name: f.dim for f in site["cond_indep_stack"]}
    return plates, observed


def _latents(trace, auxiliary=False):
    """``{name: distribution}`` of the unobserved sample sites: the auxiliary ones (:func:`is_auxiliary`)
    with ``auxiliary``, else the others."""
    return {
        n: s["fn"] for n, s in trace.items()
        if s["type"] == "sample" and not s["is_observed"] and is_auxiliary(s) == auxiliary
    }


def _site_log_prob(site, path_only=False):
    intermediates = site.get("intermediates")
    if intermediates and path_only:
        # the path-only density is a function of the draw: it needs the transform's inverse
        try:
            return log_prob(site["fn"], site["value"], site.get("mask"), jax.lax.stop_gradient)
        except NotImplementedError:
            raise ValueError(
                f"guide site {site['name']!r} is a normalising flow's draw ({type(site['fn']).__name__}); "
                "estimator='stl' or 'dreg' needs its log-density as a function of the draw with the flow's "
                "parameters held, which needs the flow's inverse; use estimator='reparam'"
            ) from None
    if intermediates:
        # a flow's draw (NumPyro's AutoBNAFNormal, AutoIAFNormal) is scored from the base draw and
        # log-Jacobian recorded when it was drawn: its transform need not have an inverse
        lp = site["fn"].log_prob(site["value"], intermediates)
        mask = site.get("mask")
        return lp if mask is None else jnp.where(mask, lp, 0.0)
    return log_prob(site["fn"], site["value"], site.get("mask"), jax.lax.stop_gradient if path_only else None)


def _accumulate(trace, kinds, data_plate, data_scale, path_only=False):
    """``{kind: (global scalar, local (B,) or None)}`` for one particle."""
    out = {}
    for name, kind in kinds.items():
        site = trace[name]
        lp = _site_log_prob(site, path_only)
        scale = 1.0 if site["scale"] is None else site["scale"]
        frame = next((f for f in site["cond_indep_stack"] if f.name == data_plate), None)
        glob, local = out.get(kind, (jnp.zeros(()), None))
        if frame is None:
            glob = glob + jnp.sum(lp * scale)
        else:
            lp = lp * (scale / data_scale)
            lp = jnp.reshape(lp, (1,) * (-frame.dim - lp.ndim) + lp.shape)
            axis = lp.ndim + frame.dim
            lp = jnp.sum(lp, axis=tuple(d for d in range(lp.ndim) if d != axis))
            lp = jnp.broadcast_to(lp, (frame.size,))
            local = lp if local is None else local + lp
        out[kind] = (glob, local)
    return out


def log_density_terms(
    model, guide, args, kwargs, *, rng_key, param_map, num_particles, estimator="reparam", data_plate=None, conditioned=None
) -> LogDensityTerms:
    """Per-particle log-densities of ``num_particles`` draws of ``guide`` (vmapped).

    ``param_map`` holds the constrained parameter values (as NumPyro's ``SVI``
    passes them); ``conditioned`` substitutes sample sites in both programs
    (e.g. a plate's subsample indices).
    """
    static = {}

    def one(key):
        model_seed, guide_seed = random.split(key)
        g = handlers.substitute(handlers.seed(guide, guide_seed), data=param_map)
        m = handlers.seed(model, model_seed)
        if conditioned:
            g = handlers.substitute(g, data=conditioned)
            m = handlers.substitute(m, data=conditioned)
        guide_trace = handlers.trace(g).get_trace(*args, **kwargs)
        model_trace = handlers.trace(handlers.substitute(handlers.replay(m, guide_trace), data=param_map)).get_trace(
            *args, **kwargs
        )
        model_latents, guide_latents = _latents(model_trace), _latents(guide_trace)
        auxiliary = _latents(guide_trace, auxiliary=True)
        check_guide_matches(model_latents, guide_latents, estimator, auxiliary)
        plates, observed = plates_of(model_trace)
        plate = pick_data_plate(plates, observed, data_plate)
        scale = plates[plate][0] / plates[plate][1] if plate else 1.0
        kinds = {
            n: ("prior" if n in model_latents else "obs") for n, s in model_trace.items() if s["type"] == "sample"
        }
        parts = _accumulate(model_trace, kinds, plate, scale)
        parts.update(
            _accumulate(guide_trace, dict.fromkeys({**guide_latents, **auxiliary}, "guide"), plate, scale,
                        path_only=estimator in ("stl", "dreg"))
        )
        batch = plates[plate][1] if plate else None
        static.update(
            data_scale=scale,
            has_local=batch is not None,
            joint=(plate is None) or any(plate not in {f.name for f in model_trace[n]["cond_indep_stack"]} for n in model_latents),
        )
        out = {}
        for kind in ("obs", "prior", "guide"):
            glob, local = parts.get(kind, (jnp.zeros(()), None))
            out[kind + "_global"] = glob
            if batch is not None:
                out[kind + "_local"] = jnp.zeros((batch,)) if local is None else local
        if estimator == "dreg":
            held = {n: {**s, "value": jax.lax.stop_gradient(s["value"])} if n in guide_latents else s for n, s in guide_trace.items()}
            direct_trace = handlers.trace(handlers.substitute(handlers.replay(m, held), data=param_map)).get_trace(*args, **kwargs)
            direct = _accumulate(direct_trace, dict.fromkeys(kinds, "model"), plate, scale)["model"]
            out["direct_global"] = direct[0]
            if batch is not None:
                out["direct_local"] = direct[1] if direct[1] is not None else jnp.zeros((batch,))
        return out

    parts = jax.vmap(one)(particle_keys(rng_key, num_particles))
    return LogDensityTerms(
        obs_global=parts["obs_global"],
        obs_local=parts.get("obs_local"),
        prior_global=parts["prior_global"],
        prior_local=parts.get("prior_local"),
        guide_global=parts["guide_global"],
        guide_local=parts.get("guide_local"),
        data_scale=float(static["data_scale"]),
        joint=bool(static["joint"]),
        stop_gradient=jax.lax.stop_gradient,
        direct_global=parts.get("direct_global"),
        direct_local=parts.get("direct_local"),
    )


# -- fitting and evaluation -------------------------------------------------

#: keyword the fitting loop uses to hand the minibatch indices to the wrapped programs
SUBSAMPLE_KW = "_ppzoo_subsample"


def _subsampled(fn, plate, batch_args=NO_BATCH_ARGS, num_data=None):
    """``fn`` whose data plate takes its indices from the keyword ``_ppzoo_subsample`` (traceable);
    with ``batch_args``, the per-datum arguments sliced to those rows and the plate seen at its
    full size ``num_data`` (:class:`_AtFullSize`)."""

    def wrapped(*args, **kwargs):
        idx = kwargs.pop(SUBSAMPLE_KW, None)
        if idx is None:
            return fn(*args, **kwargs)
        if batch_args:
            args, kwargs = take_batch(args, kwargs, batch_args, idx)
            with _AtFullSize(plate, num_data), handlers.substitute(data={plate: idx}):
                return fn(*args, **kwargs)
        with handlers.substitute(data={plate: idx}):
            return fn(*args, **kwargs)

    return wrapped


class _AtFullSize(handlers.Messenger):
    """The data plate ``plate`` of a program given B rows of its data (sized by them) seen as the
    subsampling idiom's: its size recorded as ``N`` and its sites scaled by ``N`` over the size the
    program gave it, so the plate's scale is ``N / B`` and the objectives apply it once."""

    def __init__(self, plate, num_data):
        super().__init__()
        self.plate, self.num_data, self.factor = plate, num_data, 1.0

    def process_message(self, msg):
        if msg["type"] == "plate" and msg["name"] == self.plate:
            self.factor = self.num_data / msg["args"][0]
            msg["args"] = (self.num_data, *msg["args"][1:])
        elif (msg["type"] == "sample" and self.factor != 1.0
              and any(f.name == self.plate for f in msg["cond_indep_stack"])):
            msg["scale"] = self.factor if msg["scale"] is None else msg["scale"] * self.factor


def minibatch_probe(model, guide, args, kwargs, plate) -> SVIProbe:
    """The :class:`~.batching.SVIProbe` of a NumPyro model and guide with data plate ``plate``
    (:func:`~.batching.plan_fit_minibatches`): the model traced alone, its latents at feasible or
    check-point values, its parameters at their initial values."""
    from numpyro.infer.autoguide import AutoGuide

    from ppzoo.backends.numpyro_backend import (
        at_check_point,
        feasible,
        numpyro_sites,
        trace_numpyro,
    )
    from ppzoo.backends.sites import program_view

    first = trace_numpyro(model, args, kwargs)
    frame = lambda site: next((f for f in site.get("cond_indep_stack", ()) if f.name == plate), None)  # noqa: E731
    local = tuple(n for n, s in first.items() if s["type"] == "sample" and not s["is_observed"] and frame(s))
    own = next((s["args"][1] for n, s in first.items() if s["type"] == "plate" and n == plate), None)
    whole_local = {}

    def run(a, kw, idx):
        trace = trace_numpyro(model, a, kw, data={plate: idx})
        return {n: plate_sizes(s, frame(s).dim) for n, s in trace.items()
                if s["type"] == "sample" and s["is_observed"] and frame(s)}

    def view(a, kw, idx):
        whole = int(idx.shape[0]) == int(first[plate]["args"][0]) if plate in first else False
        given = {} if whole else {n: jnp.take(v, idx, axis=axis) for n, (v, axis) in whole_local.items()}
        trace = trace_numpyro(model, a, kw, data={plate: idx, **given}, point=at_check_point)
        if whole:
            for n in local:
                site = trace[n]
                axis = jnp.ndim(site["value"]) - site["fn"].event_dim + frame(site).dim
                if axis >= 0:
                    whole_local[n] = (site["value"], axis)
        plates = {n: (int(s["args"][0]), int(jnp.shape(s["value"])[0])) for n, s in trace.items() if s["type"] == "plate"}
        deterministic = [(n, s["value"], [f.name for f in s.get("cond_indep_stack", ())])
                         for n, s in trace.items() if s["type"] == "deterministic"]
        latent = {n for n, s in trace.items() if s["type"] == "sample" and not s["is_observed"]}
        return program_view(numpyro_sites(trace)[0], plates, deterministic, _DataPlate(plate), latent, local_given=True)

    def indexed_past(a, kw, idx):
        from jax.experimental import checkify

        def go(indices):
            trace_numpyro(model, a, kw, data={plate: indices})

        try:
            error, _ = checkify.checkify(go, errors=checkify.index_checks)(idx)
        except Exception:  # noqa: BLE001 - a program checkify cannot follow goes unchecked
            return None
        found = re.search(r"array of shape \((\d+)", error.get() or "")
        return int(found.group(1)) if found else None

    def param_shapes(program, a, kw):
        trace = handlers.trace(handlers.substitute(handlers.seed(program, 0), substitute_fn=feasible)).get_trace(*a, **kw)
        return {n: jnp.shape(s["value"]) for n, s in trace.items() if s["type"] == "param"}

    return SVIProbe(run, view, indexed_past, param_shapes, local, isinstance(guide, AutoGuide), own)


class _DataPlate:
    """The one thing :func:`~.sites.program_view` reads of a layout: the data plate's name."""

    def __init__(self, data_plate):
        self.data_plate = data_plate


def plan_batches(model, guide, args, kwargs, plate, batch_args=None) -> tuple[BatchArgs, bool]:
    """``(the arguments to slice, full-batch instead)`` for fitting with minibatches of ``plate =
    (name, N)`` (:func:`~.batching.plan_fit_minibatches`)."""
    probe = minibatch_probe(model, guide, args, kwargs, plate[0])
    return plan_fit_minibatches(probe, model, guide, args, kwargs, plate=plate[0], num_data=plate[1],
                                arange=jnp.arange, batch_args=batch_args)


def data_plate_of(model, guide, args, kwargs, data_plate=None, params=None):
    """``(plate name or None, N, subsample size)`` from one trace of the guide and the model on it;
    the model's observations are checked first, on a trace of the model alone (an autoguide's
    initialisation would otherwise fail on them with a message that does not say why)."""
    alone = handlers.trace(handlers.seed(handlers.substitute(model, data=params or {}), 1)).get_trace(*args, **kwargs)
    observed = {n: s for n, s in alone.items() if s["type"] == "sample" and s["is_observed"]}
    check_observations_finite({n: s["value"] for n, s in observed.items()},
                              masks={n: s.get("mask") if s.get("mask") is not None else getattr(s["fn"], "_mask", None)
                                     for n, s in observed.items()})
    for n, site in alone.items():
        if site["type"] == "sample" and site["is_observed"]:
            value = site["value"]
            if isinstance(value, (int, float)) and not isinstance(value, bool):  # handlers.condition(model, {"sigma": 1.0})
                value = jnp.asarray(value, dtype=jnp.result_type(float))
            check_observed_site(n, site["fn"], value, [(f.name, f.dim) for f in site["cond_indep_stack"]])
    g = handlers.seed(handlers.substitute(guide, data=params or {}), 0)
    guide_trace = handlers.trace(g).get_trace(*args, **kwargs)
    m = handlers.substitute(handlers.replay(handlers.seed(model, 1), guide_trace), data=params or {})
    trace = handlers.trace(m).get_trace(*args, **kwargs)
    plates, observed = plates_of(trace)
    name = pick_data_plate(plates, observed, data_plate)
    if name:
        check_observed_lengths(model, args, kwargs, [o for o, frames in observed.items() if name in frames], name,
                               plates[name][0])
    return (name, *plates[name]) if name else (None, None, None)


#: optimisation steps per compiled block (progress and divergence checks happen between blocks)
BLOCK = 50


#: compiled fitting programs, reused by later fits of the same model, guide, objective and optimiser
_PROGRAMS: dict = {}
_MAX_PROGRAMS = 16


def _split_static(args, kwargs):
    """``(arrays, rebuild, static_key)``: the array leaves of ``(args, kwargs)`` become traced
    inputs; everything else (sizes, flags) is part of the cache key, or ``None`` if unhashable."""
    leaves, treedef = jax.tree_util.tree_flatten((args, kwargs))
    is_array = [isinstance(x, (jax.Array, np.ndarray)) for x in leaves]
    arrays = [x for x, a in zip(leaves, is_array) if a]
    static = tuple(None if a else x for x, a in zip(leaves, is_array))

    def rebuild(array_values):
        it = iter(array_values)
        return jax.tree_util.tree_unflatten(treedef, [next(it) if a else x for x, a in zip(leaves, is_array)])

    try:
        key = (treedef, static, tuple(is_array))
        hash(key)
    except TypeError:
        key = None
    return arrays, rebuild, key


def _program(objective, model, guide, optimizer, plate, batch_size, annealed, rebuild, static_key, step_kwargs=None,
             batch_args=NO_BATCH_ARGS):
    """``(svi, block, guarded_block)`` for these settings, compiled once and cached when the settings are
    hashable. ``block`` runs the steps alone; ``guarded_block`` (compiled only where a block failed)
    runs them again from the same state and key, keeping the last state whose loss was finite: the
    guard's selects make a program that takes about a quarter longer to compile, which a fit of a few
    hundred steps of a small model would pay on every call."""
    from numpyro.infer import SVI

    key = None if static_key is None else (objective, model, guide, optimizer, plate, batch_size, annealed, static_key,
                                           step_kwargs, batch_args)
    if key is not None and key in _PROGRAMS:
        return _PROGRAMS[key]
    m, g = model, guide
    if batch_size is not None:
        m, g = (_subsampled(p, plate[0], batch_args, plate[1]) for p in (model, guide))
    svi = SVI(m, g, optimizer, loss=objective)

    def advance(arrays, state, rng, t):
        """One step: ``(new state, rng, loss at state's parameters, whether the new parameters are finite)``."""
        args, kwargs = rebuild(arrays)
        rng, sub = random.split(rng)
        kw = dict(kwargs)
        if batch_size is not None:
            kw[SUBSAMPLE_KW] = random.randint(sub, (batch_size,), 0, plate[1])
        if annealed:
            kw["annealing_step"] = t
        if step_kwargs is not None:
            kw.update(step_kwargs(t))
        new_state, loss = svi.update(state, *args, **kw)
        # a constrained parameter can overflow (a scale's exp) where the loss did not
        finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(svi.get_params(new_state))]))
        return new_state, rng, loss, finite

    @partial(jax.jit, static_argnums=4)
    def block(state, rng, start, arrays, length):
        def step(carry, t):
            state, rng, loss, finite = advance(arrays, *carry, t)
            return (state, rng), (loss, finite)

        (state, rng), (losses, finite) = jax.lax.scan(step, (state, rng), start + jnp.arange(length))
        return state, rng, losses, finite

    def guarded_step(arrays, carry, t):
        state, good, rng, stopped = carry
        new_state, rng, loss, finite = advance(arrays, state, rng, t)
        # good: the last state whose loss was finite; the run goes back to it and stops when the loss
        # is not finite, or when the update leaves a parameter that is not
        select = lambda keep, a, b: jax.tree_util.tree_map(lambda x, y: jnp.where(keep, x, y), a, b)  # noqa: E731
        good = select(~stopped & jnp.isfinite(loss), state, good)
        bad = stopped | ~jnp.isfinite(loss) | ~finite
        state = select(bad, good, new_state)
        # a finite loss whose update failed is recorded: the kept parameters are the ones it was taken at
        code = jnp.where(stopped, 0, jnp.where(~jnp.isfinite(loss), 1, jnp.where(~finite, 2, 0)))
        return (state, good, rng, bad), (jnp.where(stopped | ~jnp.isfinite(loss), jnp.nan, loss), code)

    @partial(jax.jit, static_argnums=4)
    def guarded_block(state, rng, start, arrays, length):
        carry = (state, state, rng, jnp.array(False))
        (state, _, rng, _), (losses, codes) = jax.lax.scan(partial(guarded_step, arrays), carry, start + jnp.arange(length))
        return state, rng, losses, codes

    if key is not None:
        if len(_PROGRAMS) >= _MAX_PROGRAMS:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        _PROGRAMS[key] = (svi, block, guarded_block)
    return svi, block, guarded_block


def run_svi(objective, model, guide, args, kwargs, *, optimizer, num_steps, plate, batch_size, seed, annealed, on_step,
            step_kwargs=None, control=None, batch_args=None):
    """Fit with NumPyro's ``SVI`` and ``objective``; returns ``(params, losses, stop_reason)``.

    Steps run in compiled ``lax.scan`` blocks of :data:`BLOCK`; inside a block a
    step whose loss is not finite, or whose update leaves a parameter (in its
    constrained space) non-finite, leaves the state unchanged and stops the
    updates, so the run ends with the parameters of the last finite loss. The compiled
    block is kept for later fits with the same programs, objective and
    optimiser (the data are its inputs, not constants). ``control`` (a
    :class:`ppzoo.diagnostics.fit_convergence.PlateauSchedule`) gives the first
    learning rate from the parameters' names and, after each block, a new one
    or the signal to stop; a learning rate goes into the state of the default
    optimiser (``optax.inject_hyperparams``), so the compiled block is reused.

    With ``batch_size``, minibatches are taken as ``ppzoo.sample`` takes them
    (:func:`plan_batches`): a program that indexes its data by the plate's
    indices gets them; one written for all its data gets its per-datum
    arguments (``batch_args``, or those with N rows) sliced to the minibatch,
    its plate scaled by ``N / B``.
    """
    chosen = BatchArgs()
    if batch_size is not None and plate[0] is not None:
        chosen, full_batch = plan_batches(model, guide, args, kwargs, plate, batch_args)
        if full_batch:
            batch_size = None
    arrays, rebuild, static_key = _split_static(args, kwargs)
    svi, block, guarded_block = _program(objective, model, guide, optimizer, plate, batch_size, annealed, rebuild, static_key,
                                         step_kwargs,
                          chosen)
    key, init_key = random.split(random.PRNGKey(seed))
    init_kw = dict(kwargs)
    if batch_size is not None:
        init_kw[SUBSAMPLE_KW] = jnp.arange(batch_size) % plate[1]
    if step_kwargs is not None:
        init_kw.update(step_kwargs(jnp.asarray(0)))
    _check_optimizer(optimizer)
    state = svi.init(init_key, *args, **init_kw)
    if not svi.get_params(state):
        raise ValueError(NO_PARAMS)
    if control is not None and (first := control.begin(set(svi.get_params(state)))) is not None:
        state = _with_learning_rate(state, first)

    losses, reason, t = [], None, 0
    try:
        while t < num_steps:
            length = min(BLOCK, num_steps - t)
            start_state, start_key = state, key
            state, key, block_losses, finite = block(state, key, t, arrays, length)
            block_losses = np.asarray(block_losses)
            codes = np.zeros(length, dtype=int)
            if not (np.all(np.isfinite(block_losses)) and np.all(np.asarray(finite))):
                # the same steps from the same state and key, stopping at the first that failed
                state, key, block_losses, codes = guarded_block(start_state, start_key, t, arrays, length)
                block_losses, codes = np.asarray(block_losses), np.asarray(codes)
            failed = np.flatnonzero(codes)
            n_ok = length if failed.size == 0 else int(failed[0])
            if failed.size and codes[n_ok] == 2:  # its loss was finite: the step counts, its update does not
                n_ok += 1
            losses.extend(block_losses[:n_ok].tolist())
            for i in range(n_ok):
                on_step(t + i, float(block_losses[i]))
            if failed.size:  # the block stopped updating at its first failure
                step = t + int(failed[0])
                reason = (f"the loss was not finite at step {step}" if codes[failed[0]] == 1
                          else f"the parameters were not finite after step {step}")
                break
            t += length
            if control is not None:
                learning_rate, stop = control.decide()
                if learning_rate is not None:
                    state = _with_learning_rate(state, learning_rate)
                if stop:
                    break
            check_interrupt()
    except KeyboardInterrupt:
        reason = f"interrupted after {len(losses)} steps"
    # a parameter may be a pytree (an Equinox module's weights registered by eqx_module)
    params = {k: jax.tree_util.tree_map(np.asarray, v) for k, v in svi.get_params(state).items()}
    return params, losses, reason


def _check_optimizer(optimizer) -> None:
    """One step of ``optimizer`` on a throwaway parameter: a ``TypeError`` naming the optimizer where it
    cannot take one (a learning rate given as a string, say), which would otherwise fail inside the
    compiled fit with JAX's words."""
    import inspect

    try:
        state = optimizer.init({"probe": jnp.zeros(2)})
        extra = {"value": jnp.zeros(())} if "value" in inspect.signature(optimizer.update).parameters else {}
        for _ in range(UNMOVED_STEPS):
            state = optimizer.update({"probe": jnp.ones(2)}, state, **extra)
        moved = bool(jnp.any(optimizer.get_params(state)["probe"] != 0))
    except Exception as err:  # noqa: BLE001 - said with the optimizer's name
        said = (str(err).strip().splitlines() or [""])[0]
        raise TypeError(
            f"optimizer {type(optimizer).__name__} cannot take a step ({type(err).__name__}: {said}); "
            "check its arguments: a learning rate is a positive number, e.g. numpyro.optim.Adam(0.01)"
        ) from err
    if not moved:
        raise ValueError(unmoved(type(optimizer).__name__, "numpyro.optim.Adam(0.01)"))


def _with_learning_rate(state, learning_rate):
    """``state`` (NumPyro's ``SVIState``) with the learning rate of its ``optax.inject_hyperparams`` optimiser set."""
    step, (params, inner) = state.optim_state
    hyper = inner.hyperparams
    hyper = {**hyper, "learning_rate": jnp.asarray(learning_rate, dtype=jnp.result_type(hyper["learning_rate"]))}
    return state._replace(optim_state=(step, (params, inner._replace(hyperparams=hyper))))


_TERM_FIELDS = ("obs_global", "obs_local", "prior_global", "prior_local", "guide_global", "guide_local")


def make_evaluator(model, guide, args, kwargs, *, params, data_plate=None, full_data=True):
    """``evaluate(num_particles, seed, terms_only=False)``: draws from the guide scored under the model.

    ``evaluate`` returns ``(terms, latents, log_likelihood, observed, local)``
    (see ``pyro_svi_eval.evaluate``), JAX arrays; ``terms_only`` skips all but
    ``terms``. Each particle count is compiled once (``jax.jit``) per evaluator.
    """
    params = {k: jax.tree_util.tree_map(jnp.asarray, v) for k, v in (params or {}).items()}
    plate, size, sub = data_plate_of(model, guide, args, kwargs, data_plate, params)
    conditioned = {plate: jnp.arange(size)} if (full_data and plate and sub != size) else None
    meta = {"local": set()}

    def one(key):
        model_seed, guide_seed = random.split(key)
        g = handlers.substitute(handlers.seed(guide, guide_seed), data=params)
        m = handlers.seed(model, model_seed)
        if conditioned:
            g, m = handlers.substitute(g, data=conditioned), handlers.substitute(m, data=conditioned)
        guide_trace = handlers.trace(g).get_trace(*args, **kwargs)
        model_trace = handlers.trace(handlers.substitute(handlers.replay(m, guide_trace), data=params)).get_trace(*args, **kwargs)
        observed = [n for n, s in model_trace.items() if s["type"] == "sample" and s["is_observed"]]
        scale = meta["data_scale"]
        parts = _accumulate(model_trace, {n: n for n in observed}, plate, scale)
        loglik = {n: (p[1] if p[1] is not None else p[0][None]) for n, p in parts.items()}
        latents = {n: guide_trace[n]["value"] for n in _latents(guide_trace)}
        values = {n: model_trace[n]["value"] for n in observed}
        meta["local"].update(n for n in latents if plate in {f.name for f in guide_trace[n]["cond_indep_stack"]})
        return latents, loglik, values

    @partial(jax.jit, static_argnums=(1, 2))
    def run(key, num_particles, terms_only):
        terms = log_density_terms(
            model, guide, args, kwargs, rng_key=key, param_map=params, num_particles=num_particles,
            data_plate=plate, conditioned=conditioned,
        )
        meta.update(data_scale=terms.data_scale, joint=terms.joint)
        arrays = {f: getattr(terms, f) for f in _TERM_FIELDS}
        if terms_only:
            return arrays, None
        return arrays, jax.vmap(one)(particle_keys(key, num_particles))

    def evaluate(num_particles, seed, terms_only=False):
        arrays, rest = run(random.PRNGKey(seed), num_particles, terms_only)
        terms = LogDensityTerms(
            **arrays, data_scale=meta["data_scale"], joint=meta["joint"], stop_gradient=jax.lax.stop_gradient
        )
        if terms_only:
            return terms, None, None, None, None
        latents, loglik, values = rest
        return terms, latents, loglik, {n: v[0] for n, v in values.items()}, set(meta["local"])

    return evaluate


def local_normal_sites(model, guide, args, kwargs, *, params, data_plate=None):
    """``{site: (loc, scale)}``, ``(N, d)`` NumPy, for the guide's Normal latents inside the data plate (all data)."""
    params = {k: jax.tree_util.tree_map(jnp.asarray, v) for k, v in (params or {}).items()}
    plate, size, _ = data_plate_of(model, guide, args, kwargs, data_plate, params)
    if plate is None:
        return {}
    g = handlers.substitute(handlers.substitute(handlers.seed(guide, 0), data=params), data={plate: jnp.arange(size)})
    trace = handlers.trace(g).get_trace(*args, **kwargs)
    out = {}
    for name, site in trace.items():
        frames = [f for f in site.get("cond_indep_stack", ()) if f.name == plate]
        if site["type"] != "sample" or site["is_observed"] or not frames:
            continue
        found = normal_parameters(site["fn"], np.shape(site["value"]), site["fn"].event_dim, frames[0].dim)
        if found is not None:
            out[name] = found
    return out


def observed_means(model, args, kwargs, *, params, latents):
    """``{site: mean}`` (NumPy) of the model's observed sites with its latents held at ``latents``
    (``{site: value}``) and its parameters at ``params``: a decoder's output, for instance."""
    params = {k: jax.tree_util.tree_map(jnp.asarray, v) for k, v in (params or {}).items()}
    held = {k: jnp.asarray(v) for k, v in latents.items()}
    program = handlers.substitute(handlers.condition(handlers.seed(model, 0), data=held), data=params)
    trace = handlers.trace(program).get_trace(*args, **kwargs)
    return {name: np.asarray(site["fn"].mean) for name, site in trace.items()
            if site["type"] == "sample" and site["is_observed"] and name not in held}
