"""NumPyro model/guide pairs seen by the SVI objectives (JAX).

:func:`log_density_terms` runs one particle (guide draw, model replayed on
it) as a pure function of its PRNG key and ``jax.vmap``s it over ``K`` keys,
as NumPyro's own ``Trace_ELBO(vectorize_particles=True)`` does: the program
needs no broadcasting discipline. Keys follow ``Trace_ELBO``: one particle uses
``rng_key`` itself, ``K > 1`` particles use ``random.split(rng_key, K)``, and
each particle splits its key into the model's and the guide's seeds.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import random
from numpyro import handlers

from ppzoo.backends.batching import check_observed_lengths
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


def _subsampled(fn, plate):
    """``fn`` whose data plate takes its indices from the keyword ``_ppzoo_subsample`` (traceable)."""

    def wrapped(*args, **kwargs):
        idx = kwargs.pop(SUBSAMPLE_KW, None)
        if idx is None:
            return fn(*args, **kwargs)
        with handlers.substitute(data={plate: idx}):
            return fn(*args, **kwargs)

    return wrapped


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
            check_observed_site(n, site["fn"], site["value"], [(f.name, f.dim) for f in site["cond_indep_stack"]])
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


def _program(objective, model, guide, optimizer, plate, batch_size, annealed, rebuild, static_key, step_kwargs=None):
    """``(svi, block)`` for these settings, compiled once and cached when the settings are hashable."""
    from numpyro.infer import SVI

    key = None if static_key is None else (objective, model, guide, optimizer, plate, batch_size, annealed, static_key, step_kwargs)
    if key is not None and key in _PROGRAMS:
        return _PROGRAMS[key]
    m, g = (_subsampled(model, plate[0]), _subsampled(guide, plate[0])) if batch_size is not None else (model, guide)
    svi = SVI(m, g, optimizer, loss=objective)

    def step(arrays, carry, t):
        state, good, rng, stopped = carry
        args, kwargs = rebuild(arrays)
        rng, sub = random.split(rng)
        kw = dict(kwargs)
        if batch_size is not None:
            kw[SUBSAMPLE_KW] = random.randint(sub, (batch_size,), 0, plate[1])
        if annealed:
            kw["annealing_step"] = t
        if step_kwargs is not None:
            kw.update(step_kwargs(t))
        new_state, loss = svi.update(state, *args, **kw)  # loss: at state's parameters
        # good: the last state whose loss was finite; the run goes back to it and stops when the loss
        # is not finite, or when the update leaves a parameter (constrained: a scale's exp can
        # overflow) that is not
        finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(svi.get_params(new_state))]))
        select = lambda keep, a, b: jax.tree_util.tree_map(lambda x, y: jnp.where(keep, x, y), a, b)  # noqa: E731
        good = select(~stopped & jnp.isfinite(loss), state, good)
        bad = stopped | ~jnp.isfinite(loss) | ~finite
        state = select(bad, good, new_state)
        # a finite loss whose update failed is recorded: the kept parameters are the ones it was taken at
        code = jnp.where(stopped, 0, jnp.where(~jnp.isfinite(loss), 1, jnp.where(~finite, 2, 0)))
        return (state, good, rng, bad), (jnp.where(stopped | ~jnp.isfinite(loss), jnp.nan, loss), code)

    @partial(jax.jit, static_argnums=4)
    def block(state, rng, start, arrays, length):
        carry = (state, state, rng, jnp.array(False))
        (state, _, rng, _), (losses, codes) = jax.lax.scan(partial(step, arrays), carry, start + jnp.arange(length))
        return state, rng, losses, codes

    if key is not None:
        if len(_PROGRAMS) >= _MAX_PROGRAMS:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        _PROGRAMS[key] = (svi, block)
    return svi, block


def run_svi(objective, model, guide, args, kwargs, *, optimizer, num_steps, plate, batch_size, seed, annealed, on_step,
            step_kwargs=None, control=None):
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
    """
    arrays, rebuild, static_key = _split_static(args, kwargs)
    svi, block = _program(objective, model, guide, optimizer, plate, batch_size, annealed, rebuild, static_key, step_kwargs)
    key, init_key = random.split(random.PRNGKey(seed))
    init_kw = dict(kwargs)
    if batch_size is not None:
        init_kw[SUBSAMPLE_KW] = jnp.arange(batch_size) % plate[1]
    if step_kwargs is not None:
        init_kw.update(step_kwargs(jnp.asarray(0)))
    state = svi.init(init_key, *args, **init_kw)
    if control is not None and (first := control.begin(set(svi.get_params(state)))) is not None:
        state = _with_learning_rate(state, first)

    losses, reason, t = [], None, 0
    try:
        while t < num_steps:
            length = min(BLOCK, num_steps - t)
            state, key, block_losses, codes = block(state, key, t, arrays, length)
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
