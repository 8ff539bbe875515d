"""Pyro model/guide pairs seen by the SVI objectives (PyTorch): the per-particle terms.

The fitting loop is :mod:`.pyro_svi_fit`, evaluation of a fitted guide
:mod:`.pyro_svi_eval`, the compiled step :mod:`.pyro_svi_graph`.

:func:`log_density_terms` draws ``K`` particles from the guide at once, replays
the model on the draws and reduces every site's log-density to per-particle
``(K,)`` terms outside the data plate and ``(K, B)`` terms inside it. The
particles are vectorised one of two ways (:data:`WAYS`), the first that the
programs run under being kept for them (:class:`ParticleWays`):

* ``"plate"``: guide and model both run inside an outer ``pyro.plate`` at dim
  ``-(max_plate_nesting + 1)``, as Pyro's own ``vectorize_particles=True``
  does; the programs must broadcast over a new leftmost batch dimension.
* ``"vmap"``: the guide runs in that plate (Pyro's autoguides and guides that
  draw from ``param`` statements broadcast), the model is replayed on one
  particle's draws at a time under ``torch.func.vmap``, so it is run as
  written: ``x @ w`` sees ``w`` of shape ``(d,)``, not ``(K, 1, d)``.

Programs that run neither way have their particles run one at a time
(:func:`looped_terms`, one warning per model).
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import pyro
import pyro.util
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from torch.utils import _pytree as pytree

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
    "log_density_terms", "guess_max_plate_nesting", "probe", "Probe", "PARTICLE_PLATE", "WAYS",
    "vectorized", "plates_of", "data_plate_of", "with_params", "sample_sites", "latent_sites",
    "accumulate", "NotVectorisable", "looped_terms", "warn_looped", "ParticleRun", "ParticleWays",
    "per_particle_draws",
]

PARTICLE_PLATE = "_ppzoo_particles"

#: the ways of vectorising particles, in the order they are tried (the fastest first)
WAYS = ("plate", "vmap")


def vectorized(fn, num_particles, max_plate_nesting):
    """``fn`` run inside the particle plate: every draw gets a leading ``(K, ...)`` batch dimension."""

    def wrapped(*args, **kwargs):
        with pyro.plate(PARTICLE_PLATE, num_particles, dim=-(max_plate_nesting + 1)):
            return fn(*args, **kwargs)

    return wrapped


class Probe(NamedTuple):
    """What one unvectorised trace of the programs tells: the deepest plate nesting, and each
    guide sample site's number of batch dimensions (the rank its draw has in a run of one
    particle, which :func:`per_particle_draws` gives back to the model)."""

    max_plate_nesting: int
    batch_ranks: dict


def probe(model, guide, args, kwargs) -> Probe:
    """:class:`Probe` of ``model`` and ``guide``: one unvectorised trace each (random stream untouched)."""
    with poutine.block(), pyro.validation_enabled(False):
        state = pyro.util.get_rng_state()  # probing must not move the user's random stream
        try:
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        finally:
            pyro.util.set_rng_state(state)
    depth = 0
    for trace in (guide_trace, model_trace):
        for site in trace.nodes.values():
            if site["type"] == "sample":
                depth = max(depth, sum(1 for f in site["cond_indep_stack"] if f.vectorized))
    ranks = {
        name: site["value"].dim() - site["fn"].event_dim
        for name, site in guide_trace.nodes.items()
        if site["type"] == "sample" and not site_is_subsample(site)
        and torch.is_tensor(site["value"])
    }
    return Probe(depth, ranks)


def guess_max_plate_nesting(model, guide, args, kwargs) -> int:
    """The deepest plate nesting of ``model`` and ``guide`` (one unvectorised trace each)."""
    return probe(model, guide, args, kwargs).max_plate_nesting


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


def _check_particle_rank(name, site, rank) -> None:
    """Raise :class:`NotVectorisable` where a site's batch shape has dimensions left of the
    particles' (``rank`` = the plates' and the particles'): the program broadcast its particles
    against each other (``w.unsqueeze(-2)`` of a ``(K, 1, d)`` draw makes a ``(K, K, B)``
    likelihood), which would score every particle on all of them. Checked before ``log_prob``,
    which would allocate the ``K x K`` array."""
    fn, value = site["fn"], site["value"]
    value_batch = tuple(value.shape[: max(value.dim() - fn.event_dim, 0)]) if torch.is_tensor(value) else ()
    try:
        shape = torch.broadcast_shapes(tuple(fn.batch_shape), value_batch)
    except RuntimeError as err:
        raise NotVectorisable(f"site {name!r}: {_first_line(err)}") from err
    if len(shape) > rank:
        raise NotVectorisable(
            f"site {name!r} has batch shape {tuple(shape)}, with dimensions left of the particles' (at "
            f"dim {-rank}): the program broadcasts the particles against each other"
        )


def accumulate(trace, kinds, num_particles, particle_dim, data_plate, data_scale, path_only=False):
    """Per-kind sums ``{kind: [global (K,), local (K, B) or None]}`` over the trace's sample sites."""
    out = {kind: [None, None] for kind in set(kinds.values())}
    batch = device = None
    for name, site in trace.nodes.items():
        if name not in kinds:
            continue
        if num_particles > 1:
            _check_particle_rank(name, site, -particle_dim)
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
    """The programs fail when their particles are vectorised one way (:data:`WAYS`): inside the
    particle plate they must broadcast over a new leftmost dimension (``x @ w`` fails with ``w``
    of shape ``(K, 1, d)``); under ``vmap`` the guide must still run in the plate, and the model
    must not read a value of a draw in Python control flow."""


