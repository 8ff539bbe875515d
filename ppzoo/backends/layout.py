"""What a model looks like to a gradient-based sampler, independent of the PPL.

Each backend traces the user's program once and describes every site as a
:class:`SiteRecord`; :func:`plan_layout` then decides, the same way for both
PPLs, which plate holds the data, which sites are latent, and how the latent
sites are packed into one flat unconstrained vector ``theta`` of length ``D``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from ppzoo.checks import check_data_plate, check_observations_finite

__all__ = [
    "SiteRecord",
    "PlateRecord",
    "LatentSite",
    "ObservedSite",
    "DeterministicSite",
    "deterministic_site",
    "ModelLayout",
    "plan_layout",
    "reads_data_elsewhere",
    "value_dims",
    "model_name",
]


@dataclass(frozen=True)
class PlateRecord:
    """A plate seen in the trace: its name, full size and the subsample size the model asked for."""

    name: str
    size: int
    subsample_size: int | None


@dataclass(frozen=True)
class SiteRecord:
    """A sample site seen in the trace, described without reference to the PPL.

    ``shape`` is the shape of the site's value; ``unconstrained_shape`` the shape
    of its value after the PPL's ``biject_to(support).inv``; ``plates`` the
    names of the plates the site sits in.
    """

    name: str
    observed: bool
    shape: tuple[int, ...]
    unconstrained_shape: tuple[int, ...]
    is_discrete: bool
    plates: tuple[str, ...]
    plate_dims: dict[str, int] = field(default_factory=dict)
    value: object = None  # the observed value (observed sites only)
    event_dim: int = 0  # trailing dims of the value that are one event
    is_factor: bool = False  # a factor statement (``numpyro.factor`` / ``pyro.factor``), not data
    mask: object = None  # the observed site's mask (False: left out of the likelihood), if it has one


def value_dims(site: SiteRecord) -> tuple[str, ...]:
    """Names for the axes of the site's value: a plate's name where the axis is that plate's batch
    dim (as ``az.from_numpyro`` names them), ``<site>_dim_<k>`` for the others, numbered in order."""
    batch = len(site.shape) - site.event_dim
    by_axis = {batch + dim: name for name, dim in site.plate_dims.items() if 0 <= batch + dim < batch}
    names, k = [], 0
    for axis in range(len(site.shape)):
        if axis in by_axis:
            names.append(by_axis[axis])
        else:
            names.append(f"{site.name}_dim_{k}")
            k += 1
    return tuple(names)


@dataclass(frozen=True)
class LatentSite:
    """A latent site's slot in ``theta``: ``theta[offset:offset + size]`` reshaped to ``unconstrained_shape``."""

    name: str
    shape: tuple[int, ...]
    unconstrained_shape: tuple[int, ...]
    offset: int
    size: int
    dims: tuple[str, ...] = ()  # names of the value's axes (:func:`value_dims`)


@dataclass(frozen=True)
class ObservedSite:
    """An observed site: ``plate_dim`` is the data plate's (negative) batch dim, ``None`` for a
    site outside the data plate; ``dims`` names its value's axes (:func:`value_dims`), of which
    the first ``batch_ndim`` are batch dims (one log-likelihood term each)."""

    name: str
    shape: tuple[int, ...]
    plate_dim: int | None
    dims: tuple[str, ...] = ()
    batch_ndim: int = 0


@dataclass(frozen=True)
class DeterministicSite:
    """A ``deterministic`` statement: a function of the latents reported in the posterior."""

    name: str
    shape: tuple[int, ...]
    dims: tuple[str, ...] = ()


def deterministic_site(name: str, shape, frames, event_dim: int = 0) -> DeterministicSite:
    """The :class:`DeterministicSite` of a traced ``deterministic`` statement with value ``shape``
    inside the plates ``frames`` (``(name, batch dim)``), its dims named after them."""
    record = SiteRecord(name, False, tuple(shape), tuple(shape), False, tuple(n for n, _ in frames), dict(frames),
                        event_dim=event_dim)
    return DeterministicSite(name, tuple(shape), value_dims(record))


