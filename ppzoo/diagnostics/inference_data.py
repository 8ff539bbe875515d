"""Conversion of sampler runs to the ArviZ result of the installed line.

``xarray.DataTree`` under ArviZ 1.x, ``arviz.InferenceData`` under 0.23
(:mod:`ppzoo.diagnostics.arviz_compat`), with the same groups under both:
``posterior`` (constrained values, dims ``chain``, ``draw`` and
``<site>_dim_k``), ``sample_stats`` (ArviZ's schema names: ``step_size``,
``diverging``, ``lp``; and ppzoo's cumulative per-datum ``grad_evals`` and
``full_gradient``), ``log_likelihood`` (per observed site and datum, dim
named after the data plate, so ``az.loo`` works), ``observed_data`` and, for
latents a conditioning handler fixed, ``constant_data``.
"""

from __future__ import annotations

import json

import numpy as np

from ppzoo._version import __version__
from ppzoo.diagnostics import arviz_compat

__all__ = ["sampler_run_to_inference_data", "diverged_chains"]

#: draws per call when the per-datum log-likelihood is evaluated
_LOGLIK_CHUNK = 256


def _per_draw(fn, flat, chunk):
    parts = [fn(flat[i : i + chunk]) for i in range(0, flat.shape[0], chunk)]
    return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}


def _constrained(backend, positions):
    """The constrained values and deterministic sites of ``positions`` ``(C, S, D)``, each
    ``(C, S, ...)``."""
    num_chains, num_draws, dim = positions.shape
    flat = positions.reshape(num_chains * num_draws, dim)
    out = {
        k: v.reshape((num_chains, num_draws) + v.shape[1:])
        for k, v in _per_draw(backend.constrain, flat, 4 * _LOGLIK_CHUNK).items()
    }
    if backend.layout.deterministic:
        out.update({
            k: v.reshape((num_chains, num_draws) + v.shape[1:])
            for k, v in _per_draw(backend.deterministic, flat, _LOGLIK_CHUNK).items()
        })
    return out


def pointwise_values(backend, flat, chunk):
    parts = [backend.pointwise(flat[i : i + chunk]) for i in range(0, flat.shape[0], chunk)]
    lp = np.concatenate([p[0] for p in parts])
    return lp, {k: np.concatenate([p[1][k] for p in parts], axis=0) for k in parts[0][1]}


def split_fixed(backend, observed: dict) -> tuple[dict, dict]:
    """``(observed data, constant data)``: the latents a conditioning handler gave values
    (``backend.fixed``, :func:`ppzoo.backends.sites.fixed_sites`) are fixed values of the model, not
    data: they go to ``constant_data``, and have no ``log_likelihood`` (so ``az.loo`` sees the data alone)."""
    fixed = set(getattr(backend, "fixed", ()))
    return ({k: v for k, v in observed.items() if k not in fixed},
            {k: np.asarray(v) for k, v in observed.items() if k in fixed})