def per_particle_draws(guide_trace, num_particles, max_plate_nesting, batch_ranks) -> dict:
    """``{site: (K, *shape of one particle's draw)}`` of a guide trace made in the particle plate.

    A draw made in the plate has ``m + 1`` batch dimensions (``m`` the plate
    nesting), or fewer where it broadcasts; with the particle's dimension
    (size ``K``, or 1 when the draw is the same for all) taken first, the
    ``m - r`` dimensions left of the ``r = batch_ranks[site]`` that the site
    has in a run of one particle must have size 1, and are dropped: ``w`` of
    ``(K, 1, d)`` becomes ``(K, d)``, each particle's ``(d,)`` as the model
    would see it unvectorised. Raises :class:`NotVectorisable` where they do not.
    """
    m, draws = max_plate_nesting, {}
    for name, site in guide_trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site) or name not in batch_ranks:
            continue
        value = site["value"]
        batch_dims = value.dim() - site["fn"].event_dim
        rank = batch_ranks[name]
        if batch_dims > m + 1 or rank > m:
            raise NotVectorisable(f"the guide's draw of {name!r} has dimensions left of the particles'")
        value = value.reshape((1,) * (m + 1 - batch_dims) + tuple(value.shape))
        if any(size != 1 for size in value.shape[1:m + 1 - rank]):
            raise NotVectorisable(f"the guide's draw of {name!r} has more dimensions than one particle's")
        value = value[(slice(None),) + (0,) * (m - rank)]
        draws[name] = value.expand((num_particles,) + tuple(value.shape[1:]))
    return draws


def _with_draws(guide_trace, draws):
    """A trace for ``poutine.replay``: the guide trace's sample sites, ``draws`` as their values."""
    trace = poutine.Trace()
    for name, site in guide_trace.nodes.items():
        if site["type"] == "sample":
            trace.add_node(name, **{**site, "value": draws.get(name, site["value"])})
    return trace


def _detached(guide_trace):
    """The guide trace with its draws detached (DReG's term whose gradient reaches only the model's
    parameters)."""
    trace = poutine.Trace()
    for name, site in guide_trace.nodes.items():
        site = dict(site)
        if site["type"] == "sample" and not site_is_subsample(site) and not site["is_observed"]:
            site["value"] = site["value"].detach()
        trace.add_node(name, **site)
    return trace


def _replay(model, guide_trace, args, kwargs):
    return poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)


#: what a failed vectorised run raises (a shape mismatch, a value read under vmap, an op vmap lacks)
_VECTORISING_ERRORS = (RuntimeError, ValueError, IndexError, NotImplementedError)


