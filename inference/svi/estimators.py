"""Importance-weighted bounds and their gradient estimators, written once over arrays.

A backend (``ppzoo/backends/pyro_svi.py``, ``numpyro_svi.py``) runs the guide
``K`` times (particles vectorised) and the model on each draw, and hands over
the per-particle log-densities as :class:`LogDensityTerms`. Everything below
is array arithmetic (torch or JAX, through ``array_api_compat``) plus the
backend's ``stop_gradient``.

Grouping. With ``log w_k = log p(x, z_k) - log q(z_k | x)``:

* **per datum** (every latent lives in the data plate, as in a VAE): each
  datum ``b`` of the minibatch has its own ``K`` particles and

      L_K = c + (N / B) * sum_b [ logsumexp_k log w_kb - log K ],

  the IWAE bound of Burda et al. (2016), summed over the data set; ``c`` are
  terms outside the data plate that no particle changes (averaged over k).
* **joint** (some latent lives outside the data plate): one group,
  ``log w_k = (global terms) + (N / B) * sum_b (local terms)``,
  ``L_K = logsumexp_k log w_k - log K``.

Estimators (``P`` = model log joint, ``A`` = the same with ``z`` held fixed,
``Q`` = guide log-density with its parameters held fixed, so that its gradient
flows only through the reparameterised draw; normalised weights
``w~_k = softmax_k(log w)`` held fixed):

* ``"reparam"``: the gradient of ``L_K`` itself.
* ``"stl"`` (Roeder et al. 2017): ``L_K`` with ``Q`` in place of ``log q``:
  drops the score term of the guide parameters.
* ``"dreg"`` (Tucker et al. 2019, eq. 7): surrogate per group
  ``sum_k w~_k A_k + sum_k w~_k^2 (P_k - A_k - Q_k)``: model parameters get
  ``sum_k w~_k grad log p`` (the IWAE gradient), guide parameters
  ``sum_k w~_k^2 d log w_k / d z_k  d z_k / d phi``.

Every surrogate is returned with the value of ``L_K`` (``S - sg(S) + sg(L)``)
so that the loss reported is always the bound.
"""

from __future__ import annotations

import math

import array_api_compat

from ppzoo.backends.svi_common import ESTIMATORS, LogDensityTerms

__all__ = ["iwae_objective", "annealed_elbo_objective", "group_log_weights", "logsumexp"]


def logsumexp(x, axis):
    """``log sum exp`` along ``axis``, stable (shifted by the max, held fixed)."""
    xp = array_api_compat.array_namespace(x)
    shift = xp.max(x, axis=axis, keepdims=True)
    shift = xp.where(xp.isfinite(shift), shift, xp.zeros_like(shift))
    return xp.log(xp.sum(xp.exp(x - shift), axis=axis)) + xp.squeeze(shift, axis=axis)


def _softmax(x, axis):
    xp = array_api_compat.array_namespace(x)
    return xp.exp(x - xp.expand_dims(logsumexp(x, axis), axis=axis))


def group_log_weights(terms: LogDensityTerms, global_part, local_part):
    """Split ``global_part`` ``(K,)`` and ``local_part`` ``(K, B)`` into groups.

    Returns ``(groups, constant, scale)``: ``groups`` ``(K, G)`` are what the
    ``logsumexp`` runs over, ``constant`` ``(K,)`` is added outside it and
    ``scale`` multiplies the sum over groups (see the module docstring).
    """
    xp = array_api_compat.array_namespace(global_part)
    if local_part is None:
        return xp.expand_dims(global_part, axis=1), xp.zeros_like(global_part), 1.0
    if terms.joint:
        total = global_part + terms.data_scale * xp.sum(local_part, axis=1)
        return xp.expand_dims(total, axis=1), xp.zeros_like(global_part), 1.0
    return local_part, global_part, terms.data_scale


def _with_value(surrogate, value, sg):
    return surrogate - sg(surrogate) + sg(value)


def iwae_objective(terms: LogDensityTerms, estimator: str = "reparam"):
    """``(bound, surrogate)``: the IWAE bound ``L_K`` and the scalar to differentiate.

    ``surrogate`` has the value of ``bound`` and the gradient of ``estimator``
    (``"reparam"``, ``"stl"`` or ``"dreg"``; the guide terms must already be the
    right kind, see :class:`LogDensityTerms`).
    """
    sg = terms.stop_gradient
    local = None if terms.model_local is None else terms.model_local - terms.guide_local
    lw, const, scale = group_log_weights(terms, terms.model_global - terms.guide_global, local)
    xp = array_api_compat.array_namespace(lw)
    num_particles = lw.shape[0]
    bound = xp.mean(const) + scale * xp.sum(logsumexp(lw, axis=0) - math.log(num_particles))
    if estimator in ("reparam", "stl"):
        return bound, bound
    if estimator != "dreg":
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    p, _, _ = group_log_weights(terms, terms.model_global, terms.model_local)
    a, _, _ = group_log_weights(terms, terms.direct_global, terms.direct_local)
    q, _, _ = group_log_weights(terms, terms.guide_global, terms.guide_local)
    w = sg(_softmax(lw, axis=0))
    per_group = xp.sum(w * a + w * w * (p - a - q), axis=0)
    surrogate = xp.mean(const) + scale * xp.sum(per_group)
    return sg(bound), _with_value(surrogate, bound, sg)


def annealed_elbo_objective(terms: LogDensityTerms, beta):
    """``(elbo_beta, surrogate)`` of the beta-weighted ELBO, averaged over the ``K`` particles.

    ``ELBO_beta = E_q[ log p(x | z) + beta * (log p(z) - log q(z | x)) ]``, i.e.
    reconstruction minus ``beta`` times the (sampled) KL; ``beta = 1`` is the ELBO.
    Reparameterised gradient; ``beta`` may be a traced scalar.
    """
    xp = array_api_compat.array_namespace(terms.obs_global)
    total = terms.obs_global + beta * (terms.prior_global - terms.guide_global)
    if terms.obs_local is not None:
        local = terms.obs_local + beta * (terms.prior_local - terms.guide_local)
        total = total + terms.data_scale * xp.sum(local, axis=1)
    value = xp.mean(total)
    return value, value
