"""What both PPLs' SVI adapters share: the per-particle log-density record and the checks.

:class:`LogDensityTerms` is what ``pyro_svi.log_density_terms`` and
``numpyro_svi.log_density_terms`` hand to the objectives in
``ppzoo.inference.svi`` (arrays of the backend's own kind).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ppzoo import checks
from ppzoo.checks import check_count, check_observations_finite

__all__ = [
    "LogDensityTerms", "check_guide_matches", "check_batch_size", "pick_data_plate", "ESTIMATORS", "normal_parameters",
    "is_auxiliary", "check_observations_finite",
]

#: gradient estimators of the importance-weighted objectives
ESTIMATORS = ("reparam", "stl", "dreg")


@dataclass
class LogDensityTerms:
    """Per-particle log-densities of one minibatch, ``K`` particles, ``B`` data.

    ``*_global`` have shape ``(K,)`` (sites outside the data plate, user
    scales applied); ``*_local`` have shape ``(K, B)`` (sites inside the data
    plate, unscaled by ``N / B``) or are ``None`` when the model has no data
    plate. ``obs`` are observed model sites, ``prior`` latent model sites,
    ``guide`` the guide's sample sites (path-only for ``stl``/``dreg``).
    ``direct_*`` (``dreg`` only) are ``obs + prior`` with the draws held fixed.
    """

    obs_global: Any
    obs_local: Any
    prior_global: Any
    prior_local: Any
    guide_global: Any
    guide_local: Any
    data_scale: float
    joint: bool
    stop_gradient: Callable
    direct_global: Any = None
    direct_local: Any = None

    @property
    def model_global(self):
        return self.obs_global + self.prior_global

    @property
    def model_local(self):
        return None if self.obs_local is None else self.obs_local + self.prior_local



def check_batch_size(batch_size, plate, size) -> None:
    """``batch_size`` (or ``None``) must be an integer ``1 <= B <= N`` for a model with a data plate."""
    if batch_size is None:
        return
    check_count("batch_size", batch_size, 1)
    if plate is None:
        raise ValueError("batch_size was given but the model has no data plate around its observations to subsample")
    checks.check_batch_size(batch_size, size, plate)


def is_auxiliary(site) -> bool:
    """Whether a guide's sample site is auxiliary (``infer={"is_auxiliary": True}``): a draw the
    guide transforms into the model's latents, as the autoguides of both PPLs do (their
    ``*_unconstrained`` / ``_auto_latent`` sites, followed by a ``Delta`` site per model latent
    whose ``log_density`` is the transform's log-Jacobian). Its log-density is part of
    ``log q``, but the model has no such site."""
    return bool((site.get("infer") or {}).get("is_auxiliary", False))


def check_guide_matches(model_latents: dict, guide_latents: dict, estimator: str, auxiliary: dict | None = None) -> None:
    """Raise ``ValueError`` unless the guide samples exactly the model's latent sites, reparameterised.

    ``model_latents`` / ``guide_latents`` map site names to their distributions;
    ``auxiliary``: the guide's auxiliary sites (:func:`is_auxiliary`), which must be
    reparameterisable too but match no model site.
    """
    missing = sorted(set(model_latents) - set(guide_latents))
    if missing:
        raise ValueError(
            f"guide has no sample site for the model's latent site(s) {missing}: "
            "the guide must sample every latent site of the model"
        )
    extra = sorted(set(guide_latents) - set(model_latents))
    if extra:
        raise ValueError(f"guide samples site(s) {extra} that the model does not have (or observes)")
    for name, fn in {**guide_latents, **(auxiliary or {})}.items():
        if not getattr(fn, "has_rsample", False):
            raise ValueError(
                f"guide site {name!r} ({type(fn).__name__}) is not reparameterisable; "
                f"estimator={estimator!r} differentiates through the draws z = g(eps, phi), "
                "so every guide site must have rsample (discrete latents are not supported)"
            )


def pick_data_plate(plates: dict, observed: dict, data_plate: str | None) -> str | None:
    """The plate whose members are data: ``data_plate`` if given, else the outermost plate around every observation.

    ``plates`` maps plate names to ``(size, subsample size)``; ``observed``
    maps observed sites to ``{plate name: dim}`` of the plates around them. ``None`` when
    no plate holds all observations (then the data set counts as one datum).
    """
    if data_plate is not None:
        return checks.check_data_plate(data_plate, plates)
    common = None
    for names in observed.values():
        common = set(names) if common is None else common & set(names)
    candidates = [p for p in plates if common and p in common]
    if not candidates:
        return None
    first = next(iter(observed.values()))
    return min(candidates, key=first.__getitem__)  # the outermost (most negative dim)


def normal_parameters(fn, value_shape, event_dim, plate_dim, to_numpy=np.asarray):
    """``(loc, scale)`` of a (possibly Independent / expanded / masked) Normal guide site, as ``(N, d)`` arrays.

    ``plate_dim`` is the data plate's (negative) batch dimension; the site's
    value is moved to put it first and the rest flattened. Works on NumPyro
    and torch distributions alike (``base_dist`` chains, ``loc``/``scale``).
    Returns ``None`` when the site is not a Normal.
    """
    base = fn
    while hasattr(base, "base_dist"):
        base = base.base_dist
    if type(base).__name__ != "Normal":
        return None
    batch_ndim = len(value_shape) - event_dim
    axis = batch_ndim + plate_dim
    out = []
    for a in (base.loc, base.scale):
        a = np.broadcast_to(np.asarray(to_numpy(a), dtype=np.float64), value_shape)
        out.append(np.moveaxis(a, axis, 0).reshape(value_shape[axis], -1))
    return out[0], out[1]
