"""SVI fits in ArviZ: guide draws as ``InferenceData``, PSIS k-hat, and the guide reweighted.

The Pareto k-hat of the importance ratios ``p(x, z) / q(z)`` of draws from
the guide (Yao, Vehtari, Simpson & Gelman 2018, "Yes, but did it work?")
says whether importance sampling from the guide can be trusted:
``k-hat < 0.5`` good, ``0.5-0.7`` usable with care, ``> 0.7`` not (the
ratios have too heavy a right tail for the guide's expectations to be
corrected). Computed with ArviZ's ``psislw``.

k-hat is the shape of that tail, not a distance between the guide and the
posterior. A guide wider than the posterior has bounded ratios (``p / q``
has a maximum), a tail with no room above it, and a negative k-hat (-1.3 to
-1.8 over 20 sets of 1,000 draws of a Gaussian guide 8.4 times too wide in
one of five coordinates): importance sampling from it works, but the guide
itself is far from the posterior. How far shows in the importance-sampling
effective sample size, ``ESS = 1 / sum_s w_s^2`` of the normalised
(smoothed) weights: 15-19% of the draws in that example, all of them for a
guide equal to the posterior.

:func:`reweight_indices` turns guide draws into posterior draws by
sampling-importance-resampling (SIR, Rubin 1988) with the PSIS-smoothed
weights: what an importance-weighted objective's guide implies (the IWAE
posterior is the guide reweighted, Cremer, Morris & Duvenaud 2017).
"""

from __future__ import annotations

import numpy as np

from ppzoo._version import __version__
from ppzoo.diagnostics import arviz_compat

__all__ = [
    "svi_draws_to_inference_data", "psis_khat", "psis_weights", "reweight_indices", "khat_summary",
    "describe_khat", "ImportanceSamplingWarning", "PSIS_MIN_DRAWS", "KHAT_THRESHOLD",
]

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


#: above this k-hat, importance sampling from the guide is not to be trusted (Vehtari et al. 2024)
KHAT_THRESHOLD = 0.7


class ImportanceSamplingWarning(UserWarning):
    """The Pareto k-hat of a guide's importance ratios exceeds :data:`KHAT_THRESHOLD`: draws
    reweighted from it (or its ``log p(x)`` estimate) may be far from what they estimate."""


def psis_weights(log_ratios) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PSIS-smoothed, normalised log weights of ``log_ratios`` ``(..., M)`` (draws last).

    Returns ``(log_weights (..., M), khat (...), ess (...))``: ``sum_m exp(log_weights) = 1``
    along the last axis, k-hat of each row, and its importance-sampling effective sample
    size ``1 / sum_m w_m^2`` (between 1 and ``M``).
    """
    log_ratios = np.asarray(log_ratios, dtype=np.float64)
    if log_ratios.ndim == 0 or log_ratios.shape[-1] < PSIS_MIN_DRAWS:
        raise ValueError(
            f"PSIS needs at least {PSIS_MIN_DRAWS} draws, got shape {log_ratios.shape} (draws last)"
        )
    smoothed, khat = arviz_compat.psislw(log_ratios)
    smoothed = np.asarray(smoothed, dtype=np.float64).reshape(log_ratios.shape)
    # both ArviZ lines normalise; normalised here again so the weights sum to 1 whatever they did
    smoothed = smoothed - np.logaddexp.reduce(smoothed, axis=-1, keepdims=True)
    ess = 1.0 / np.exp(np.logaddexp.reduce(2.0 * smoothed, axis=-1))
    return smoothed, np.asarray(khat, dtype=np.float64).reshape(log_ratios.shape[:-1]), ess


def reweight_indices(log_weights, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Systematic resampling: ``(..., num_samples)`` indices into the last axis of ``log_weights``
    ``(..., M)`` (normalised), index ``m`` drawn ``num_samples * w_m`` times up to rounding.

    One uniform offset per row, ``u_s = (U + s) / S``, and ``m`` where the cumulative weights
    first reach ``u_s`` (Kitagawa 1996): lower variance than drawing ``S`` times with
    replacement. The indices of each row are then shuffled, so that repeated draws are not
    neighbours (ArviZ's ESS reads the draws in order).
    """
    log_weights = np.asarray(log_weights, dtype=np.float64)
    rows = log_weights.reshape(-1, log_weights.shape[-1])
    out = np.empty((rows.shape[0], num_samples), dtype=np.int64)
    for i, row in enumerate(rows):
        cumulative = np.cumsum(np.exp(row))
        positions = (rng.uniform() + np.arange(num_samples)) / num_samples * cumulative[-1]
        picked = np.minimum(np.searchsorted(cumulative, positions, side="right"), len(row) - 1)
        out[i] = rng.permutation(picked)
    return out.reshape(log_weights.shape[:-1] + (num_samples,))