def sampler_run_to_inference_data(run, backend, *, log_likelihood: bool = True):
    """The ArviZ result (``DataTree`` / ``InferenceData``) of a
    :class:`~ppzoo.inference.sgmcmc.driver.SamplerRun` on ``backend``.

    Args:
        run: draws ``(C, S, D)`` in unconstrained space and their stats.
        backend: the backend that made them (for the transforms and likelihood).
        log_likelihood: compute the ``(C, S, N)`` per-datum log-likelihood
            (memory ``C * S * N`` floats; turn off for very large N) and, from
            the same pass over the data, ``sample_stats.lp``: ``-U(theta)``, the
            full-data log density in the unconstrained space (``log|J|``
            included, as ``az.from_numpyro``'s ``lp``).
    """
    num_chains, num_draws, dim = run.positions.shape
    flat = run.positions.reshape(num_chains * num_draws, dim)
    layout = backend.layout
    warmup = None
    if num_draws:
        posterior = _constrained(backend, run.positions)
    else:  # a run stopped before its first draw: where the chains were, and an empty posterior
        warmup = _constrained(backend, run.last_position[:, None, :])
        posterior = {k: v[:, :0] for k, v in warmup.items()}
        log_likelihood = False
    observed, constant = split_fixed(backend, backend.observed_data())
    # observed values and log-likelihood terms named after their plates (value_dims)
    dims = {s.name: list(s.dims) for s in layout.all_observed}
    # a latent inside a plate is named after it (as az.from_numpyro names it), the others <site>_dim_k
    dims.update({site.name: list(site.dims) for site in layout.latent + layout.deterministic if site.dims})
    groups = {"posterior": posterior, "observed_data": observed}
    if constant:
        groups["constant_data"] = constant
    if warmup is not None:
        groups["warmup_posterior"] = warmup
    stats = dict(run.stats)
    stats["diverging"] = stats["diverging"].astype(bool)
    if log_likelihood:
        lp, loglik = pointwise_values(backend, flat, _LOGLIK_CHUNK)
        groups["log_likelihood"] = {k: v.reshape((num_chains, num_draws) + v.shape[1:]) for k, v in loglik.items()
                                    if k not in constant}
        stats["lp"] = lp.reshape(num_chains, num_draws)
        # a log density that is not finite at a finite position diverged as well
        stats["diverging"] = stats["diverging"] | ~np.isfinite(stats["lp"])
    groups["sample_stats"] = stats
    diverged = diverged_chains(stats["diverging"], run.num_warmup, run.thinning)
    healthy = [c for c in range(num_chains) if c not in {d["chain"] for d in diverged}]
    set_aside = None
    if diverged and healthy:
        # the healthy chains are the result (their summaries and az.loo stay usable); the diverged
        # chains' draws, not finite from their divergence on, are kept in a group of their own
        set_aside = {"posterior": {k: v[[d["chain"] for d in diverged]] for k, v in posterior.items()}}
        groups = {
            name: (values if name in ("observed_data", "constant_data") else {k: v[healthy] for k, v in values.items()})
            for name, values in groups.items()
        }
    kernel = run.kernel
    attrs = {
        "inference_library": "ppzoo",
        "inference_library_version": __version__,
        "backend": backend.name,
        "method": kernel.name,
        "num_data": layout.num_data,
        "batch_size": int(kernel.batch_size),
        "num_warmup": run.num_warmup,
        "thinning": run.thinning,
        "interrupted": int(run.interrupted),
        "num_draws": int(num_draws),
        "temperature": float(kernel.temperature),
    }
    if layout.data_plate is not None:
        attrs["data_plate"] = layout.data_plate
    if getattr(kernel, "inner_loop", None) is not None:
        attrs["inner_loop"] = int(kernel.inner_loop)
    # adapted: 1 if warmup chose the step size (and preconditioner); inverse_mass: diag M^-1, (D,)
    attrs.update(run.attrs)
    if run.stopped_in:
        attrs["stopped_in"] = run.stopped_in
    if diverged:
        attrs["diverged_chains"] = json.dumps(diverged)
    # a log-likelihood takes the leading dims of its observed value: the data plate's, or its batch dims
    if set_aside is None:
        return arviz_compat.from_dict(groups, dims=dims, attrs=attrs)
    result = arviz_compat.from_dict(groups, dims=dims, coords={"chain": healthy}, attrs=attrs)
    aside = arviz_compat.from_dict(set_aside, dims=dims, coords={"chain": [d["chain"] for d in diverged]})
    arviz_compat.add_group(result, "diverged_posterior", arviz_compat.get_group(aside, "posterior"))
    return result


def diverged_chains(diverging, num_warmup: int, thinning: int) -> list[dict]:
    """``[{"chain", "draw", "step"}]``: each chain with a diverging draw ``(C, S)``, its first one, and
    the sampler step that made it (warmup steps counted)."""
    out = []
    for chain in range(diverging.shape[0]):
        flagged = np.flatnonzero(diverging[chain])
        if flagged.size:
            draw = int(flagged[0])
            out.append({"chain": chain, "draw": draw, "step": int(num_warmup + (draw + 1) * thinning)})
    return out
