"""Minibatches of a program as its author wrote it: which arguments are per-datum, and their slices.

Two ways of writing the data plate are common, and ppzoo minibatches both:

* **the subsampling idiom** both PPLs document: ``plate(name, N,
  subsample_size=None)`` (or ``numpyro.subsample``), the data indexed by the
  plate's indices. ppzoo fixes the plate's indices to the minibatch and
  leaves the arguments whole;
* **as written for NUTS**: ``with plate(name, N): sample(..., obs=y)``, the
  data used whole. ppzoo passes the model the minibatch's rows of every
  *per-datum argument* (a positional or keyword array argument whose leading
  axis has the plate's size N) and fixes the plate's indices as well.

Either way the PPL scales the plate's sites by the size it sees over the
number of indices, and the backend divides that scale out again
(:func:`ppzoo.backends.sites.log_joint`), so the potential applies ``N / B``
once whichever way the plate was written.

:func:`choose_batch_args` tells the two apart by running the program once on
a small batch each way. ``batch_args=`` (argument positions and keyword
names) says which arguments are per-datum where the rule would guess wrong,
e.g. a per-group array that happens to have N entries.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from ppzoo.backends.layout import PlateRecord, model_name, reads_data_elsewhere

__all__ = ["BatchArgs", "per_datum_arguments", "plate_sizes", "take_batch", "choose_batch_args", "check_data_reading",
           "check_indexed_lengths", "check_point", "plan_minibatches", "indexed_arguments", "plan_fit_minibatches",
           "SVIProbe", "NO_PARAMS", "NO_BATCH_ARGS", "UNMOVED_STEPS", "unmoved", "check_real_arguments", "unobserved_data"]


class BatchArgs(NamedTuple):
    """The per-datum arguments: positions in ``args`` and names in ``kwargs`` (both empty: the
    program indexes its data itself, by the plate's indices)."""

    positions: tuple[int, ...] = ()
    names: tuple[str, ...] = ()

    def __bool__(self):
        return bool(self.positions or self.names)

    def describe(self) -> str:
        parts = [f"argument {i}" for i in self.positions] + [f"{k}=" for k in self.names]
        return ", ".join(parts) if parts else "none"


#: no per-datum arguments: the program indexes its data itself
NO_BATCH_ARGS = BatchArgs()


def _leading(value):
    shape = getattr(value, "shape", None)
    return shape[0] if shape is not None and len(shape) >= 1 else None


def _named_arguments(model, args: Sequence, kwargs: dict) -> dict:
    """``{name: value}`` of the arguments: positional ones by the model's parameter names (``argument
    i`` where the signature does not say), then the keyword ones."""
    import inspect

    try:
        names = list(inspect.signature(model).parameters)
    except (TypeError, ValueError):
        names = []
    return {(names[i] if i < len(names) else f"argument {i}"): a for i, a in enumerate(args)} | dict(kwargs)


def check_real_arguments(model, args: Sequence, kwargs: dict) -> None:
    """A ``TypeError`` naming the first argument that is an array of complex numbers: neither PPL's
    distributions take them, and they fail deep inside its gradient or its matrix products."""
    for name, value in _named_arguments(model, args, kwargs).items():
        dtype = getattr(value, "dtype", None)
        if dtype is not None and getattr(value, "ndim", 0) >= 0 and "complex" in str(dtype):
            raise TypeError(f"{name} is an array of complex numbers (dtype {dtype}): pass real numbers")


def unobserved_data(model, args: Sequence, kwargs: dict, latent: Sequence[str], observed: Sequence[str]) -> list[str]:
    """The latent sites named after a parameter of ``model`` whose value is ``None`` (given, or its
    default), in a program with no observed site: ``model(x, y=None)`` run without ``y`` samples
    ``y`` as a latent, and the posterior is the prior. Empty otherwise."""
    if observed:
        return []
    return sorted(set(latent) & none_arguments(model, args, kwargs))


def none_arguments(model, args: Sequence, kwargs: dict) -> set:
    """The names of the parameters of ``model`` whose value is ``None``, given or by default."""
    import inspect

    try:
        bound = inspect.signature(model).bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        return set()
    bound.apply_defaults()
    return {name for name, value in bound.arguments.items() if value is None}


def check_observed_lengths(model, args: Sequence, kwargs: dict, observed: Sequence[str], plate: str, num_data: int) -> None:
    """An argument named as an observed site of the data plate (``y=`` for ``obs=y``, by keyword or
    by the position of the model's parameter of that name) must have N rows: a shorter one indexed
    by the plate's indices would be padded by JAX's clamped indexing, a longer one cut."""
    given = _named_arguments(model, args, kwargs)
    for name in observed:
        rows = _leading(given.get(name))
        if rows is not None and rows != num_data:
            raise ValueError(
                f"{name} has {rows} rows but the data plate {plate!r} has N={num_data}: every per-datum "
                f"argument must have N rows (the observed site {name!r} is in that plate)"
            )


def per_datum_arguments(args: Sequence, kwargs: dict, num_data: int) -> BatchArgs:
    """The array arguments (top level) whose leading axis has ``num_data`` entries."""
    positions = tuple(i for i, a in enumerate(args) if _leading(a) == num_data)
    names = tuple(k for k, v in kwargs.items() if _leading(v) == num_data)
    return BatchArgs(positions, names)


def plate_sizes(site: dict, plate_dim: int) -> tuple[int, int]:
    """``(distribution's size, value's size)`` along the batch dim ``plate_dim`` (negative) of a traced
    sample site (a PPL's trace entry); a dim the value lacks counts as size 1."""
    fn, value = site["fn"], site["value"]
    batch_shape = tuple(fn.batch_shape)
    value_batch = tuple(value.shape)[: len(value.shape) - fn.event_dim]
    size = lambda shape: shape[plate_dim] if len(shape) >= -plate_dim else 1  # noqa: E731
    return size(batch_shape), size(value_batch)


def take_batch(args: tuple, kwargs: dict, batch_args: BatchArgs, idx):
    """``(args, kwargs)`` with the per-datum arguments replaced by their rows ``idx`` (``(B,)``
    integer indices, an array of the arguments' own kind)."""
    if not batch_args:
        return args, kwargs
    args = tuple(a[idx] if i in batch_args.positions else a for i, a in enumerate(args))
    kwargs = {k: (v[idx] if k in batch_args.names else v) for k, v in kwargs.items()}
    return args, kwargs


def _given(batch_args, args, kwargs, num_data, plate) -> BatchArgs:
    if isinstance(batch_args, (str, int)):
        batch_args = [batch_args]
    try:
        items = list(batch_args)
    except TypeError:
        raise TypeError(
            f"batch_args must name the per-datum arguments: positions (int) and keyword names (str), got {batch_args!r}"
        ) from None
    positions, names = [], []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise TypeError(f"batch_args entries are argument positions (int) or keyword names (str), got {item!r}")
        if isinstance(item, int):
            if not 0 <= item < len(args):
                raise ValueError(f"batch_args names argument {item}, but the model gets {len(args)} positional arguments")
            value, label = args[item], f"argument {item}"
            positions.append(item)
        else:
            if item not in kwargs:
                raise ValueError(f"batch_args names {item!r}, which is not among the keyword arguments {sorted(kwargs)}")
            value, label = kwargs[item], f"{item}="
            names.append(item)
        rows = _leading(value)
        if rows != num_data:
            what = "is not an array" if rows is None else f"has {rows} rows"
            raise ValueError(
                f"batch_args names {label}, which {what}; a per-datum argument needs N={num_data} rows "
                f"(the size of plate {plate!r})"
            )
    return BatchArgs(tuple(positions), tuple(names))


def choose_batch_args(run: Callable, args: tuple, kwargs: dict, *, plate: str, num_data: int, probe,
                      batch_args=None, model: str = "the model") -> BatchArgs:
    """Which arguments ``run`` must get sliced to a minibatch.

    ``run(args, kwargs, idx)`` runs the program with the data plate's indices
    fixed to ``idx`` and returns ``{observed site in the data plate: (its
    distribution's size, its value's size) along the plate}``; ``probe`` are a
    few indices (fewer than ``num_data``). An observed value that keeps all N
    rows while the plate holds a minibatch (a distribution broadcast against
    whole data) counts as not minibatched. With
    ``batch_args`` given, it is checked and returned. Otherwise: the program
    is first run with its arguments whole; if that works and its data sites
    have the batch's size, it indexes its own data (the subsampling idiom:
    nothing to slice). Else it is run with every per-datum argument sliced;
    if that works, those are the batch arguments. If neither works a
    ``ValueError`` says what was tried and how to say it.
    """
    batch = int(probe.shape[0])
    run = _quietly(run)
    if batch_args is not None:
        given = _given(batch_args, args, kwargs, num_data, plate)
        _check_given(run, given, args, kwargs, probe, batch, plate, num_data, model)
        return given
    try:
        sizes = run(args, kwargs, probe)
    except Exception as err:  # noqa: BLE001 - a program written for whole data fails here; it is tried sliced next
        whole_error = err
    else:
        if _minibatched(sizes, batch):
            return BatchArgs()
        whole_error = None
    candidates = per_datum_arguments(args, kwargs, num_data)
    if not candidates:
        raise ValueError(
            f"model {model!r} uses the data plate {plate!r} (N={num_data}) without indexing its data by the plate's "
            "indices, and none of its array arguments has N rows to take a minibatch from. Pass the data as "
            f"arguments with N rows, or index them with the plate's indices "
            f"(with plate({plate!r}, N, subsample_size=None) as idx: ... x[idx])"
            + (f"; running it on a minibatch raised {type(whole_error).__name__}: {_first_line(whole_error)}" if whole_error else "")
        )
    sliced_args, sliced_kwargs = take_batch(args, kwargs, candidates, probe)
    try:
        sizes = run(sliced_args, sliced_kwargs, probe)
    except Exception as err:  # noqa: BLE001 - reported with what was tried
        raise ValueError(
            f"model {model!r}: ppzoo takes minibatches of plate {plate!r} (N={num_data}) by slicing the arguments "
            f"with N rows ({candidates.describe()}), and the model then raised {type(err).__name__}: "
            f"{_first_line(err).rstrip('.')}; say which arguments are per-datum with batch_args=[...] (positions "
            "and keyword names), or index the data by the plate's indices"
        ) from err
    if not _minibatched(sizes, batch):
        raise ValueError(
            f"model {model!r}: with its per-datum arguments ({candidates.describe()}) sliced to a minibatch of "
            f"{batch}, the observed sites in plate {plate!r} still have sizes {sizes}; say which arguments are "
            "per-datum with batch_args=[...]"
        )
    return candidates


def _check_given(run, given: BatchArgs, args, kwargs, probe, batch, plate, num_data, model) -> None:
    """The arguments named by ``batch_args=``, sliced to a few rows, must minibatch the data plate's
    observed sites: a per-datum argument left out would be paired, whole, with another's rows."""
    sliced_args, sliced_kwargs = take_batch(args, kwargs, given, probe)
    try:
        sizes = run(sliced_args, sliced_kwargs, probe)
    except Exception as err:  # noqa: BLE001 - reported with what was tried
        raise ValueError(
            f"batch_args: with {given.describe()} sliced to a minibatch of {batch} of the N={num_data} rows of plate "
            f"{plate!r}, model {model!r} raised {type(err).__name__}: {_first_line(err).rstrip('.')}; batch_args must "
            "name every per-datum argument (the data and the covariates with N rows)"
        ) from err
    if not _minibatched(sizes, batch):
        raise ValueError(
            f"batch_args: with {given.describe()} sliced to a minibatch of {batch} of the N={num_data} rows of plate "
            f"{plate!r}, the observed sites in it have sizes {sizes} (distribution, value) rather than {batch}; "
            "batch_args must name every per-datum argument (the data and the covariates with N rows)"
        )


def _quietly(run):
    """``run`` with warnings silenced: a probe on a few indices is not the user's run (a plate with its own
    ``subsample_size`` warns that the indices differ from it)."""

    def quiet(*args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return run(*args)

    return quiet


def _minibatched(sizes: dict, batch: int) -> bool:
    return all(size == batch for pair in sizes.values() for size in pair)


def _first_line(err) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


# -- does the program read its data beyond the rows it is given? ----------------------------------
#: two runs' numbers count as the same within these (float32 rounding of one computation done on
#: arrays of different lengths: a matrix product over 2 rows or over N); what a statistic of the
#: data changes (``1 / sqrt(n)``, a mean over 2 rows against N) is orders of magnitude larger
SAME_RTOL, SAME_ATOL = 1e-4, 1e-4


def check_data_reading(run: Callable, view: Callable, args: tuple, kwargs: dict, batch_args: BatchArgs, *,
                       plate: str, num_data: int, all_rows, probes: Sequence, narrow: bool,
                       model: str = "the model") -> tuple[BatchArgs, tuple[str, ...]]:
    """Whether the program reads its data beyond the rows it is given, and which arguments to slice.

    ``view(args, kwargs, idx)`` runs the program at fixed latent values with the data plate's
    indices fixed to ``idx`` and returns its :class:`~.sites.ProgramView`; ``run`` is
    :func:`choose_batch_args`'s. The program runs once with its arguments whole on all N indices
    (``all_rows``), and once per probe in ``probes`` (a few indices each, different rows) with
    ``batch_args`` sliced to them. A program that uses only the rows it is given shows the same
    sites outside the data plate (plate sizes, distribution parameters, scales, shapes,
    deterministic values) and the same log-likelihood of the same rows in all of them; a program
    that reads its data elsewhere does not (``n = x.shape[0]`` in a prior, a group count
    ``g.max() + 1``, a standardisation inside the model, a second data set of N entries in another
    plate), and a minibatch would change its posterior.

    A scale the program sets on its likelihood itself (an ``N / B`` of its own) raises a
    ``ValueError`` (:func:`_refuse_own_scale`). With ``narrow`` (``batch_args`` chosen by the rule,
    not named by the user), an argument whose slicing makes the runs differ, and without which
    the rest still minibatch the data plate, is left whole (a data set of N entries observed in
    another plate). Returns the arguments to slice and what still differs (empty: the program
    reads only the rows it is given).
    """
    run, view = _quietly(run), _quietly(view)
    try:
        whole = view(args, kwargs, all_rows)
    except Exception:  # noqa: BLE001 - the backend's own trace ran; one that fails at other latent values is not checked
        return batch_args, ()

    def attempt(chosen, check_scale=False):
        return _differences(run, view, whole, args, kwargs, chosen, probes, plate, num_data, model, check_scale)

    chosen, found = batch_args, attempt(batch_args, check_scale=True) or []
    while found and narrow:
        better = _fewer_differences(attempt, chosen, found)
        if better is None:
            break
        chosen, found = better
    return chosen, tuple(found)


def _differences(run, view, whole, args, kwargs, chosen, probes, plate, num_data, model, check_scale) -> list | None:
    """What differs between the run on all the data (``whole``) and the runs on each probe with
    ``chosen`` sliced, as phrases; ``None`` where slicing ``chosen`` alone does not minibatch the data
    plate's sites (or fails), so it is no way to take minibatches."""
    found = []
    for idx in probes:
        part_args, part_kwargs = take_batch(args, kwargs, chosen, idx)
        rows = _numpy(idx)
        try:
            if chosen and not _minibatched(run(part_args, part_kwargs, idx), len(rows)):
                return None
        except Exception:  # noqa: BLE001 - not a way to slice this program
            return None
        try:
            part = view(part_args, part_kwargs, idx)
        except Exception as err:  # noqa: BLE001 - a program that runs on all its rows but not on a few reads them all
            found.append(f"its run on rows {rows.tolist()} ({type(err).__name__}: {_first_line(err)})")
            continue
        if check_scale:
            _refuse_own_scale(whole, part, rows, plate, num_data, len(rows), model)
        found += [d for d in _compare(whole, part, rows) if d not in found]
    return found


def _fewer_differences(attempt, chosen: BatchArgs, found: list):
    """``(chosen less one argument, its differences)`` for the first argument whose leaving whole
    still minibatches the data plate and leaves fewer differences; ``None`` if none does."""
    members = [(i, None) for i in chosen.positions] + [(None, k) for k in chosen.names]
    for position, name in members:
        trial = BatchArgs(tuple(i for i in chosen.positions if i != position),
                          tuple(k for k in chosen.names if k != name))
        if not trial:
            continue
        got = attempt(trial)
        if got is not None and len(got) < len(found):
            return trial, got
    return None


def _compare(whole, part, rows) -> list[str]:
    """Phrases for what differs between two :class:`~.sites.ProgramView`: a site or plate outside
    the data plate with something changed, and a data-plate site whose log-likelihood of the rows
    ``rows`` is not the same in the run on all the data (``whole``) and the run on those rows."""
    found = []
    for key in sorted(whole.outside.keys() | part.outside.keys()):
        a, b = whole.outside.get(key), part.outside.get(key)
        if a is None or b is None:
            found.append(f"{key} (it is in one of the runs only)")
            continue
        changed = sorted(what for what in a.keys() | b.keys() if not _same(a.get(what), b.get(what)))
        if changed:
            found.append(f"{key} ({', '.join(changed)})")
    for name, per_datum in whole.per_datum.items():
        if name in part.per_datum and (len(per_datum) <= rows.max() or not _same(per_datum[rows], part.per_datum[name])):
            found.append(f"site {name!r} (its log-likelihood of the same data)")
    return found


def _refuse_own_scale(whole, part, rows, plate, num_data, batch, model) -> None:
    """A ``ValueError`` where the program scales its likelihood by the rows it is given: a data-plate
    site whose own scale (beyond the one the plate applies) changes with them (``scale=N /
    x.shape[0]`` around the plate, the idiom of some SG-MCMC tutorials), or a site outside the plate
    whose scale changes with them. A scale that does not (a tempered likelihood, per-datum weights
    sliced with the data) is the program's own and stays."""
    scaled = {}
    for name, value in part.own_scale.items():
        full = whole.own_scale.get(name)
        full = full if full is None or np.ndim(full) == 0 or np.shape(full)[0] != num_data else np.asarray(full)[rows]
        if not _same(value, full if full is not None else np.ones_like(value)):
            scaled[name] = value
    for key in whole.outside.keys() & part.outside.keys():
        if not _same(whole.outside[key].get("scale"), part.outside[key].get("scale")):
            scaled[key.removeprefix("site ").strip("'")] = part.outside[key]["scale"]
    if not scaled:
        return
    name, value = next(iter(scaled.items()))
    value = np.asarray(value)
    shown = f"{float(value):.4g}" if value.size == 1 else f"an array of weights of shape {value.shape}"
    raise ValueError(
        f"model {model!r} scales the log-probability of {sorted(scaled)} itself (site {name!r}: by {shown} when "
        f"given {batch} of the N={num_data} rows of plate {plate!r}), with numpyro.handlers.scale or "
        "pyro.poutine.scale; ppzoo scales the likelihood by N/B itself, and a scale of the program's own would "
        "be applied on top of it: remove the scale from the model and pass it all the data"
    )


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return bool(np.allclose(a, b, rtol=SAME_RTOL, atol=SAME_ATOL, equal_nan=True))
    return bool(np.array_equal(a, b))


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def indexed_arguments(model, args: tuple, kwargs: dict, message: str) -> list[str]:
    """Notes naming the arguments an index error (torch's ``index 150 is out of bounds for dimension
    0 with size 150``) may be about: those with that many rows, too few for the indices used."""
    found = re.search(r"with size (\d+)", message)
    if found is None:
        return []
    length = int(found.group(1))
    return [f"argument {name!r} has {length} rows: an argument indexed by a plate's indices needs one row per index"
            for name, value in _named_arguments(model, args, kwargs).items() if _leading(value) == length]


def check_indexed_lengths(indexed_past: Callable, model, args: tuple, kwargs: dict, *, plate: str, num_data: int,
                          last_rows) -> None:
    """Every argument the program indexes with the data plate's indices must have N rows.

    ``indexed_past(args, kwargs, idx)`` runs the program with the plate's indices fixed to ``idx``
    and returns the length of an array it indexed past its end (``None`` if none); ``last_rows``
    holds the plate's last index, N - 1. JAX clamps such an index (``t[idx]``, ``t`` of 150 rows in
    a plate of 200, reads row 149 for rows 150-199), so the program would run on wrong data; the
    ``ValueError`` names the arguments of that length, their length and the plate's size.
    """
    length = _quietly(indexed_past)(args, kwargs, last_rows)
    if length is None:
        return
    named = [repr(name) for name, value in _named_arguments(model, args, kwargs).items() if _leading(value) == length]
    what = f"argument {' or '.join(named)}" if named else f"an array of {length} rows"
    raise ValueError(
        f"model {model_name(model)!r} indexes {what} with the indices of the data plate {plate!r}, but it has "
        f"{length} rows and the plate N={num_data}: index {num_data - 1} is past its end. Every argument indexed "
        "by the plate's indices must have N rows"
    )


def check_point(dim: int) -> np.ndarray:
    """The unconstrained latent values ``(D,)`` the runs of :func:`check_data_reading` are made at:
    distinct and away from zero, so that data reach every site (at ``w = 0`` a regression's
    ``x @ w`` would hide a standardised ``x``)."""
    return 0.3 + 0.5 * np.sin(np.arange(dim) + 1.0)


def plan_minibatches(run: Callable, view: Callable, indexed_past: Callable, model, args: tuple, kwargs: dict, *,
                     plate: str, num_data: int, arange: Callable, batch_args=None) -> tuple[BatchArgs, tuple[str, ...], str]:
    """How to take minibatches of the data plate ``plate`` (N = ``num_data`` > 1) of a program:
    ``(the arguments to slice, what changed when the program was given a few rows, how it was
    given them)``; the second is empty for a program that reads only the rows it is given.

    :func:`choose_batch_args` picks the arguments (``run``); a program that indexes its data itself
    has its indexed arguments' lengths checked (:func:`check_indexed_lengths`, ``indexed_past``);
    then :func:`check_data_reading` (``view``) compares runs on all the data and on two probes
    of ``k = min(2, N - 1)`` rows, the first ``k`` and the last ``k`` (``arange(start, stop,
    step)``: the PPL's index array).
    """
    name, k = model_name(model), min(2, num_data - 1)
    chosen = choose_batch_args(run, args, kwargs, plate=plate, num_data=num_data, probe=arange(0, k, 1),
                               batch_args=batch_args, model=name)
    if not chosen:
        check_indexed_lengths(indexed_past, model, args, kwargs, plate=plate, num_data=num_data,
                              last_rows=arange(0, num_data, num_data - 1))
    probes = (arange(0, k, 1), arange(num_data - 1, num_data - 1 - k, -1))
    chosen, findings = check_data_reading(run, view, args, kwargs, chosen, plate=plate, num_data=num_data,
                                          all_rows=arange(0, num_data, 1), probes=probes, narrow=batch_args is None,
                                          model=name)
    how = (f"given {k} of its N={num_data} rows (its per-datum arguments, {chosen.describe()}, sliced to them)"
           if chosen else f"given {k} of its N={num_data} rows (the plate's indices fixed to them)")
    return chosen, findings, how


# -- ppzoo.fit: the same minibatches for SVI ------------------------------------------------------
#: steps an optimiser takes on a throwaway parameter before a fit, to see that it moves it
UNMOVED_STEPS = 3


def unmoved(name: str, example: str) -> str:
    """The message for an optimiser that leaves a parameter where it is (a learning rate of 0): the
    fit would return the guide's initial values, with a loss that looks levelled off."""
    return (f"optimizer {name} leaves the parameters where they are (a test parameter with gradient 1 did not move in "
            f"{UNMOVED_STEPS} steps): is its learning rate 0? A learning rate is a positive number, e.g. {example}")


#: a guide and model with no param statement have nothing to fit
NO_PARAMS = ("guide: neither the guide nor the model has a param statement, so there is nothing to fit (the result "
             "would be the guide as written); give the guide's distributions parameters (numpyro.param / "
             "pyro.param), or use an autoguide such as AutoNormal(model)")

class SVIProbe(NamedTuple):
    """What :func:`plan_fit_minibatches` needs of a PPL, for a model and guide of it.

    ``run``, ``view``, ``indexed_past``: as :func:`plan_minibatches`' (the model alone, its latents
    at fixed values, its parameters at their initial values); ``param_shapes(program, args,
    kwargs)``: ``{name: shape}`` of the ``param`` statements of one run of ``program`` (the
    model or the guide) with those arguments, the user's state (Pyro's parameter store, the
    random streams) left as it was; ``local_latents``: the model's latent sites in the data plate;
    ``autoguide``: the guide is one of the PPL's autoguides (its parameters are shaped by the
    arguments of its first call); ``own_subsample``: the subsample size the data plate sets itself
    (``None`` if none)."""

    run: Callable
    view: Callable
    indexed_past: Callable
    param_shapes: Callable
    local_latents: tuple
    autoguide: bool
    own_subsample: int | None


def plan_fit_minibatches(probe: SVIProbe, model, guide, args: tuple, kwargs: dict, *, plate: str, num_data: int,
                         arange: Callable, batch_args=None) -> tuple[BatchArgs, bool]:
    """How ``ppzoo.fit(..., batch_size=B)`` takes minibatches of the data plate: ``(the arguments to
    slice, whether the fit runs full-batch instead)``, as ``ppzoo.sample`` does
    (:func:`plan_minibatches`; a program that reads its data beyond the rows it is given runs
    full-batch with a warning, or is refused, :func:`~.layout.reads_data_elsewhere`).

    Where the arguments are sliced, a ``param`` statement whose shape follows them (a per-datum
    parameter ``param("z_loc", zeros(x.shape[0]))`` would hold B rows that stand for different data
    at every step), or an autoguide of a model with latents in the data plate (whose per-datum
    parameters are made from the arguments of its first call), is refused with a ``ValueError``.
    """
    if num_data <= 1 or probe.own_subsample is not None:  # a plate that subsamples itself indexes its data
        return BatchArgs(), False
    chosen, findings, how = plan_minibatches(probe.run, probe.view, probe.indexed_past, model, args, kwargs, plate=plate,
                                             num_data=num_data, arange=arange, batch_args=batch_args)
    if findings:
        reads_data_elsewhere(PlateRecord(plate, num_data, probe.own_subsample), model_name(model), findings, how)
        return BatchArgs(), True
    if not chosen:
        return chosen, False
    idiom = (f"index the data by the plate's indices (with plate({plate!r}, N, subsample_size=B) as idx: ... x[idx]), "
             "and the per-datum parameters as well, as the subsampling idiom does")
    if probe.local_latents and probe.autoguide:
        raise ValueError(
            f"batch_size: model {model_name(model)!r} has latent site(s) {sorted(probe.local_latents)} in the data "
            f"plate {plate!r} and uses its data whole, so ppzoo would take minibatches by slicing its arguments with "
            f"N={num_data} rows ({chosen.describe()}); the autoguide {type(guide).__name__} would then make its "
            f"per-datum parameters with B rows, the same for every minibatch. Fit with batch_size=None, or {idiom}"
        )
    k = min(2, num_data - 1)
    part_args, part_kwargs = take_batch(args, kwargs, chosen, arange(0, k, 1))
    # an autoguide is set up on its first call (which it has had, on all the data): it is not run again here
    for role, program in (("model", model),) + ((("guide", guide),) if not probe.autoguide else ()):
        try:
            whole = probe.param_shapes(program, args, kwargs)
            part = probe.param_shapes(program, part_args, part_kwargs)
        except Exception:  # noqa: BLE001 - a program that cannot run here fails, with its own message, when fitted
            continue
        changed = sorted(n for n in whole.keys() & part.keys() if tuple(whole[n]) != tuple(part[n]))
        if changed:
            name = changed[0]
            raise ValueError(
                f"batch_size: the {role}'s parameter(s) {changed} take their shape from the data ({name!r} has "
                f"shape {tuple(whole[name])} on all N={num_data} rows, {tuple(part[name])} on {k}); ppzoo takes "
                f"minibatches of plate {plate!r} by slicing the arguments with N rows ({chosen.describe()}), so a "
                f"per-datum parameter would hold B rows that stand for different data at every step. Fit with "
                f"batch_size=None, or {idiom}"
            )
    return chosen, False
