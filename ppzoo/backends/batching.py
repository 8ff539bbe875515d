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

import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

__all__ = ["BatchArgs", "per_datum_arguments", "plate_sizes", "take_batch", "choose_batch_args"]


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


def _leading(value):
    shape = getattr(value, "shape", None)
    return shape[0] if shape is not None and len(shape) >= 1 else None


def check_observed_lengths(model, args: Sequence, kwargs: dict, observed: Sequence[str], plate: str, num_data: int) -> None:
    """An argument named as an observed site of the data plate (``y=`` for ``obs=y``, by keyword or
    by the position of the model's parameter of that name) must have N rows: a shorter one indexed
    by the plate's indices would be padded by JAX's clamped indexing, a longer one cut."""
    import inspect

    try:
        names = list(inspect.signature(model).parameters)
    except (TypeError, ValueError):
        names = []
    given = {names[i]: a for i, a in enumerate(args) if i < len(names)} | dict(kwargs)
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
    if batch_args is not None:
        return _given(batch_args, args, kwargs, num_data, plate)
    batch = int(probe.shape[0])
    run = _quietly(run)
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