@dataclass(frozen=True)
class ModelLayout:
    """The sampler's view of a model.

    ``num_data`` is N, the size of the data plate (1 when the model has no data
    plate: the whole data set then counts as one datum). ``dim`` is D, the
    length of the unconstrained parameter vector.
    """

    latent: tuple[LatentSite, ...]
    observed: tuple[ObservedSite, ...]
    data_plate: str | None
    num_data: int
    dim: int
    declared_subsample_size: int | None
    #: observed sites outside the data plate (all of them when there is none); ``factor``
    #: statements are not among them
    other_observed: tuple[ObservedSite, ...] = ()
    #: ``deterministic`` statements, reported in the posterior
    deterministic: tuple[DeterministicSite, ...] = ()

    @property
    def all_observed(self) -> tuple[ObservedSite, ...]:
        """Every observed site: those in the data plate, then the others."""
        return self.observed + self.other_observed

    @property
    def latent_names(self) -> tuple[str, ...]:
        return tuple(site.name for site in self.latent)

    def default_batch_size(self) -> int:
        """The model's own ``subsample_size`` if it declares one, else ``max(ceil(sqrt(N)),
        MIN_DEFAULT_BATCH)`` capped at N (:data:`MIN_DEFAULT_BATCH`)."""
        if self.declared_subsample_size is not None:
            return self.declared_subsample_size
        return min(self.num_data, max(MIN_DEFAULT_BATCH, math.ceil(math.sqrt(self.num_data))))


def model_name(model) -> str:
    """A readable name for a model callable, for messages."""
    return getattr(model, "__qualname__", None) or getattr(model, "__name__", None) or repr(model)


def _check_observed_values(sites: list[SiteRecord]) -> None:
    check_observations_finite({site.name: site.value for site in sites if site.observed and site.value is not None},
                              masks={site.name: site.mask for site in sites if site.observed})


#: the default minibatch holds at least this many data (all of them when there are fewer).
#: ``ceil(sqrt(N))`` alone (the size under which Kinoshita & Suzuki's bounds are proved) leaves
#: small data sets with gradient noise that biases the draws without any diagnostic showing it:
#: in ``benchmarks/nuts_agreement.py`` SGLD-CV's sds were 11-12% too wide and a mean 0.33 sd off
#: with B = 21 on the diabetes regression (N = 442) and B = 11 on the change point (N = 112);
#: with B = 256 (or N) they were within 6% and 0.09 sd, for 1.2 times the wall time.
MIN_DEFAULT_BATCH = 256
#: a model with latents inside its data plate runs full-batch up to this many data
FULL_BATCH_MAX_DATA = 1000


def _find_data_plate(
    sites: list[SiteRecord], plates: dict[str, PlateRecord], data_plate: str | None, name: str
) -> str | None:
    if data_plate is not None:
        return check_data_plate(data_plate, plates)
    # The single plate that holds observed sites and whose size equals the
    # leading dimension of those observed values.
    candidates = []
    for plate in plates.values():
        inside = [s for s in sites if s.observed and plate.name in s.plates]
        if inside and all(len(s.shape) > 0 and s.shape[0] == plate.size for s in inside):
            candidates.append(plate.name)
    if len(candidates) > 1:
        raise ValueError(
            f"model {name!r} has several plates that could hold the data ({candidates}); "
            "say which with data_plate=..."
        )
    return candidates[0] if candidates else None


def _local_latents(latent: list[SiteRecord], plate: PlateRecord, name: str) -> bool:
    """Whether latent sites lie inside the data plate ``plate`` (per-datum or per-group latents).

    Minibatch gradients cannot update such a latent (the batch sees a few of
    its entries at a time), so the model runs full-batch, with a warning,
    when the plate holds at most :data:`FULL_BATCH_MAX_DATA` entries (every
    step then uses all the data: no gradient noise, and the plate's entries
    are the log-likelihood's terms); beyond that a ``ValueError`` names the
    sites and the ways out.
    """
    local = [site.name for site in latent if plate.name in site.plates]
    if not local:
        return False
    why = _no_full_batch(plate)
    if why:
        raise ValueError(
            f"model {name!r}: latent sites {local} lie inside the data plate {plate.name!r}, and minibatch "
            f"gradients cannot update a per-datum latent; ppzoo runs such models full-batch only on small data, "
            f"and {why}. Marginalise the latents out, fit the model by SVI with a guide for them (ppzoo.fit), or "
            "name another plate as the data plate (data_plate=...)"
        )
    warnings.warn(
        f"model {name!r}: latent sites {local} lie inside the data plate {plate.name!r} (N={plate.size}); ppzoo "
        "runs it full-batch: every step uses all the data, so the gradients carry no minibatch noise",
        UserWarning,
        stacklevel=4,
    )
    return True


def _no_full_batch(plate: PlateRecord) -> str | None:
    """Why the data plate cannot run full-batch (it subsamples itself, or holds more than
    :data:`FULL_BATCH_MAX_DATA` entries), or ``None`` where it can."""
    if plate.subsample_size is not None:
        return f"it subsamples (subsample_size={plate.subsample_size})"
    if plate.size > FULL_BATCH_MAX_DATA:
        return f"N={plate.size} is more than {FULL_BATCH_MAX_DATA}"
    return None


