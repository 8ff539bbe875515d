"""Draws of a fitted guide: as the guide gives them, or reweighted into the posterior it implies.

An importance-weighted objective (IWAE) fits the guide ``q`` as a proposal:
the posterior it implies is ``q`` reweighted by ``w = p(x, z) / q(z)``
(Cremer, Morris & Duvenaud 2017), and the wider the guide, the better the
bound can be. :func:`reweighted_draws` draws from that posterior by
sampling-importance-resampling (SIR, Rubin 1988): ``M`` guide draws (the
pool), their PSIS-smoothed weights (:func:`ppzoo.diagnostics.svi.psis_weights`),
and ``S`` of them resampled in proportion to the weights.

* Joint: when some latent is shared by all data, the weights of whole draws
  ``z = (z_global, z_1, ..., z_N)`` are smoothed and resampled together.
* Per datum: when every latent is in the data plate (an amortised VAE's
  ``z_i ~ q(z_i | x_i)``), the posterior factorises, ``p(z | x) = prod_i p(z_i | x_i)``,
  and so do the weights, ``w_i = p(x_i, z_i) / q(z_i | x_i)``: each datum's
  latent is resampled from its own pool with its own weights (and k-hat).
  A joint weight over ``N`` data would multiply ``N`` such ratios and
  degenerate as ``N`` grows.

The resampled draws' Monte Carlo variance is about ``var_p(f) (1/S + 1/ESS)``
for a pool whose importance-sampling ESS is ``ESS``: the default pool,
:func:`default_pool_size` (``10 S``, at least 1,000), keeps that within a
factor ``sqrt(2)`` of ``S`` exact draws for a guide whose ESS is 10% of its
draws or more, and gives PSIS's tail fit (``3 sqrt(M)`` draws) at least 95
draws. The pool is drawn twice, ``chunk_size`` draws at a time with the same
seeds (chunk ``i`` with ``seed + i``): once for the weights, once to collect
the draws picked, so that memory holds ``M`` weights per datum but only
``S`` draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppzoo.diagnostics.svi import psis_weights, reweight_indices
from ppzoo.inference.evaluate import evaluate_in_chunks

__all__ = [
    "GuideDraws",
    "Reweighting",
    "guide_draws",
    "reweighted_draws",
    "default_pool_size",
    "POOL_FACTOR",
    "MIN_POOL",
]

#: the default pool holds this many guide draws per reweighted draw ...
POOL_FACTOR = 10
#: ... and at least this many (for PSIS's tail fit)
MIN_POOL = 1000


def default_pool_size(num_samples: int) -> int:
    """``max(10 S, 1000)`` guide draws to resample ``S`` from (see the module docstring)."""
    return max(POOL_FACTOR * num_samples, MIN_POOL)


@dataclass
class GuideDraws:
    """``S`` draws of a guide, scored under the model.

    ``latents``: ``{site: (S, ...)}``; ``log_likelihood``: ``{observed site: (S, N)}``;
    ``observed``: ``{observed site: value}``; ``log_weights``: ``(S,)``, ``log p(x, z) - log q(z)``
    over the whole data set; ``local_log_weights``: ``(S, N)`` their per-datum parts
    ``log p(x_i, z_i) - log q(z_i | x_i)`` (``None`` without a data plate); ``local``: the
    latents in the data plate; ``per_datum``: every latent is in the data plate, so the weights
    factorise per datum.
    """

    latents: dict
    log_likelihood: dict
    observed: dict
    log_weights: np.ndarray
    local_log_weights: np.ndarray | None
    local: set
    per_datum: bool


@dataclass
class Reweighting:
    """How :func:`reweighted_draws` resampled: ``per_datum`` (else jointly), the ``pool_size``
    ``M``, and k-hat and the importance-sampling ESS of the pool's weights, ``(N,)`` per datum
    or ``(1,)`` jointly."""

    per_datum: bool
    pool_size: int
    khat: np.ndarray
    ess: np.ndarray


def _weights(terms):
    """``(total (K,), global part (K,), local parts (K, N) or None, scale)`` of one evaluation:
    ``total = global + scale * sum_i local_i`` with ``scale = N / B`` (1 on all the data)."""
    glob = terms.model_global - terms.guide_global
    if terms.obs_local is None:
        return glob, glob, None, 1.0
    local = terms.model_local - terms.guide_local
    return glob + terms.data_scale * local.sum(axis=1), glob, local, terms.data_scale


def _is_per_datum(terms, latents, local) -> bool:
    return terms.obs_local is not None and not terms.joint and set(latents) <= set(local)


def guide_draws(evaluate, num_samples: int, seed: int, chunk_size: int) -> GuideDraws:
    """``num_samples`` draws of the guide of ``evaluate`` (an SVI adapter's evaluator),
    ``chunk_size`` at a time, chunk ``i`` with seed ``seed + i``."""
    chunks = list(evaluate_in_chunks(evaluate, num_samples, chunk_size, seed))
    terms, latents, _, observed, local = chunks[0]
    def cat(key):
        return {n: np.concatenate([c[key][n] for c in chunks]) for n in chunks[0][key]}

    weights = [_weights(c[0]) for c in chunks]
    local_weights = None if weights[0][2] is None else np.concatenate([w[2] for w in weights])
    return GuideDraws(
        latents=cat(1),
        log_likelihood=cat(2),
        observed=observed,
        log_weights=np.concatenate([w[0] for w in weights]),
        local_log_weights=local_weights,
        local=set(local),
        per_datum=_is_per_datum(terms, latents, local),
    )


def reweighted_draws(
    evaluate, num_samples: int, seed: int, chunk_size: int, pool_size: int | None = None
) -> tuple[GuideDraws, Reweighting]:
    """``num_samples`` draws of the guide reweighted into the posterior, by SIR from ``pool_size``
    guide draws (default :func:`default_pool_size`); per datum when every latent is per datum,
    jointly otherwise (see the module docstring).

    The result's ``log_weights`` are each returned draw's ``log p(x, z) - log q(z)``: a record
    of where it came from in the guide, no longer a weight to apply (the draws are already
    resampled); ``local_log_weights`` likewise.
    """
    pool_size = default_pool_size(num_samples) if pool_size is None else pool_size
    totals, globs, locals_, per_datum, scale = [], [], [], None, 1.0
    for terms, latents, _, _, local in evaluate_in_chunks(evaluate, pool_size, chunk_size, seed):
        total, glob, local_part, scale = _weights(terms)
        totals.append(total)
        globs.append(glob)
        locals_.append(local_part)
        per_datum = _is_per_datum(terms, latents, local) if per_datum is None else per_datum
    rng = np.random.default_rng(seed)
    if per_datum:
        local_weights = np.concatenate(locals_)  # (M, N)
        smoothed, khat, ess = psis_weights(local_weights.T)
        picks = reweight_indices(smoothed, num_samples, rng)  # (N, S)
    else:
        smoothed, khat, ess = psis_weights(np.concatenate(totals))
        picks = reweight_indices(smoothed, num_samples, rng)[
            None
        ]  # (1, S): one choice for all data
        khat, ess = np.atleast_1d(khat), np.atleast_1d(ess)
    draws = _collect(evaluate, picks.T, pool_size, seed, chunk_size)
    glob = np.concatenate(globs)[picks[0]]
    if per_datum:
        chosen = local_weights[picks, np.arange(picks.shape[0])[:, None]]  # (N, S)
        draws.local_log_weights, draws.log_weights = chosen.T, glob + scale * chosen.sum(axis=0)
    else:
        draws.log_weights = np.concatenate(totals)[picks[0]]
        draws.local_log_weights = None if locals_[0] is None else np.concatenate(locals_)[picks[0]]
    draws.per_datum = bool(per_datum)
    return draws, Reweighting(bool(per_datum), int(pool_size), khat, ess)


def _collect(evaluate, picks, pool_size, seed, chunk_size) -> GuideDraws:
    """The pool drawn again, chunk by chunk as before, keeping the picked draws.

    ``picks`` ``(S, G)``: for each returned draw ``s``, the pool index of group ``g``'s value:
    ``G = N`` per datum (an array whose second axis is the datum takes datum ``i`` from pool draw
    ``picks[s, i]``; any other array takes group 0's), ``G = 1`` jointly.
    """
    num_samples, groups = picks.shape
    out = {"latents": {}, "log_likelihood": {}}
    for i, chunk in enumerate(evaluate_in_chunks(evaluate, pool_size, chunk_size, seed)):
        start = i * chunk_size
        for key, values in (("latents", chunk[1]), ("log_likelihood", chunk[2])):
            for name, value in values.items():
                value = np.asarray(value)
                if name not in out[key]:
                    out[key][name] = np.empty((num_samples,) + value.shape[1:], dtype=value.dtype)
                by_datum = groups > 1 and value.ndim >= 2 and value.shape[1] == groups
                _take(out[key][name], value, picks if by_datum else picks[:, :1], start, by_datum)
    observed, local = chunk[3], chunk[4]
    return GuideDraws(
        out["latents"], out["log_likelihood"], observed, None, None, set(local), False
    )


def _take(target, chunk, picks, start, by_datum) -> None:
    """``target[s, (i)] = chunk[picks[s, i] - start, (i)]`` where the pick falls in this chunk."""
    inside = (picks >= start) & (picks < start + chunk.shape[0])
    rows, cols = np.nonzero(inside)
    if by_datum:
        target[rows, cols] = chunk[picks[rows, cols] - start, cols]
    else:
        target[rows] = chunk[picks[rows, 0] - start]
