"""SVI fits in ArviZ: draws from the guide as ``InferenceData``, and PSIS k-hat.

The Pareto k-hat of the importance ratios ``p(x, z) / q(z)`` of draws from
the guide (Yao, Vehtari, Simpson & Gelman 2018, "Yes, but did it work?")
says whether the guide can be trusted as an approximation of the posterior:
``k-hat < 0.5`` good, ``0.5-0.7`` usable with care, ``> 0.7`` not (the
importance ratios have too heavy a tail for the guide's expectations to be
corrected, or trusted). Computed with ArviZ's ``psislw``.
"""

from __future__ import annotations

import arviz as az
import numpy as np

from ppzoo._version import __version__

__all__ = ["svi_draws_to_inference_data", "psis_khat"]


def psis_khat(log_weights) -> np.ndarray | float:
    """Pareto k-hat of ``log_weights`` ``(..., S)`` (draws last), one per leading index."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    if log_weights.ndim == 0 or log_weights.shape[-1] < 2:
        raise ValueError(f"log_weights must hold at least 2 draws along its last axis, got shape {log_weights.shape}")
    _, khat = az.psislw(log_weights)
    khat = np.asarray(khat)
    return float(khat) if khat.ndim == 0 else khat


def _latent_dims(name, value, local, data_dim):
    event = value.ndim - 1 - (1 if local else 0)
    return ([data_dim] if local else []) + [f"{name}_dim_{k}" for k in range(event)]


def svi_draws_to_inference_data(latents, log_likelihood, observed, log_weights, *, local, data_plate, attrs):
    """``InferenceData`` of ``S`` guide draws (one chain).

    Args:
        latents: ``{site: (S, ...)}``, constrained draws from the guide.
        log_likelihood: ``{observed site: (S, N)}`` per datum, given each draw.
        observed: ``{observed site: value}``.
        log_weights: ``(S,)``, ``log p(x, z_s) - log q(z_s)`` over the whole data set.
        local: names of the latents inside the data plate (their first axis after ``S`` is the datum).
        data_plate: the data plate's name (dim of the per-datum arrays), or ``None``.
        attrs: recorded in every group's attrs.
    """
    data_dim = data_plate or "datum"
    latent_dims = {n: _latent_dims(n, np.asarray(v), n in local, data_dim) for n, v in latents.items()}
    observed_dims = {}
    for name, value in observed.items():
        per_datum = bool(data_plate) and np.ndim(value) > 0
        observed_dims[name] = ([data_dim] if per_datum else []) + [
            f"{name}_dim_{k}" for k in range(np.ndim(value) - int(per_datum))
        ]

    def group(data, dims, sample_dims=("chain", "draw")):
        return az.dict_to_dataset(data, dims=dims, default_dims=list(sample_dims))

    # each group gets its own dims: an observed site's value and its per-datum log-likelihood share a name
    idata = az.InferenceData(
        posterior=group({n: np.asarray(v)[None] for n, v in latents.items()}, latent_dims),
        log_likelihood=group({n: np.asarray(v)[None] for n, v in log_likelihood.items()}, {n: [data_dim] for n in log_likelihood}),
        sample_stats=group({"log_weight": np.asarray(log_weights)[None]}, {}),
        observed_data=group({n: np.asarray(v) for n, v in observed.items()}, observed_dims, sample_dims=()),
    )
    attrs = {"inference_library": "ppzoo", "inference_library_version": __version__, **attrs}
    for group in idata.groups():
        getattr(idata, group).attrs.update(attrs)
    return idata
