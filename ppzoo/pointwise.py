"""The per-datum log-likelihood: how much of it a run stores, and computing it later.

A run's ``log_likelihood`` group holds ``C * S * N`` numbers (4 chains x 1,000 draws x 10^6
data is 16 GB as float32). ``ppzoo.sample(log_likelihood=...)`` chooses:

- ``"auto"`` (the default): store it when ``C * S * N`` is at most
  :data:`LOG_LIKELIHOOD_BUDGET` values (400 MB as float32); above that, store none and say so
  once (a ``RuntimeWarning`` naming :func:`log_likelihood`);
- ``True`` / ``"all"``: always; ``False`` / ``"none"``: never.

:func:`log_likelihood` computes it afterwards from a result's posterior, ``chunk_size`` draws
at a time, for every ``thin``-th draw (the returned result's posterior and stats are thinned
alike, so ``az.loo`` sees matching draws).
"""

from __future__ import annotations

import warnings

import numpy as np

from ppzoo.diagnostics import arviz_compat

__all__ = ["LOG_LIKELIHOOD_BUDGET", "resolve_log_likelihood", "log_likelihood"]

#: the most per-datum log-likelihood values ``log_likelihood="auto"`` stores (400 MB as float32)
LOG_LIKELIHOOD_BUDGET = 10**8

CHOICES = (True, False, "all", "none", "auto")


def check_log_likelihood(value) -> None:
    """``TypeError`` unless ``value`` is one of :data:`CHOICES` (a NumPy bool too)."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, str) and value in CHOICES):
        return
    raise TypeError(f"log_likelihood must be True, False, 'all', 'none' or 'auto', got {value!r}")


def resolve_log_likelihood(value, num_chains: int, num_samples: int, num_data: int, stacklevel: int = 3) -> bool:
    """Whether to store the per-datum log-likelihood (see the module docstring); ``"auto"`` above
    the budget warns once."""
    check_log_likelihood(value)
    if isinstance(value, str) and value != "auto":
        return value == "all"
    if not isinstance(value, str):
        return bool(value)
    size = num_chains * num_samples * num_data
    if size <= LOG_LIKELIHOOD_BUDGET:
        return True
    warnings.warn(
        f"the per-datum log-likelihood would hold {num_chains} x {num_samples} x {num_data:,} = {size:,} values "
        f"({4 * size / 2**20:,.0f} MiB as float32), above log_likelihood='auto''s budget of "
        f"{LOG_LIKELIHOOD_BUDGET:,}: it is not stored (nor sample_stats.lp). Compute it when you need it with "
        "ppzoo.log_likelihood(idata, model, *args, thin=..., **kwargs), or pass log_likelihood=True",
        RuntimeWarning, stacklevel=stacklevel,
    )
    return False


def log_likelihood(idata, model, *args, thin: int = 1, chunk_size: int = 256, device=None, data_plate=None,
                   batch_args=None, **kwargs):
    """The per-datum log-likelihood of ``model(*args, **kwargs)`` at the draws of ``idata``'s
    posterior: a new ArviZ result with ``posterior``, ``sample_stats`` (with ``lp``, ``-U``),
    ``log_likelihood`` and ``observed_data``, every ``thin``-th draw, computed ``chunk_size``
    draws at a time (memory ``chunk_size * N`` per chunk, plus the result's ``C * S / thin * N``).

    The model and data must be those the run sampled (the backend and data plate are read from the
    result's attrs where it has them).
    """
    from ppzoo.backends import make_backend
    from ppzoo.checks import check_count
    from ppzoo.diagnostics.inference_data import pointwise_values, split_fixed

    check_count("thin", thin, 1)
    check_count("chunk_size", chunk_size, 1)
    if not arviz_compat.is_result(idata) or not arviz_compat.has_group(idata, "posterior"):
        raise TypeError(f"idata must be an ArviZ result with a posterior group, got {type(idata).__name__}")
    posterior = arviz_compat.get_group(idata, "posterior")
    backend = make_backend(model, args, kwargs, backend=posterior.attrs.get("backend"),
                           data_plate=data_plate or posterior.attrs.get("data_plate"), device=device,
                           batch_args=batch_args)
    names = [site.name for site in backend.layout.latent]
    missing = [name for name in names if name not in posterior.data_vars]
    if missing:
        raise ValueError(f"idata's posterior has no {missing}: it is not a posterior of this model "
                         f"(its latent sites are {names})")
    kept = posterior.isel(draw=slice(None, None, thin))
    num_chains, num_draws = kept.sizes["chain"], kept.sizes["draw"]
    values = {name: np.asarray(kept[name].values).reshape((num_chains * num_draws,) + kept[name].shape[2:])
              for name in names}
    flat = np.concatenate([
        backend.to_numpy(backend.unconstrain({k: v[i:i + chunk_size] for k, v in values.items()}))
        for i in range(0, num_chains * num_draws, chunk_size)
    ])
    lp, loglik = pointwise_values(backend, flat, chunk_size)
    shape = (num_chains, num_draws)
    observed, constant = split_fixed(backend, backend.observed_data())
    groups = {
        "posterior": {k: np.asarray(kept[k].values) for k in kept.data_vars},
        "log_likelihood": {k: v.reshape(shape + v.shape[1:]) for k, v in loglik.items() if k not in constant},
        "observed_data": observed,
    }
    if constant:
        groups["constant_data"] = constant
    stats = {"lp": lp.reshape(shape)}
    if arviz_compat.has_group(idata, "sample_stats"):
        old = arviz_compat.get_group(idata, "sample_stats").isel(draw=slice(None, None, thin))
        stats = {**{k: np.asarray(old[k].values) for k in old.data_vars if k != "lp"}, **stats}
    groups["sample_stats"] = stats
    dims = {s.name: list(s.dims) for s in backend.layout.all_observed}
    dims.update({k: list(kept[k].dims[2:]) for k in kept.data_vars})
    coords = {"chain": kept.chain.values, "draw": kept.draw.values}
    for k in kept.data_vars:
        coords.update({d: kept[k][d].values for d in kept[k].dims[2:]})
    attrs = dict(posterior.attrs)
    attrs["log_likelihood_thin"] = int(thin)
    return arviz_compat.from_dict(groups, dims=dims, coords=coords, attrs=attrs)
