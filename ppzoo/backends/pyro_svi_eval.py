"""Evaluation of a fitted Pyro guide: draws scored under the model, without gradients.

:func:`evaluate` gives the per-particle terms with the draws, the per-datum
log-likelihood and the observed values (``Fit.to_arviz``, ``psis_khat`` and
``log_marginal_likelihood``); :func:`local_normal_sites` the guide's
per-datum Normal latents (``Fit.collapse``).
"""

from __future__ import annotations

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from ppzoo.backends.pyro_svi import (
    ParticleWays,
    data_plate_of,
    latent_sites,
    probe,
    with_params,
)
from ppzoo.backends.svi_common import normal_parameters

__all__ = ["evaluate", "local_normal_sites"]


#: how each (model, guide) pair's particles run; the user's programs are the keys (each call wraps
#: them anew with the fitted parameters)
_WAYS = ParticleWays()


def evaluate(
    model, guide, args, kwargs, *, params, num_particles, data_plate=None, max_plate_nesting=None, full_data=True, terms_only=False
):
    """Draw ``num_particles`` times from the guide (no gradient) and score the draws under the model.

    Returns ``(terms, latents, log_likelihood, observed, local)``: the
    :class:`LogDensityTerms` (torch), ``{latent: (K, ...)}``,
    ``{observed site: (K, N)}`` per datum (``(K, 1)`` without a data plate),
    ``{observed site: value}``, the names of the latents inside the data
    plate; the data plate is seen whole when ``full_data``. ``terms_only``
    returns ``None`` for all but ``terms``. The particles are vectorised as in
    the fit (``pyro_svi.ParticleWays``), else drawn one at a time.
    """
    programs = (model, guide)
    # torch modules registered with pyro.module keep their own (trained in place) weights
    params = {k: v for k, v in (params or {}).items() if "$$$" not in k}
    model, guide = with_params(model, params), with_params(guide, params)
    probed = []

    def probe_once():
        if not probed:
            probed.append(probe(model, guide, args, kwargs))
        return probed[0]

    if max_plate_nesting is None:
        max_plate_nesting = probe_once().max_plate_nesting
    plate, size, sub = data_plate_of(model, guide, args, kwargs, data_plate)
    conditioned = {plate: torch.arange(size)} if (full_data and plate and sub != size) else None
    with torch.no_grad(), pyro.validation_enabled(False):
        run = _WAYS.run(
            model, guide, args, kwargs, key=programs, batch_ranks=lambda: probe_once().batch_ranks,
            num_particles=num_particles, max_plate_nesting=max_plate_nesting, data_plate=plate,
            conditioned=conditioned, per_site=not terms_only,
        )
        if run is None:
            runs = [
                evaluate(model, guide, args, kwargs, params=None, num_particles=1, data_plate=data_plate,
                         max_plate_nesting=max_plate_nesting, full_data=full_data, terms_only=terms_only)
                for _ in range(num_particles)
            ]
            return _stacked(runs, terms_only)
    if terms_only:
        return run.terms, None, None, None, None
    guide_trace = run.guide_trace
    loglik = {n: (p[1] if p[1] is not None else p[0][:, None]) for n, p in run.loglik.items()}
    latents = {n: _particles_first(guide_trace.nodes[n], num_particles, max_plate_nesting) for n in latent_sites(guide_trace)}
    local = {n for n in latents if plate in {f.name for f in guide_trace.nodes[n]["cond_indep_stack"]}}
    return run.terms, latents, loglik, run.observed, local


def _stacked(runs, terms_only):
    """One-particle evaluations ``[(terms, latents, loglik, observed, local)]`` as one of ``K`` particles."""
    terms = runs[0][0]
    for name in ("obs_global", "obs_local", "prior_global", "prior_local", "guide_global", "guide_local"):
        if getattr(terms, name) is not None:
            setattr(terms, name, torch.cat([r[0].__dict__[name] for r in runs], dim=0))
    if terms_only:
        return terms, None, None, None, None
    stack = lambda i: {n: torch.cat([r[i][n] for r in runs], dim=0) for n in runs[0][i]}  # noqa: E731
    return terms, stack(1), stack(2), runs[0][3], runs[0][4]


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
    model, guide = with_params(model, params), with_params(guide, params)
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


def observed_means(model, args, kwargs, *, params, latents):
    """``{site: mean}`` (NumPy) of the model's observed sites with its latents held at ``latents``
    (``{site: tensor}``) and its parameters at ``params`` (modules: as trained, in place)."""
    params = {k: v for k, v in (params or {}).items() if "$$$" not in k}
    model = with_params(model, params)
    with torch.no_grad(), pyro.validation_enabled(False), poutine.block():
        trace = poutine.trace(poutine.condition(model, data=latents)).get_trace(*args, **kwargs)
    return {name: site["fn"].mean.detach().cpu().numpy() for name, site in trace.nodes.items()
            if site["type"] == "sample" and site["is_observed"] and name not in latents}