def _vmapped_replay(
    model, guide_trace, args, kwargs, score, *, num_particles, max_plate_nesting, batch_ranks
):
    """``score(trace, 1)`` of the model replayed on each particle's draws under ``torch.func.vmap``.

    ``score`` returns ``(facts, tensors)``: Python facts about the trace (the
    same for every particle, taken from the one traced run) and a pytree of
    ``(1, ...)`` tensors, given back stacked as ``(K, ...)``. Pyro's validation
    is off inside: it reads a boolean from every checked value, which ``vmap``
    cannot give for a batched one. The model draws nothing (its latents are
    replayed); a plate's subsample indices, if the model draws them, are the
    same for every particle (``randomness="same"``), as in the particle plate.
    """
    draws = per_particle_draws(guide_trace, num_particles, max_plate_nesting, batch_ranks)
    found = {}

    def one(draws):
        with pyro.validation_enabled(False):
            facts, tensors = score(_replay(model, _with_draws(guide_trace, draws), args, kwargs), 1)
        leaves, found["spec"] = pytree.tree_flatten(tensors)
        found["facts"], found["kept"] = facts, [leaf is not None for leaf in leaves]
        return [leaf[0] for leaf in leaves if leaf is not None]  # one particle's (1, ...) as (...)

    try:
        stacked = iter(torch.func.vmap(one, randomness="same")(draws))
    except _VECTORISING_ERRORS as err:
        raise NotVectorisable(f"under vmap: {_first_line(err)}") from err
    leaves = [next(stacked) if kept else None for kept in found["kept"]]
    return found["facts"], pytree.tree_unflatten(leaves, found["spec"])


@dataclass
class _ModelFacts:
    """What the model's trace says, the same for every particle."""

    latents: dict
    data_plate: str | None
    data_scale: float
    joint: bool
    batch: int | None
    kinds: dict
    observed: dict


def _score_model(trace, num_particles, *, particle_dim, data_plate, per_site, left_out):
    """``(facts, {"parts": {kind: [global, local]}, "loglik": {site: [global, local]} or None})``.

    ``kind`` is ``"obs"`` or ``"prior"`` (:func:`accumulate`); ``loglik``
    (``per_site``) has each observed site but those in ``left_out`` (conditioned plate indices).
    """
    latents = latent_sites(trace)
    plates, observed = plates_of(trace)
    data_plate = pick_data_plate(plates, observed, data_plate)
    data_scale = plates[data_plate][0] / plates[data_plate][1] if data_plate else 1.0
    # without a data plate group_log_weights takes the joint bound anyway (there are no local terms)
    joint = any(
        data_plate not in {f.name for f in trace.nodes[n]["cond_indep_stack"]} for n in latents
    )
    kinds = {n: ("prior" if n in latents else "obs") for n in sample_sites(trace)}
    parts, batch = accumulate(trace, kinds, num_particles, particle_dim, data_plate, data_scale)
    observed_values, loglik = {}, None
    if per_site:
        names = [n for n, kind in kinds.items() if kind == "obs" and n not in left_out]
        observed_values = {n: trace.nodes[n]["value"] for n in names}
        loglik, _ = accumulate(
            trace, {n: n for n in names}, num_particles, particle_dim, data_plate, data_scale
        )
    facts = _ModelFacts(
        dict.fromkeys(latents), data_plate, data_scale, joint, batch, kinds, observed_values
    )
    return facts, {"parts": parts, "loglik": loglik}


def _score_direct(trace, num_particles, *, particle_dim, facts):
    """DReG's ``log p(x, sg z)`` per particle: ``{"model": [global, local]}``."""
    kinds = dict.fromkeys(facts.kinds, "model")
    parts, _ = accumulate(
        trace, kinds, num_particles, particle_dim, facts.data_plate, facts.data_scale
    )
    return None, parts


@dataclass
class ParticleRun:
    """One vectorised run: the terms, the guide's trace (draws ``(K, ...)`` in the particle plate,
    as ``K`` particles' draws from the plate or ``vmap`` ways alike), and with ``per_site`` the
    per-site log-likelihood ``{observed site: [global (K,), local (K, B) or None]}`` and the
    observed values."""

    terms: LogDensityTerms
    guide_trace: object
    loglik: dict | None = None
    observed: dict | None = None


