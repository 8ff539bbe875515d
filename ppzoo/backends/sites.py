"""Per-site logic, written once for both PPLs over the array API.

Each backend turns a trace of its PPL into a list of :class:`Site` (what a
``sample`` statement did: its distribution, value, scale, mask and the
plates around it) and hands over its ``biject_to`` transforms; everything
else is here, written against the arrays both PPLs share (methods common to
``jax.Array`` and ``torch.Tensor``, and ``array_api_compat`` for the rest):

* :func:`site_records`: the :class:`~.layout.SiteRecord` of each site (what
  :func:`~.layout.plan_layout` plans from);
* :func:`constrain` / :func:`unconstrain`: between the flat unconstrained
  ``theta`` ``(D,)`` and the sites' constrained values, with ``log|J|``;
* :func:`log_joint`: ``(log prior, sum_{i in batch} log p(x_i | theta))`` of
  one run on a minibatch, the latter unscaled (``N / B`` applied once by
  the caller);
* :func:`log_density` and :func:`pointwise_log_likelihood`: the full-data log
  density and the per-datum log-likelihood of one run on all the data.

A site in the data plate has its log-probability multiplied by the plate's
scale (``N / B`` when the plate is subsampled) by the PPL; :func:`log_joint`
multiplies by ``B / N`` to undo it, so the potential applies ``N / B`` once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from ppzoo.backends.layout import ModelLayout, SiteRecord

__all__ = [
    "Site", "site_records", "masked_log_prob", "log_prob", "constrain", "unconstrain", "plate_scale", "log_joint",
    "log_density",
    "pointwise_log_likelihood", "ProgramView", "program_view", "fixed_sites", "fixed_observed",
]


class Site(NamedTuple):
    """One ``sample`` statement of a traced run, the same for both PPLs.

    ``fn``: its distribution (``log_prob``, ``support``, ``batch_shape``);
    ``observed``: the PPL marked it observed (an ``obs=`` site, or a latent
    conditioned on a value by Pyro); ``scale``: the scale the plates and
    handlers set (``1.0`` if none); ``mask``: a boolean array or ``None``;
    ``frames``: ``(plate name, batch dim)`` of the vectorised plates around it.
    """

    name: str
    fn: Any
    value: Any
    observed: bool
    scale: Any
    mask: Any
    frames: tuple[tuple[str, int], ...]


def check_observed_site(name, fn, value, frames=()) -> None:
    """An observed value must be an array that broadcasts against its distribution's shape (batch and
    event) and that the distribution can score: otherwise a ``TypeError`` / ``ValueError`` naming the
    site. A per-datum argument shorter or longer than its plate, a list, or integer labels where
    the PPL wants floats would otherwise fail later, inside a log-density, with a message that
    names neither the site nor the argument."""
    shape = getattr(value, "shape", None)
    if shape is None:
        given = ("; a value given by a conditioning handler (pyro.condition(model, data={...})) must be a "
                 "torch tensor too, e.g. torch.tensor(1.0)" if isinstance(value, (int, float)) else "")
        raise TypeError(
            f"observed site {name!r}: its value is a {type(value).__name__}, not an array; pass an array "
            f"(numpy.asarray(...), or a torch tensor for Pyro){given}"
        )
    dist_shape = tuple(fn.batch_shape) + tuple(fn.event_shape)
    plates = ", ".join(f"{plate!r}" for plate, _ in frames)
    mismatch = ValueError(
        f"observed site {name!r}: its value has shape {tuple(shape)} but its distribution has shape {dist_shape}"
        + (f" (inside plate(s) {plates})" if plates else "")
        + "; every per-datum argument must have the data plate's length"
    )
    try:
        np.broadcast_shapes(dist_shape, tuple(shape))
    except ValueError:
        raise mismatch from None
    # along a plate's dim the value and the distribution must agree: one that broadcasts (a single
    # row of data against a plate of N, or N rows against a plate of 1) would be silently wrong
    value_batch = tuple(shape)[: max(len(shape) - int(fn.event_dim), 0)]
    batch = tuple(fn.batch_shape)
    for _, dim in frames:
        if dim is not None and len(value_batch) >= -dim and len(batch) >= -dim and value_batch[dim] != batch[dim]:
            raise mismatch
    try:
        fn.log_prob(value)
    except Exception as err:  # noqa: BLE001 - said with the site's name
        dtype = getattr(value, "dtype", None)
        hint = ("; its values are integers: pass them as floats" if dtype is not None
                and "int" in str(dtype) and "float" not in str(dtype) else "")
        raise ValueError(
            f"observed site {name!r}: its distribution {type(fn).__name__} cannot score its value "
            f"(dtype {dtype}, shape {tuple(shape)}): {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}{hint}"
        ) from err


def fixed_sites(layout: ModelLayout, conditioned) -> tuple[str, ...]:
    """The observed sites of ``layout`` that are latents given a value by a conditioning handler
    (``conditioned``: their names; ``numpyro.handlers.condition``, ``pyro.condition``) rather than
    data: those outside the data plate, unless that would leave no observation as data. They are
    fixed values of the model (``constant_data``), with no log-likelihood of their own."""
    fixed = tuple(s.name for s in layout.other_observed if s.name in set(conditioned))
    return fixed if len(fixed) < len(layout.all_observed) else ()


#: where each PPL's ``conditioned_names`` and ``observed_plates`` live
_PPL_MODULES = {"numpyro": "ppzoo.backends.numpyro_backend", "pyro": "ppzoo.backends.pyro_backend"}


def fixed_observed(model, args, kwargs, backend: str, data_plate) -> tuple[tuple[str, ...], str | None]:
    """``(fixed sites, data plate)`` of ``model(*args, **kwargs)`` of PPL ``backend`` for
    ``ppzoo.fit``: the observed sites that are latents a conditioning handler fixed
    (:func:`conditioned_outside`), and the data plate (``data_plate``, or where it is ``None`` and
    some sites are fixed, the outermost plate around every other observation: a fixed value
    outside the data plate would otherwise leave the model without one)."""
    import importlib

    ppl = importlib.import_module(_PPL_MODULES[backend])
    conditioned = ppl.conditioned_names(model)
    if not conditioned:
        return (), data_plate
    observed = ppl.observed_plates(model, args, kwargs)
    plate = data_plate
    if plate is None:
        data = [n for n in observed if n not in conditioned] or [n for n, plates in observed.items() if plates]
        common = set.intersection(*(set(observed[n]) for n in data)) if data else set()
        plate = min(common, key=observed[data[0]].__getitem__) if common else None
    fixed = conditioned_outside({n: set(p) for n, p in observed.items()}, conditioned, plate)
    return fixed, (plate if fixed else data_plate)


def check_data_given(model, args, kwargs, backend: str) -> None:
    """A ``ValueError`` naming the argument where ``model(x, y=None)`` is called without its data
    (:func:`~.batching.unobserved_data`): its observed site is then a latent, and a fit or a run
    would give the prior predictive, not the posterior."""
    import importlib

    from ppzoo.backends.batching import none_arguments, unobserved_data

    if not none_arguments(model, args, kwargs):
        return
    ppl = importlib.import_module(_PPL_MODULES[backend])
    latent, observed = ppl.site_names(model, args, kwargs)
    missing = unobserved_data(model, args, kwargs, latent, observed)
    if missing:
        raise_unobserved(missing)


def raise_unobserved(missing) -> None:
    name = missing[0]
    raise ValueError(
        f"{name}=None: the model has no observed site, and its site {name!r} is a latent because its data {name} "
        f"is None, so ppzoo would sample or fit the prior. Pass the data, e.g. {name}={name}"
    )


def conditioned_outside(observed: Mapping[str, set], conditioned, data_plate) -> tuple[str, ...]:
    """The rule of :func:`fixed_sites` on ``observed`` (``{observed site: names of the plates
    around it}``): the ``conditioned`` sites outside ``data_plate``, unless they are all the observations."""
    fixed = tuple(n for n, plates in observed.items() if n in set(conditioned) and data_plate not in plates)
    return fixed if len(fixed) < len(observed) else ()


def site_records(sites: list[Site], inverse_shape: Callable, to_numpy: Callable) -> list[SiteRecord]:
    """The :class:`~.layout.SiteRecord` of each site.

    ``inverse_shape(support, shape)``: the shape of ``biject_to(support).inv`` of
    a value of ``shape`` (the PPL's transform); ``to_numpy``: an observed value
    as a NumPy array.
    """
    records = []
    for site in sites:
        if site.observed:
            check_observed_site(site.name, site.fn, site.value, site.frames)
        shape = tuple(site.value.shape)
        discrete = (not site.observed) and bool(site.fn.support.is_discrete)
        unconstrained = shape
        if not site.observed and not discrete:
            unconstrained = tuple(inverse_shape(site.fn.support, shape))
        records.append(
            SiteRecord(
                name=site.name,
                observed=site.observed,
                shape=shape,
                unconstrained_shape=unconstrained,
                is_discrete=discrete,
                plates=tuple(name for name, _ in site.frames),
                plate_dims=dict(site.frames),
                value=to_numpy(site.value) if site.observed else None,
                mask=_observed_mask(site, to_numpy),
                event_dim=int(site.fn.event_dim),
                is_factor=site.observed and type(site.fn).__name__ == "Unit",
            )
        )
    return records


def _observed_mask(site: Site, to_numpy):
    """An observed site's mask as a NumPy array (a handler's, or a NumPyro ``MaskedDistribution``'s,
    which is how ``handlers.mask`` and ``obs_mask`` reach it), ``None`` where it has none."""
    mask = site.mask if site.mask is not None else getattr(site.fn, "_mask", None)
    if not site.observed or mask is None or isinstance(mask, bool):
        return None
    return to_numpy(mask)


def masked_log_prob(site: Site):
    """The site's log-probability, zero where its mask is False (scale not applied)."""
    return log_prob(site.fn, site.value, site.mask)


