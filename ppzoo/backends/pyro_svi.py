"""Pyro model/guide pairs seen by the SVI objectives (PyTorch): the per-particle terms.

The fitting loop is :mod:`.pyro_svi_fit`, evaluation of a fitted guide
:mod:`.pyro_svi_eval`, the compiled step :mod:`.pyro_svi_graph`.

:func:`log_density_terms` runs the guide with ``K`` particles vectorised by an
outer ``pyro.plate`` (dim ``-(max_plate_nesting + 1)``, as Pyro's own
``vectorize_particles=True`` does, so the program must broadcast over a new
leftmost batch dimension), replays the model on the draws and reduces every
site's log-density to per-particle ``(K,)`` terms outside the data plate and
``(K, B)`` terms inside it.
"""

from __future__ import annotations

import warnings

import pyro
import pyro.util
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from ppzoo.backends.batching import check_observed_lengths
from ppzoo.backends.sites import check_observed_site, log_prob
from ppzoo.backends.svi_common import (
    LogDensityTerms,
    check_guide_matches,
    check_observations_finite,
    is_auxiliary,
    pick_data_plate,
)

__all__ = [
    "log_density_terms", "guess_max_plate_nesting", "PARTICLE_PLATE", "vectorized", "plates_of", "data_plate_of",
    "with_params", "sample_sites", "latent_sites", "accumulate", "NotVectorisable", "looped_terms", "warn_looped",
]

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
    return log_prob(site["fn"], site["value"], site.get("mask"), torch.Tensor.detach if path_only else None)


def accumulate(trace, kinds, num_particles, particle_dim, data_plate, data_scale, path_only=False):
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


class NotVectorisable(Exception):
    """The programs fail when run inside the particle plate (they do not broadcast over a new
    leftmost dimension, e.g. ``x @ w`` with ``w`` of shape ``(K, 1, d)``); the caller then runs
    the particles one at a time (:func:`looped_terms`)."""


def log_density_terms(
    model, guide, args, kwargs, *, num_particles, max_plate_nesting, estimator="reparam", data_plate=None, conditioned=None
) -> tuple[LogDensityTerms, object, object]:
    """Run ``guide`` with ``num_particles`` vectorised draws and the model on them (one particle:
    the programs as written, with no particle plate, as Pyro's ``Trace_ELBO`` runs them).

    Returns ``(terms, guide_trace, model_trace)``. ``conditioned`` (a dict)
    fixes sample sites in both, e.g. a plate's subsample indices. Raises
    :class:`NotVectorisable` when ``num_particles > 1`` and the programs fail inside the particle plate.
    """
    particle_dim = -(max_plate_nesting + 1)
    if num_particles == 1:
        vec_guide, vec_model = guide, model
    else:
        vec_guide = vectorized(guide, num_particles, max_plate_nesting)
        vec_model = vectorized(model, num_particles, max_plate_nesting)
    if conditioned:
        vec_guide = poutine.condition(vec_guide, data=conditioned)
        vec_model = poutine.condition(vec_model, data=conditioned)
    try:
        guide_trace = poutine.trace(vec_guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(vec_model, trace=guide_trace)).get_trace(*args, **kwargs)
    except (RuntimeError, ValueError, IndexError) as err:
        if num_particles == 1:
            raise
        raise NotVectorisable(str(err)) from err

    model_latents = latent_sites(model_trace)
    guide_latents = latent_sites(guide_trace)
    auxiliary = latent_sites(guide_trace, auxiliary=True)
    check_guide_matches(model_latents, guide_latents, estimator, auxiliary)
    plates, observed = plates_of(model_trace)
    data_plate = pick_data_plate(plates, observed, data_plate)
    data_scale = plates[data_plate][0] / plates[data_plate][1] if data_plate else 1.0
    # without a data plate group_log_weights takes the joint bound anyway (there are no local terms)
    joint = any(
        data_plate not in {f.name for f in model_trace.nodes[n]["cond_indep_stack"]} for n in model_latents
    )

    kinds = {n: ("prior" if n in model_latents else "obs") for n in sample_sites(model_trace)}
    model_parts, batch = accumulate(model_trace, kinds, num_particles, particle_dim, data_plate, data_scale)
    guide_parts, _ = accumulate(
        guide_trace, dict.fromkeys({**guide_latents, **auxiliary}, "guide"), num_particles, particle_dim, data_plate, data_scale,
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
        direct, _ = accumulate(direct_trace, {n: "model" for n in kinds}, num_particles, particle_dim, data_plate, data_scale)
        terms.direct_global, terms.direct_local = part(direct, "model")
    return terms, guide_trace, model_trace


def looped_terms(model, guide, args, kwargs, *, num_particles, max_plate_nesting, **options) -> LogDensityTerms:
    """The terms of ``num_particles`` particles run one at a time (no particle plate), stacked as
    :func:`log_density_terms` would give them vectorised."""
    runs = [
        log_density_terms(model, guide, args, kwargs, num_particles=1, max_plate_nesting=max_plate_nesting, **options)[0]
        for _ in range(num_particles)
    ]
    first = runs[0]
    for name in ("obs_global", "obs_local", "prior_global", "prior_local", "guide_global", "guide_local",
                 "direct_global", "direct_local"):
        if getattr(first, name) is not None:
            setattr(first, name, torch.cat([getattr(r, name) for r in runs], dim=0))
    return first


#: programs already reported as running their particles one at a time
_REPORTED: list = []


def warn_looped(model, err) -> None:
    """One warning per model: its particles run one at a time, and why."""
    if any(m is model for m in _REPORTED):
        return
    if len(_REPORTED) >= 16:
        _REPORTED.pop(0)
    _REPORTED.append(model)
    warnings.warn(
        f"the Pyro program does not run with its particles vectorised in an outer pyro.plate ({str(err).splitlines()[0]}); "
        "ppzoo runs them one at a time, which is slower. Write the program to broadcast over a new leftmost "
        "dimension (as for Pyro's vectorize_particles=True) to vectorise them",
        UserWarning,
        stacklevel=4,
    )


def sample_sites(trace):
    return [n for n, s in trace.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)]


def latent_sites(trace, auxiliary=False):
    """``{name: distribution}`` of the unobserved sample sites: the auxiliary ones (:func:`is_auxiliary`)
    with ``auxiliary``, else the others."""
    return {
        n: s["fn"]
        for n, s in trace.nodes.items()
        if s["type"] == "sample" and not site_is_subsample(s) and not s["is_observed"] and is_auxiliary(s) == auxiliary
    }


def with_params(fn, params):
    """``fn`` with its ``param`` statements substituted by ``params`` (none: ``fn`` itself)."""
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
    check_observations_finite({
        n: s["value"].detach().cpu().numpy() for n, s in trace.nodes.items()
        if s["type"] == "sample" and s["is_observed"] and not site_is_subsample(s) and torch.is_tensor(s["value"])
    })
    for n, site in trace.nodes.items():
        if site["type"] == "sample" and site["is_observed"] and not site_is_subsample(site):
            check_observed_site(n, site["fn"], site["value"], [(f.name, f.dim) for f in site["cond_indep_stack"]])
    plates, observed = plates_of(trace)
    name = pick_data_plate(plates, observed, data_plate)
    if name:
        check_observed_lengths(model, args, kwargs, [o for o, frames in observed.items() if name in frames], name,
                               plates[name][0])
    return (name, *plates[name]) if name else (None, None, None)