#: the quantiles of per-datum k-hat that :func:`khat_summary` reports
KHAT_QUANTILES = (0.5, 0.9, 0.99)


def khat_summary(khat, ess) -> dict:
    """The distribution of k-hat and ESS over groups (one: the joint weights; ``N``: per datum).

    ``{"groups": G, "khat_max", "khat_q50", "khat_q90", "khat_q99", "share_above_0.7",
    "ess_min", "ess_q50"}``, plain floats (JSON for netCDF attrs).
    """
    khat = np.atleast_1d(np.asarray(khat, dtype=np.float64))
    ess = np.atleast_1d(np.asarray(ess, dtype=np.float64))
    out = {"groups": int(khat.size), "khat_max": float(np.max(khat))}
    out.update({f"khat_q{round(100 * q)}": float(np.quantile(khat, q)) for q in KHAT_QUANTILES})
    out[f"share_above_{KHAT_THRESHOLD}"] = float(np.mean(khat > KHAT_THRESHOLD))
    out.update(ess_min=float(np.min(ess)), ess_q50=float(np.median(ess)))
    return out


def describe_khat(summary: dict, pool_size: int | None = None) -> str:
    """One line of :func:`khat_summary`'s numbers, for warnings and ``ppzoo summary``."""
    pool = f" of {pool_size:,} draws" if pool_size else ""
    if summary["groups"] == 1:
        return (f"PSIS k-hat {summary['khat_max']:.3g}, "
                f"importance-sampling ESS {summary['ess_min']:.0f}{pool}")
    share = summary[f"share_above_{KHAT_THRESHOLD}"]
    return (
        f"PSIS k-hat per datum over {summary['groups']:,} data: median {summary['khat_q50']:.3g}, "
        f"90% {summary['khat_q90']:.3g}, max {summary['khat_max']:.3g}, "
        f"{100 * share:.1f}% above {KHAT_THRESHOLD}; importance-sampling ESS median "
        f"{summary['ess_q50']:.0f}, min {summary['ess_min']:.0f}{pool}"
    )


def _latent_dims(name, value, local, data_dim):
    event = value.ndim - 1 - (1 if local else 0)
    return ([data_dim] if local else []) + [f"{name}_dim_{k}" for k in range(event)]


def svi_draws_to_inference_data(latents, log_likelihood, observed, log_weights, *, local, data_plate, attrs, fixed=()):
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
        fixed: observed sites that are latents a conditioning handler fixed
            (:func:`ppzoo.backends.sites.fixed_observed`): ``constant_data``, no log-likelihood.
    """
    fixed = set(fixed)
    constant = {n: np.asarray(v) for n, v in observed.items() if n in fixed}
    observed = {n: v for n, v in observed.items() if n not in fixed}
    log_likelihood = {n: v for n, v in log_likelihood.items() if n not in fixed}
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
    dims.update({n: [f"{n}_dim_{k}" for k in range(np.ndim(v))] for n, v in constant.items()})
    for name in log_likelihood:
        dims.setdefault(name, [data_dim])
    groups = {
        "posterior": {n: np.asarray(v)[None] for n, v in latents.items()},
        "log_likelihood": {n: np.asarray(v)[None] for n, v in log_likelihood.items()},
        "observed_data": {n: np.asarray(v) for n, v in observed.items()},
    }
    if constant:
        groups["constant_data"] = constant
    if log_weights is not None:
        groups["sample_stats"] = {"log_weight": np.asarray(log_weights)[None]}
    attrs = {"inference_library": "ppzoo", "inference_library_version": __version__, **attrs}
    return arviz_compat.from_dict(groups, dims=dims, attrs=attrs)