def log_prob(fn, value, mask=None, stop_gradient=None):
    """``fn.log_prob(value)``, zero where ``mask`` is False; with ``stop_gradient``, "path only":
    the same value, with a gradient that flows through the draw ``value`` but not through
    ``fn``'s parameters, ``log q(z) - log q(sg z) + sg(log q(sg z))`` (the STL / DReG guide term);
    a ``Delta`` as it is (:func:`_is_delta`)."""
    lp = fn.log_prob(value)
    if stop_gradient is not None and not _is_delta(fn):
        held = fn.log_prob(stop_gradient(value))
        lp = lp - held + stop_gradient(held)
    if mask is None:
        return lp
    xp = array_api_compat.array_namespace(lp)
    return xp.where(mask, lp, xp.zeros_like(lp))


def _is_delta(fn) -> bool:
    """A point mass (``Delta``, possibly wrapped): its ``log_density`` is a function of the draw
    (an autoguide's log-Jacobian of the transform from its auxiliary draw), so "path only"
    keeps all of its gradient; its value's own gradient is zero."""
    while True:
        if type(fn).__name__ == "Delta":
            return True
        if not hasattr(fn, "base_dist"):
            return False
        fn = fn.base_dist


def _split(theta, sizes):
    """``theta`` ``(D,)`` cut into consecutive pieces of ``sizes``."""
    if array_api_compat.is_torch_array(theta):
        return theta.split(list(sizes))  # one cat in the backward pass, not a zeros + copy per slice
    bounds = np.cumsum((0, *sizes))
    return [theta[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def constrain(theta, layout: ModelLayout, transforms: Mapping[str, Any]):
    """``theta`` ``(D,)`` -> ``({site: constrained value}, log|J|)``, through the PPL's ``biject_to``."""
    params, log_det = {}, 0.0
    for s, part in zip(layout.latent, _split(theta, [s.size for s in layout.latent])):
        u = part.reshape(s.unconstrained_shape)
        t = transforms[s.name]
        x = t(u)
        params[s.name] = x
        log_det = log_det + t.log_abs_det_jacobian(u, x).sum()
    return params, log_det


def unconstrain(values: Mapping[str, Any], layout: ModelLayout, transforms: Mapping[str, Any]):
    """Per latent site a constrained value ``(C, *shape)`` (the PPL's arrays) -> ``theta`` ``(C, D)``."""
    parts = []
    for s in layout.latent:
        u = transforms[s.name].inv(values[s.name])
        parts.append(u.reshape(u.shape[0], s.size))
    xp = array_api_compat.array_namespace(parts[0])
    return xp.concat(parts, axis=1)


def _in_data(site: Site, layout: ModelLayout, params) -> bool:
    return (
        site.name not in params
        and site.observed
        and (layout.data_plate is None or any(name == layout.data_plate for name, _ in site.frames))
    )


def plate_scale(plates: Mapping[str, tuple[int, int]], layout: ModelLayout) -> float:
    """The scale the data plate applied in one run: the size it was given over the number of its
    indices (``N / B`` for a subsampled plate; 1 for a plate sized by minibatched arguments).
    ``plates``: ``{name: (size, number of indices)}`` as the PPL saw them."""
    if layout.data_plate is None or layout.data_plate not in plates:
        return 1.0
    size, indices = plates[layout.data_plate]
    return size / indices


def log_joint(sites: list[Site], layout: ModelLayout, params, scale: float):
    """``(log prior of the global sites, sum_{i in batch} log p(x_i | params))`` of one run in
    which the data plate applied ``scale`` (:func:`plate_scale`); the latter unscaled (the
    plate's scale divided out). Sites outside the data plate, observed ones included, are in
    the prior."""
    log_prior, log_lik = 0.0, 0.0
    for site in sites:
        total = masked_log_prob(site).sum() * site.scale
        if _in_data(site, layout, params):
            log_lik = log_lik + total / scale
        else:
            log_prior = log_prior + total
    return log_prior, log_lik


def log_density(sites: list[Site], log_det):
    """``-U(theta)``: every site's log-probability (scales applied) plus ``log|J|``, for a run on
    all the data (the data plate's scale is then 1)."""
    total = log_det
    for site in sites:
        total = total + masked_log_prob(site).sum() * site.scale
    return total


def pointwise_log_likelihood(sites: Mapping[str, Site], layout: ModelLayout) -> dict:
    """Per observed site of ``layout`` (:attr:`~.layout.ModelLayout.all_observed`), its
    log-likelihood terms in a run on all the data: for a site in the data plate ``log p(x_i |
    theta)`` per datum ``(N,)`` (summed over the site's other dims), for any other site its
    ``log_prob`` per batch element (the site's batch shape; ``()`` for a single event)."""
    out = {}
    for s in layout.all_observed:
        site = sites[s.name]
        lp = masked_log_prob(site)
        xp = array_api_compat.array_namespace(lp)
        value_batch = tuple(site.value.shape)[: len(site.value.shape) - site.fn.event_dim]
        lp = xp.broadcast_to(lp, np.broadcast_shapes(tuple(site.fn.batch_shape), value_batch))
        if s.plate_dim is None:
            out[s.name] = lp
        else:
            out[s.name] = xp.moveaxis(lp, lp.ndim + s.plate_dim, 0).reshape(layout.num_data, -1).sum(-1)
    return out


class ProgramView(NamedTuple):
    """What one run of a program does with its data, as NumPy arrays, for comparing runs given
    different rows (:func:`ppzoo.backends.batching.check_data_reading`).

    ``outside``: per site or plate outside the data plate (``"site 'b'"``, ``"plate 'groups'"``,
    ``"deterministic site 'tau0'"``), ``{what: array}``: a plate's size; a sample site's value
    shape, scale, distribution parameters and log-density at the run's latent values, and its value
    where observed; a deterministic statement's value. ``per_datum``: per observed site in the data
    plate, its log-likelihood per index of the plate ``(B,)``, unscaled (summed over the site's
    other dims). ``own_scale``: per such site, the scale set around it over the scale the data plate
    applied (:func:`plate_scale`): 1 unless the program scales its likelihood itself.
    """

    outside: dict
    per_datum: dict
    own_scale: dict


def program_view(sites: list[Site], plates: Mapping[str, tuple[int, int]], deterministic, layout: ModelLayout,
                 latent, local_given: bool = False) -> ProgramView:
    """The :class:`ProgramView` of one run: its ``sites``, its ``plates`` (``{name: (size, number of
    indices)}``) and its ``deterministic`` statements (``(name, value, plate names)``); ``latent``:
    the names of the latent sites (Pyro marks a latent it was given a value for as observed).
    ``local_given``: the latent sites in the data plate were given the rows of one run's values that
    the run's indices select (SVI's per-datum latents), so they are left out of the view."""
    data = layout.data_plate
    plate_factor = plate_scale(plates, layout)
    outside = {f"plate {name!r}": {"size": np.asarray(size)} for name, (size, _) in plates.items() if name != data}
    per_datum, own_scale = {}, {}
    for site in sites:
        frames = dict(site.frames)
        if local_given and data in frames and site.name in latent:
            continue
        if data in frames and site.name not in latent:
            per_datum[site.name] = _per_index(site, frames[data])
            own_scale[site.name] = _numpy(site.scale) / plate_factor
            continue
        seen = {"value's shape": np.asarray(tuple(site.value.shape)), "scale": _numpy(site.scale),
                "log-density": _numpy(masked_log_prob(site))}
        seen |= {f"distribution's {name}": value for name, value in _parameters(site.fn).items()}
        if site.name not in latent:
            seen["observed value"] = _numpy(site.value)
        outside[f"site {site.name!r}"] = seen
    for name, value, plate_names in deterministic:
        if data not in plate_names:
            outside[f"deterministic site {name!r}"] = {"value": _numpy(value)}
    return ProgramView(outside, per_datum, own_scale)


def _numpy(x) -> np.ndarray:
    """A PPL's array (or a Python number) as NumPy."""
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _parameters(fn) -> dict:
    """A distribution's parameters (its ``arg_constraints``), through the wrappers (``Independent``,
    ``ExpandedDistribution``, ``MaskedDistribution``, ...) to the base distribution, as NumPy."""
    found, depth = {}, 0
    while fn is not None:
        for name in getattr(fn, "arg_constraints", {}):
            try:
                value = getattr(fn, name)
            except Exception:  # noqa: BLE001 - a parameter the distribution was not given and cannot derive
                continue
            if hasattr(value, "shape") or isinstance(value, (int, float)):  # NumPyro keeps Python numbers as given
                found[f"{name}" if depth == 0 else f"{name} (level {depth})"] = _numpy(value)
        fn, depth = getattr(fn, "base_dist", None), depth + 1
    return found


def _per_index(site: Site, plate_dim: int) -> np.ndarray:
    """A data-plate site's unscaled log-likelihood per index of the plate ``(B,)``: the plate's dim
    first, the site's other batch dims summed."""
    lp = _numpy(masked_log_prob(site))
    value_batch = tuple(site.value.shape)[: len(site.value.shape) - site.fn.event_dim]
    lp = np.broadcast_to(lp, np.broadcast_shapes(tuple(site.fn.batch_shape), value_batch))
    lp = np.moveaxis(lp, lp.ndim + plate_dim, 0)
    return lp.reshape(lp.shape[0], -1).sum(-1)
