"""SVI fits in ArviZ: draws from the guide as ``InferenceData``, and PSIS k-hat.

The Pareto k-hat of the importance ratios ``p(x, z) / q(z)`` of draws from
the guide (Yao, Vehtari, Simpson & Gelman 2018, "Yes, but did it work?")
says whether the guide can be trusted as an approximation of the posterior:
``k-hat < 0.5`` good, ``0.5-0.7`` usable with care, ``> 0.7`` not (the
importance ratios have too heavy a tail for the guide's expectations to be
corrected, or trusted). Computed with ArviZ's ``psislw``.
"""

from __future__ import annotations

import numpy as np

from ppzoo._version import __version__
from ppzoo.diagnostics import arviz_compat

__all__ = ["svi_draws_to_inference_data", "psis_khat", "PSIS_MIN_DRAWS"]

#: the fewest draws PSIS can fit a tail to under both ArviZ lines (below, 0.23 gives an infinite
#: k-hat from 24 draws down, 1.x a NaN from 29 down)
PSIS_MIN_DRAWS = 30


def psis_khat(log_weights) -> np.ndarray | float:
    """Pareto k-hat of ``log_weights`` ``(..., S)`` (draws last), one per leading index."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    if log_weights.ndim == 0 or log_weights.shape[-1] < PSIS_MIN_DRAWS:
        raise ValueError(
            f"PSIS k-hat needs at least {PSIS_MIN_DRAWS} draws (the Pareto fit of the largest draws needs enough of "
            f"them), got shape {np.shape(log_weights)} (draws last)"
        )
    _, khat = arviz_compat.psislw(log_weights)
    return float(khat) if khat.ndim == 0 else khat


def _latent_dims(name, value, local, data_dim):
    event = value.ndim - 1 - (1 if local else 0)
    return ([data_dim] if local else []) + [f"{name}_dim_{k}" for k in range(event)]


def svi_draws_to_inference_data(latents, log_likelihood, observed, log_weights, *, local, data_plate, attrs):
    """The ArviZ result (``DataTree`` / ``InferenceData``) of ``S`` guide draws (one chain).

    Args:
        latents: ``{site: (S, ...)}``, constrained draws from the guide.
        log_likelihood: ``{observed site: (S, N)}`` per datum, given each draw.
        observed: ``{observed site: value}``.
        log_weights: ``(S,)``, ``log p(x, z_s) - log q(z_s)`` over the whole data set (``None``
            for a guide without a density).
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

    # an observed site's value and its per-datum log-likelihood share a name: the
    # log-likelihood takes the leading (datum) dim of the observed value's dims
    dims = {**latent_dims, **observed_dims}
    for name in log_likelihood:
        dims.setdefault(name, [data_dim])
    groups = {
        "posterior": {n: np.asarray(v)[None] for n, v in latents.items()},
        "log_likelihood": {n: np.asarray(v)[None] for n, v in log_likelihood.items()},
        "observed_data": {n: np.asarray(v) for n, v in observed.items()},
    }
    if log_weights is not None:
        groups["sample_stats"] = {"log_weight": np.asarray(log_weights)[None]}
    attrs = {"inference_library": "ppzoo", "inference_library_version": __version__, **attrs}
    return arviz_compat.from_dict(groups, dims=dims, attrs=attrs)
