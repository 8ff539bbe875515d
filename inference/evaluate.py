"""Evaluation of fitted guides: importance-sampled ``log p(x)``.

``log p(x) ~= log (1/K) sum_k p(x, z_k) / q(z_k | x)``, ``z_k ~ q``: the
estimate Burda et al. (2016) use for test log-likelihoods (``K = 5000``). It is
the IWAE bound with a large ``K``, so it is biased low by at most
``KL``-like terms that vanish as ``K`` grows. Particles are drawn
``chunk_size`` at a time and combined with a running ``logaddexp``, so
memory is that of ``chunk_size`` particles over the data whatever ``K`` is.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ppzoo.backends import check_guide_ppl, resolve_backend
from ppzoo.backends.svi_adapter import check_param_names, svi_adapter
from ppzoo.checks import check_count, check_data_not_empty, check_model_keywords, check_seed

from .svi.estimators import group_log_weights

__all__ = [
    "LogMarginalLikelihood", "log_marginal_likelihood", "estimate_log_marginal_likelihood", "evaluate_in_chunks",
    "point_mass_sites", "check_has_density",
]


@dataclass
class LogMarginalLikelihood:
    """``total``: the estimate of ``log p(x)`` for the whole data set; ``per_datum``:
    ``log p(x_i)`` of each datum ``(N,)`` when every latent is per datum (else
    ``None``); ``num_samples``: ``K``; ``standard_error``: the delta-method
    Monte Carlo standard error of ``total``,
    ``sqrt(sum_groups (E[w^2] / E[w]^2 - 1) / K)`` with the moments of the
    weights estimated from the same draws (it understates the error when
    the weights are heavy-tailed: check the guide's PSIS k-hat)."""

    total: float
    per_datum: np.ndarray | None
    num_samples: int
    standard_error: float = float("nan")

    def __float__(self):
        return self.total


def point_mass_sites(evaluate, seed: int = 0) -> list[str]:
    """The guide's latent sites that are point masses: two draws of them are equal (a continuous
    guide's never are; discrete ones are refused when fitting). ``AutoDelta``'s sites, and
    ``AutoLaplaceApproximation``'s as fitted (its Laplace posterior is a separate object), are."""
    _, latents, *_ = evaluate(2, seed)
    return sorted(n for n, v in latents.items() if np.array_equal(np.asarray(v[0]), np.asarray(v[1])))


def check_has_density(evaluate, what: str) -> None:
    """Raise ``ValueError`` naming the point-mass sites (:func:`point_mass_sites`) of a guide whose
    density ``what`` needs."""
    points = point_mass_sites(evaluate)
    if points:
        raise ValueError(
            f"{what} needs a guide with a density, but its site(s) {points} are point masses (a Delta, as "
            "AutoDelta's are): importance weights p(x, z) / q(z) are undefined for them. Fit a guide with a "
            "density (AutoNormal, AutoMultivariateNormal, a normalising flow) to estimate log p(x) or PSIS k-hat"
        )


def evaluate_in_chunks(evaluate, num_samples, chunk_size, seed, **options):
    """Yield ``evaluate(k, seed + i, **options)`` for chunks ``k`` summing to ``num_samples``."""
    for i, start in enumerate(range(0, num_samples, chunk_size)):
        yield evaluate(min(chunk_size, num_samples - start), seed + i, **options)


def log_marginal_likelihood(
    model, guide, params=None, *args, num_samples=5000, chunk_size=100, seed=0, backend=None, data_plate=None,
    device=None, **kwargs,
) -> LogMarginalLikelihood:
    """Importance-sampling estimate of ``log p(x)`` with ``num_samples`` draws from ``guide``.

    Args:
        params: the guide's (and model's) parameters by name, constrained, e.g.
            ``Fit.params``; ``None`` uses Pyro's parameter store, or the init
            values of NumPyro's ``param`` statements.
        num_samples: ``K`` (5000 in the IWAE paper's protocol).
        chunk_size: particles per pass; memory is ``O(chunk_size * N)``.
        seed: the random stream of the draws.

    The whole data set is used (a subsampled data plate sees every index).
    """
    check_count("num_samples", num_samples)
    check_count("chunk_size", chunk_size)
    check_seed(seed)
    if not callable(guide):
        raise TypeError(f"guide must be a guide program (an autoguide, or a function of the model's arguments), got {guide!r}")
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(
            f"params must be a dict of parameter values by name (a fit's params) or None, got {type(params).__name__}: "
            "the data come after it, log_marginal_likelihood(model, guide, params, *data)"
        )
    for name, value in (params or {}).items():
        # text where numbers belong (a parameter may also be a pytree, an Equinox module's weights)
        if isinstance(value, (str, bytes)) or getattr(getattr(value, "dtype", None), "kind", None) in ("U", "S"):
            raise TypeError(f"params[{name!r}] must be numbers (an array or a float), got {value!r}")
    args, kwargs = tuple(args), dict(kwargs)
    check_model_keywords(model, kwargs, log_marginal_likelihood)
    check_data_not_empty(model, args, kwargs)
    backend = resolve_backend(model, args, kwargs, backend,
                              proper_priors="the marginal likelihood p(x) is not defined under it")
    check_guide_ppl(guide, backend)
    adapter = svi_adapter(backend, device)
    adapter.check_observations(model, args, kwargs)
    if params is not None:
        check_param_names(params, adapter.param_names(model, guide, args, kwargs))
    evaluate = adapter.evaluator(model, guide, args, kwargs, params=params, data_plate=data_plate)
    return estimate_log_marginal_likelihood(evaluate, num_samples=num_samples, chunk_size=chunk_size, seed=seed)


def estimate_log_marginal_likelihood(evaluate, *, num_samples: int, chunk_size: int, seed: int) -> LogMarginalLikelihood:
    """:func:`log_marginal_likelihood` from an evaluator ``evaluate(num_particles, seed, terms_only)``
    (an SVI adapter's, :mod:`ppzoo.backends.svi_adapter`)."""
    check_count("num_samples", num_samples)
    check_count("chunk_size", chunk_size)
    check_seed(seed)
    check_has_density(evaluate, "log_marginal_likelihood")
    acc = acc2 = const = None
    scale = 1.0
    per_datum_mode = False
    for terms, *_ in evaluate_in_chunks(evaluate, num_samples, chunk_size, seed, terms_only=True):
        local = None if terms.model_local is None else terms.model_local - terms.guide_local
        groups, c, scale = group_log_weights(terms, terms.model_global - terms.guide_global, local)
        per_datum_mode = local is not None and not terms.joint
        chunk, chunk2 = np.logaddexp.reduce(groups, axis=0), np.logaddexp.reduce(2 * groups, axis=0)
        acc = chunk if acc is None else np.logaddexp(acc, chunk)
        acc2 = chunk2 if acc2 is None else np.logaddexp(acc2, chunk2)
        const = c.sum() if const is None else const + c.sum()
    per_group = acc - math.log(num_samples)
    total = float(const / num_samples + scale * per_group.sum())
    # E[w^2] / E[w]^2 - 1 per group, from the running sums of w and w^2 (in logs)
    relative_var = np.expm1(np.maximum(acc2 - math.log(num_samples) - 2 * per_group, 0.0))
    se = float(scale * np.sqrt(np.sum(relative_var / num_samples)))
    if num_samples == 1:  # one weight says nothing about its own variance
        se = float("nan")
        warnings.warn(
            "log_marginal_likelihood with num_samples=1 has no standard error (NaN): the weights' variance "
            "needs at least 2 draws", RuntimeWarning, stacklevel=3,
        )
    return LogMarginalLikelihood(total, per_group * scale if per_datum_mode else None, int(num_samples), se)