def log_density_terms(
    model, guide, args, kwargs, *, num_particles, max_plate_nesting, estimator="reparam",
    data_plate=None, conditioned=None, way="plate", batch_ranks=None, per_site=False,
) -> ParticleRun:
    """Run ``guide`` with ``num_particles`` vectorised draws and the model on them (one particle:
    the programs as written, with no particle plate, as Pyro's ``Trace_ELBO`` runs them).

    ``way`` (:data:`WAYS`) says how the model sees the particles: in the
    particle plate, or one at a time under ``vmap`` (``batch_ranks`` from
    :func:`probe` needed). ``conditioned`` (a dict) fixes sample sites in
    both programs, e.g. a plate's subsample indices. Raises
    :class:`NotVectorisable` when ``num_particles > 1`` and the programs fail that way.
    """
    if way not in WAYS:
        raise ValueError(f"way must be one of {WAYS}, got {way!r}")
    particle_dim = -(max_plate_nesting + 1)
    vectorise = num_particles > 1
    if vectorise:
        guide = vectorized(guide, num_particles, max_plate_nesting)
        if way == "plate":
            model = vectorized(model, num_particles, max_plate_nesting)
    if conditioned:
        guide = poutine.condition(guide, data=conditioned)
        model = poutine.condition(model, data=conditioned)

    def replayed(trace, score):
        if vectorise and way == "vmap":
            return _vmapped_replay(model, trace, args, kwargs, score, num_particles=num_particles,
                                   max_plate_nesting=max_plate_nesting, batch_ranks=batch_ranks)
        try:
            model_trace = _replay(model, trace, args, kwargs)
        except _VECTORISING_ERRORS as err:
            if not vectorise:
                raise
            raise NotVectorisable(f"in the particle plate: {_first_line(err)}") from err
        return score(model_trace, num_particles)

    try:
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    except _VECTORISING_ERRORS as err:
        if not vectorise:
            raise
        raise NotVectorisable(f"the guide in the particle plate: {_first_line(err)}") from err
    facts, scored = replayed(guide_trace, lambda trace, k: _score_model(
        trace, k, particle_dim=particle_dim, data_plate=data_plate, per_site=per_site,
        left_out=conditioned or {},
    ))

    guide_latents = latent_sites(guide_trace)
    auxiliary = latent_sites(guide_trace, auxiliary=True)
    check_guide_matches(facts.latents, guide_latents, estimator, auxiliary)
    guide_parts, _ = accumulate(
        guide_trace, dict.fromkeys({**guide_latents, **auxiliary}, "guide"), num_particles,
        particle_dim, facts.data_plate, facts.data_scale, path_only=estimator in ("stl", "dreg"),
    )
    device = next((p[0].device for p in (*scored["parts"].values(), *guide_parts.values())), None)

    def part(parts, kind):
        glob, local = parts.get(kind, (torch.zeros(num_particles, device=device), None))
        if facts.batch is not None and local is None:
            local = torch.zeros(num_particles, facts.batch, device=device)
        return glob, local

    model_parts = scored["parts"]
    (obs_g, obs_l), (prior_g, prior_l) = part(model_parts, "obs"), part(model_parts, "prior")
    q_g, q_l = part(guide_parts, "guide")
    terms = LogDensityTerms(
        obs_global=obs_g, obs_local=obs_l, prior_global=prior_g, prior_local=prior_l,
        guide_global=q_g, guide_local=q_l, data_scale=float(facts.data_scale), joint=bool(facts.joint),
        stop_gradient=torch.Tensor.detach,
    )
    if estimator == "dreg":
        _, direct = replayed(_detached(guide_trace), lambda trace, k: _score_direct(
            trace, k, particle_dim=particle_dim, facts=facts))
        terms.direct_global, terms.direct_local = part(direct, "model")
    return ParticleRun(terms, guide_trace, scored["loglik"], facts.observed if per_site else None)


def looped_terms(model, guide, args, kwargs, *, num_particles, max_plate_nesting, **options) -> LogDensityTerms:
    """The terms of ``num_particles`` particles run one at a time (no particle plate), stacked as
    :func:`log_density_terms` would give them vectorised."""
    options.pop("way", None)
    options.pop("batch_ranks", None)
    runs = [
        log_density_terms(
            model, guide, args, kwargs, num_particles=1, max_plate_nesting=max_plate_nesting, **options
        ).terms
        for _ in range(num_particles)
    ]
    first = runs[0]
    for name in ("obs_global", "obs_local", "prior_global", "prior_local", "guide_global", "guide_local",
                 "direct_global", "direct_local"):
        if getattr(first, name) is not None:
            setattr(first, name, torch.cat([getattr(r, name) for r in runs], dim=0))
    return first