def reads_data_elsewhere(plate: PlateRecord, name: str, findings, how: str) -> None:
    """A program that reads its data beyond the rows it is given (``findings``: what changed when
    it was given a few rows, :func:`ppzoo.backends.batching.check_data_reading`; ``how``: how it was
    given them) would see a different model on every minibatch. As for latents in the data plate
    (:func:`_local_latents`), it runs full-batch, with a warning, when the plate has at most
    :data:`FULL_BATCH_MAX_DATA` entries (then it always gets all its data); beyond that, or where
    the plate subsamples itself, a ``ValueError`` names the sites and the ways out."""
    what = "; ".join(findings)
    why = _no_full_batch(plate)
    if why:
        raise ValueError(
            f"model {name!r} reads its data outside the rows of the data plate {plate.name!r} it is given: {how}, "
            f"these changed: {what}. A minibatch would change the model; ppzoo runs such models full-batch only on "
            f"small data, and {why}. Pass N (and any statistic of the data) as an argument rather than computing "
            f"it from the data, index the data by the plate's indices (with plate({plate.name!r}, N, "
            "subsample_size=None) as idx: ... x[idx]), or say which arguments are per-datum with batch_args=[...]"
        )
    warnings.warn(
        f"model {name!r} reads its data outside the rows of the data plate {plate.name!r} (N={plate.size}) it is "
        f"given: {how}, these changed: {what}; ppzoo runs it full-batch: every step uses all the data, so the "
        "gradients carry no minibatch noise",
        UserWarning,
        stacklevel=4,
    )


def plan_layout(
    sites: list[SiteRecord],
    plates: dict[str, PlateRecord],
    data_plate: str | None,
    model,
    deterministic: tuple[DeterministicSite, ...] = (),
    full_batch: bool = False,
) -> ModelLayout:
    """Choose the data plate, validate the sites and pack the latent ones into ``theta``.

    Raises ``ValueError`` naming the site for discrete latent sites and
    non-finite observations. Latent sites inside the data plate make the run
    full-batch on small data and are refused on large (:func:`_local_latents`).
    Warns once, naming the model, when there is no data plate (full-batch).
    ``full_batch``: run full-batch whatever the plates (a program that reads its
    data beyond its minibatch, :func:`reads_data_elsewhere`, which has warned).
    """
    name = model_name(model)
    _check_observed_values(sites)
    plate_name = _find_data_plate(sites, plates, data_plate, name)
    latent_records = sorted((s for s in sites if not s.observed), key=lambda s: s.name)
    if not latent_records:
        raise ValueError(f"model {name!r} has no latent sample sites to sample")
    for site in latent_records:
        if site.is_discrete:
            raise ValueError(
                f"model {name!r}: latent site {site.name!r} is discrete; gradient-based samplers need "
                "continuous latent variables, and ppzoo does not enumerate discrete ones as NumPyro's NUTS "
                "can: marginalise it out in the model (a mixture's logsumexp over components), or observe it"
            )
    full_batch = full_batch or (plate_name is not None and _local_latents(latent_records, plates[plate_name], name))
    if full_batch:
        plate_name = None
    latent, offset = [], 0
    for site in latent_records:
        size = int(np.prod(site.unconstrained_shape, dtype=int))
        latent.append(LatentSite(site.name, site.shape, site.unconstrained_shape, offset, size, value_dims(site)))
        offset += size
    if plate_name is None:
        if not full_batch:  # (a full-batch run for local latents has said so already)
            warnings.warn(
                f"model {name!r} has no data plate (a plate whose size is the number of observations); "
                "ppzoo runs it full-batch, each observation a term of the log-likelihood",
                UserWarning,
                stacklevel=3,
            )
        return ModelLayout(tuple(latent), (), None, 1, offset, None, _others(sites, None), tuple(deterministic))
    plate = plates[plate_name]
    observed = tuple(
        _observed_site(s, s.plate_dims[plate_name]) for s in sites if s.observed and plate_name in s.plates
    )
    return ModelLayout(tuple(latent), observed, plate_name, plate.size, offset, plate.subsample_size,
                       _others(sites, plate_name), tuple(deterministic))


def _observed_site(record: SiteRecord, plate_dim: int | None) -> ObservedSite:
    return ObservedSite(record.name, record.shape, plate_dim, value_dims(record), len(record.shape) - record.event_dim)


def _others(sites: list[SiteRecord], plate_name: str | None) -> tuple[ObservedSite, ...]:
    """The observed sites outside the data plate (``plate_name``), factor statements left out."""
    return tuple(
        _observed_site(s, None)
        for s in sites
        if s.observed and s.value is not None and not s.is_factor and (plate_name is None or plate_name not in s.plates)
    )