class ParticleWays:
    """How each (model, guide) pair's particles run: the first of :data:`WAYS` that works for
    it, or ``"loop"`` (one at a time), found at its first run and remembered for up to 16
    pairs, the programs themselves being the keys (not ids, which can be reused)."""

    def __init__(self, size: int = 16):
        self._known: list = []
        self._size = size

    def way_of(self, key):
        return next((way for k, way in self._known if k == key), None)

    def remember(self, key, way) -> None:
        if len(self._known) >= self._size:
            self._known.pop(0)
        self._known.append((key, way))

    def run(
        self, model, guide, args, kwargs, *, key=None, batch_ranks=None, **options
    ) -> ParticleRun | None:
        """The pair's :class:`ParticleRun`, or ``None`` where its particles must run one at a time
        (the caller loops; one warning per model the first time).

        ``key``: the pair the way is remembered for and the warning names
        (default ``(model, guide)``; a caller that wraps the programs anew for
        each call passes the user's own). ``batch_ranks``: a callable giving
        :attr:`Probe.batch_ranks`, asked only if the ``vmap`` way is tried.
        """
        key = (model, guide) if key is None else key
        way = self.way_of(key)
        if options["num_particles"] == 1:
            return log_density_terms(model, guide, args, kwargs, **options)
        if way == "loop":
            return None
        if way is not None:
            try:
                return log_density_terms(
                    model, guide, args, kwargs, way=way,
                    batch_ranks=batch_ranks() if way == "vmap" else None, **options,
                )
            except NotVectorisable:  # the arguments changed (shapes, say): find the way anew
                self._known = [(k, w) for k, w in self._known if k != key]
        reasons = []
        # a failed try has drawn from the guide: each try starts from the same random state, so the
        # first run of a pair draws what every later one (which knows its way) would
        state = _rng_state()
        for way in WAYS:
            ranks = batch_ranks() if way == "vmap" else None
            try:
                run = log_density_terms(
                    model, guide, args, kwargs, way=way, batch_ranks=ranks, **options
                )
            except NotVectorisable as err:
                reasons.append(str(err))
                _set_rng_state(state)
                continue
            self.remember(key, way)
            return run
        self.remember(key, "loop")
        warn_looped(key[0], "; ".join(reasons))
        return None


def _rng_state():
    """Pyro's random state (torch's CPU generator, Python's, NumPy's) and, where used, CUDA's."""
    used = torch.cuda.is_available() and torch.cuda.is_initialized()
    cuda = torch.cuda.get_rng_state_all() if used else None
    return pyro.util.get_rng_state(), cuda


def _set_rng_state(state) -> None:
    pyro.util.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


#: programs already reported as running their particles one at a time
_REPORTED: list = []


def warn_looped(model, err) -> None:
    """One warning per model (a wrapper with ``__wrapped__`` counts as the program it wraps):
    its particles run one at a time, and why."""
    model = inspect.unwrap(model)
    if any(m is model for m in _REPORTED):
        return
    if len(_REPORTED) >= 16:
        _REPORTED.pop(0)
    _REPORTED.append(model)
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    warnings.warn(
        f"the Pyro program's particles could not be vectorised ({reason}); ppzoo runs them one at "
        "a time, which is slower. Vectorised, the guide runs in an outer pyro.plate (as for Pyro's "
        "vectorize_particles=True) and the model either there too or under torch.func.vmap, which "
        "needs no Python control flow on the values of its latents",
        UserWarning,
        stacklevel=4,
    )


def _first_line(err) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


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
    observed = {n: s for n, s in trace.nodes.items()
                if s["type"] == "sample" and s["is_observed"] and not site_is_subsample(s) and torch.is_tensor(s["value"])}
    check_observations_finite({n: s["value"].detach().cpu().numpy() for n, s in observed.items()},
                              masks={n: s["mask"].detach().cpu().numpy() if torch.is_tensor(s.get("mask")) else None
                                     for n, s in observed.items()})
    for n, site in trace.nodes.items():
        if site["type"] == "sample" and site["is_observed"] and not site_is_subsample(site):
            check_observed_site(n, site["fn"], site["value"], [(f.name, f.dim) for f in site["cond_indep_stack"]])
    plates, observed = plates_of(trace)
    name = pick_data_plate(plates, observed, data_plate)
    if name:
        check_observed_lengths(model, args, kwargs, [o for o, frames in observed.items() if name in frames], name,
                               plates[name][0])
    return (name, *plates[name]) if name else (None, None, None)
