"""Argument checks, one behaviour everywhere: the front door, the samplers, SVI, the zoo and the decoders.

Integers may be Python or NumPy integers (not ``bool``); numbers may be any
real scalar (Python, NumPy, 0-d arrays are not accepted). A value of the
wrong type gets a ``TypeError``, one of the right type but out of range a
``ValueError``; both messages name the argument, say what was expected and
show what was given. No framework is imported here.
"""

from __future__ import annotations

import math
import numbers

__all__ = [
    "check_count", "check_number", "check_flag", "check_seed", "check_thinning", "check_batch_size", "check_data_plate",
    "check_data_not_empty", "check_observations_finite", "nonfinite_count",
    "nonfinite_arguments", "integer_arguments", "check_model_keywords", "check_draws_fit_in_memory",
    "physical_memory", "pandas_values", "check_device", "non_array_arguments", "check_fits_on_disk", "MAX_SEED",
]

#: seeds are integers in ``[0, MAX_SEED]``: what both ``jax.random.PRNGKey`` (an int64)
#: and ``torch.Generator.manual_seed`` take
MAX_SEED = 2**63 - 1


def check_count(name: str, value, minimum: int = 1) -> int:
    """``value`` as an ``int >= minimum``.

    ``TypeError`` unless ``value`` is an integer (Python or NumPy, not ``bool``);
    ``ValueError`` if it is below ``minimum``. Both say
    ``"<name> must be an integer >= <minimum>, got <value>"``.
    """
    message = f"{name} must be an integer >= {minimum}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(message)
    if value < minimum:
        raise ValueError(message)
    return int(value)


def check_number(name: str, value, *, low: float = -math.inf, strict: bool = False, finite: bool = True) -> float:
    """``value`` as a ``float`` that is ``> low`` (``strict``) or ``>= low``, finite unless ``finite=False``.

    ``TypeError`` unless ``value`` is a real number (not ``bool``), ``ValueError``
    when out of range or not a number; the message says which range was expected.
    """
    bound = "" if low == -math.inf else (f" > {low:g}" if strict else f" >= {low:g}")
    message = f"{name} must be a {'finite ' if finite else ''}number{bound}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(message)
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)) or (value <= low if strict else value < low):
        raise ValueError(message)
    return value


def check_flag(name: str, value) -> bool:
    """``value`` itself if it is ``True`` or ``False`` (a NumPy bool too); otherwise a ``TypeError``.

    Strings and numbers are refused rather than read as truth values
    (``"no"`` would be true).
    """
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_" and type(value).__module__ == "numpy":
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def check_seed(value, name: str = "seed") -> int:
    """``value`` as an ``int`` in ``[0, MAX_SEED]``: ``TypeError`` unless an integer (Python or
    NumPy, not ``bool``), ``ValueError`` outside the range; both say
    ``"<name> must be an integer in [0, 2**63 - 1], got <value>"``."""
    message = f"{name} must be an integer in [0, 2**63 - 1], got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(message)
    if not 0 <= value <= MAX_SEED:
        raise ValueError(message)
    return int(value)


def check_device(device):
    """``device`` as given, where it can name a device on either PPL: ``None``, a string (``"cpu"``,
    ``"cuda"``, ``"cuda:1"``, ``"gpu"``) or a device object (``torch.device``, ``jax.Device``);
    the PPL's backend checks that the device exists. A bare number (torch would read ``3`` as
    ``"cuda:3"``, JAX as nothing) is a ``TypeError`` naming the string to write instead, on both."""
    if isinstance(device, numbers.Number):  # bool included
        index = device if isinstance(device, numbers.Integral) and not isinstance(device, bool) else 0
        hint = f"'cuda:{index}'"
        raise TypeError(
            f"device must be None, a device name such as 'cpu', 'cuda' or {hint}, or a torch.device / "
            f"jax.Device; got {device!r}"
        )
    if isinstance(device, str) and not device.strip():
        raise ValueError("device must be a device name such as 'cpu' or 'cuda:0', or None; got ''")
    return device


def check_thinning(value) -> int | str:
    """``value`` if it is ``"auto"``, else as an ``int >= 1``: ``TypeError`` for a value that is
    neither a string nor an integer, ``ValueError`` for another string or an integer below 1; both
    say ``'thinning must be an integer >= 1 or "auto", got <value>'``."""
    message = f'thinning must be an integer >= 1 or "auto", got {value!r}'
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(message)
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(message)
    if value < 1:
        raise ValueError(message)
    return int(value)


def check_batch_size(batch_size, num_data: int, plate) -> int:
    """``batch_size`` as an ``int`` in ``[1, num_data]`` (``num_data``: the size of the data plate
    ``plate``): the type and lower bound as :func:`check_count`, the upper bound with one message,
    ``"batch_size must be at most N=<num_data> (the size of the data plate <plate>), got <value>"``."""
    batch_size = check_count("batch_size", batch_size, 1)
    if batch_size > num_data:
        raise ValueError(
            f"batch_size must be at most N={num_data} (the size of the data plate {plate!r}), got {batch_size}"
        )
    return batch_size


def check_data_plate(data_plate, plates) -> str:
    """``data_plate`` if it names one of ``plates`` (the model's plate names): ``TypeError`` unless a
    string, ``ValueError`` naming the model's plates otherwise."""
    if not isinstance(data_plate, str):
        raise TypeError(f"data_plate must be a plate name (str), got {data_plate!r}")
    if data_plate not in plates:
        raise ValueError(f"data_plate={data_plate!r} is not a plate of the model; its plates are {sorted(plates)}")
    return data_plate


def physical_memory() -> int | None:
    """The machine's physical memory in bytes (``SC_PHYS_PAGES * SC_PAGE_SIZE``), or ``None`` where
    the system does not say (Windows, some containers)."""
    import os

    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def check_draws_fit_in_memory(num_chains: int, num_samples: int, dim: int, memory: int | None = None) -> None:
    """A ``ValueError`` before a run whose kept positions alone, ``num_chains x num_samples x dim``
    float32 values, need more than the machine's memory (``memory`` bytes, by default
    :func:`physical_memory`; no check where it is unknown): such a run would fail, or swap, only
    after its warmup."""
    memory = physical_memory() if memory is None else memory
    size = 4 * num_chains * num_samples * dim
    if memory is None or size <= memory:
        return
    raise ValueError(
        f"num_samples={num_samples:,} is too many to keep: the positions alone need num_chains x num_samples x "
        f"dimension x 4 bytes = {num_chains} x {num_samples:,} x {dim} x 4 = {size / 2**30:,.1f} GiB, and this "
        f"machine has {memory / 2**30:,.1f} GiB of memory. Keep fewer draws (thinning= keeps every k-th)"
    )


def check_fits_on_disk(needs, fewer: str = "num_samples") -> None:
    """An ``OSError`` before a run whose files need more than the free space of their folders
    (``shutil.disk_usage``; no check where it cannot say): such a run would lose its file only
    after the sampling. ``needs``: per file, in the order the run writes them, ``(option, path,
    peak, final, how, replaces)``: the option that names it, the bytes it needs while it is written
    and once written, how they were counted, and whether a file already at ``path`` is replaced
    early in the run (a checkpoint: its size then counts as free). Files on one file system count
    together: the files written before one still take their final size while it is written."""
    import os
    import shutil

    def text(size):
        for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if size >= scale:
                return f"{size / scale:,.1f} {unit}"
        return f"{size:,} bytes"

    groups = {}
    for option, path, peak, final, how, replaces in needs:
        folder = os.path.dirname(os.path.abspath(os.path.realpath(path)))
        try:
            device = os.stat(folder).st_dev
        except OSError:
            continue
        groups.setdefault(device, (folder, []))[1].append((option, path, peak, final, how, replaces))
    for folder, files in groups.values():
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            continue
        replaced = sum(os.path.getsize(p) for _, p, *_, replaces in files if replaces and os.path.isfile(p))
        needed, before = 0, 0
        for _, _, peak, final, *_ in files:
            needed, before = max(needed, before + peak), before + final
        if needed <= free + replaced:
            continue
        names = " and ".join(f"{o} {p}" for o, p, *_ in files)
        counted = "; ".join(f"{how} = {text(peak)}" for _, _, peak, _, how, _ in files)
        options = " or ".join(o for o, *_ in files)
        raise OSError(
            f"{names}: the run's files need about {text(needed)} ({counted}; with the sample stats, the "
            f"observed data and the file's layout), and {folder} has {text(free)} free"
            + (f" (besides the {text(replaced)} of the checkpoint file the run replaces)" if replaced else "")
            + f". Free some space, give {options} a file on another disk, or keep fewer draws ({fewer})"
        )


def nonfinite_count(value):
    """``(number of NaN / infinite entries, size)`` of a floating array (NumPy, JAX or torch), else ``None``."""
    import numpy as np

    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        return None
    if type(value).__module__.startswith("torch"):
        if not value.dtype.is_floating_point:
            return None
        value = value.detach().cpu().double().numpy()
    try:
        value = np.asarray(value)
    except Exception:  # noqa: BLE001 - not an array we can read
        return None
    if not np.issubdtype(value.dtype, np.floating) and not np.issubdtype(value.dtype, np.complexfloating):
        return None
    bad = int(np.sum(~np.isfinite(value)))
    return (bad, int(value.size)) if bad else None


def check_observations_finite(observed, masks=None) -> None:
    """A ``ValueError`` naming the first observed site of ``{name: value}`` that holds NaN or
    infinite values, with their count: a fit or a chain would otherwise stop at its first step,
    or fit nothing. Where every such value lies where the site's mask (``masks[name]``, a
    ``handlers.mask`` or NumPyro's ``obs_mask``) is False, the message says why a mask is not
    enough: the gradient of each entry's log-density is computed and then multiplied by zero, and
    zero times NaN is NaN."""
    import numpy as np

    for name, value in observed.items():
        found = nonfinite_count(value)
        mask = (masks or {}).get(name)
        if found and mask is not None:
            try:
                values = np.asarray(value)
                kept = np.broadcast_to(np.asarray(mask, dtype=bool), values.shape[: np.ndim(mask)]
                                       if np.ndim(mask) <= values.ndim else np.shape(mask))
                kept = kept.reshape(kept.shape + (1,) * (values.ndim - kept.ndim))
                masked_only = not np.any(~np.isfinite(values) & kept)
            except (TypeError, ValueError):
                masked_only = False
            if masked_only:
                raise ValueError(
                    f"observed site {name!r} contains NaN or infinite values ({found[0]} of {found[1]}), all where "
                    "its mask is False. A mask leaves them out of the likelihood but not out of its gradient: "
                    "ppzoo differentiates the model's log-density at every entry and the mask multiplies it by zero, and zero "
                    f"times NaN is NaN. Put a finite placeholder in the masked entries (e.g. "
                    f"numpy.nan_to_num({name}) or a value in the distribution's support); the mask keeps them out"
                )
        if found:
            raise ValueError(
                f"observed site {name!r} contains NaN or infinite values ({found[0]} of {found[1]}); ppzoo "
                "expects finite observations (mask or drop missing data first)"
            )


def nonfinite_arguments(program, args, kwargs) -> list[str]:
    """The array arguments of ``program(*args, **kwargs)`` (named from its signature) that hold NaN
    or infinite values, each as ``"<name> contains NaN or infinite values (<k> of <n>)"``: said
    where the program fails, or its observations' log-probability is not finite, because of them."""
    names = _parameter_names(program)
    found = []
    for i, value in enumerate(args):
        count = nonfinite_count(value)
        if count:
            name = names[i] if i < len(names) else f"positional argument {i}"
            found.append(f"{name} contains NaN or infinite values ({count[0]} of {count[1]})")
    for name, value in kwargs.items():
        count = nonfinite_count(value)
        if count:
            found.append(f"{name} contains NaN or infinite values ({count[0]} of {count[1]})")
    return found


def integer_arguments(program, args, kwargs) -> list[str]:
    """The array arguments of ``program(*args, **kwargs)`` that hold integers or booleans, each as
    ``"<name> holds <dtype> values: pass floats where the model computes with it"``: said where a
    program fails on a type (torch does not mix integer and floating tensors in a product)."""
    names = _parameter_names(program)
    given = [(names[i] if i < len(names) else f"positional argument {i}", v) for i, v in enumerate(args)]
    found = []
    for name, value in given + list(kwargs.items()):
        dtype = getattr(value, "dtype", None)
        if dtype is None or not hasattr(value, "shape"):
            continue
        text = str(dtype).replace("torch.", "")
        if text.startswith(("int", "uint", "bool")):
            found.append(f"{name} holds {text} values: pass floats where the model computes with it")
    return found


def non_array_arguments(program, args, kwargs, attribute: str, of_type: str) -> list[str]:
    """The arguments of ``program(*args, **kwargs)`` of type ``of_type`` (as Python names it:
    ``"list"``, ``"float"``, ``"NoneType"``) that are not arrays, each as ``"<name> is <type>, not
    an array"``: said where the program failed asking such a value for ``attribute`` (``.shape``)."""
    names = _parameter_names(program)
    given = [(names[i] if i < len(names) else f"positional argument {i}", v) for i, v in enumerate(args)]
    found = []
    for name, value in given + list(kwargs.items()):
        if type(value).__name__ != of_type:
            continue
        if value is None or isinstance(value, (list, tuple, int, float, complex)):
            kind = "None" if value is None else type(value).__name__
            found.append(f"{name} is {kind}, not an array: the program reads its .{attribute}")
    return found


def _parameter_names(program) -> list[str]:
    import inspect

    try:
        return list(inspect.signature(program).parameters)
    except (TypeError, ValueError):
        return []


def pandas_values(args, kwargs):
    """``(args, kwargs)`` with each pandas ``Series`` / ``DataFrame`` argument replaced by its values
    (``.to_numpy()``), which both PPLs compute with as they would the NumPy array."""

    def values(value):
        if type(value).__module__.startswith("pandas") and hasattr(value, "to_numpy"):
            return value.to_numpy()
        return value

    return tuple(values(v) for v in args), {k: values(v) for k, v in kwargs.items()}


def check_data_not_empty(program, args, kwargs) -> None:
    """A ``ValueError`` naming the first argument of ``program(*args, **kwargs)`` that is an array with
    no rows (a leading dimension of 0): a plate of size 0 would otherwise fail deep in the PPL; and
    a ``TypeError`` naming the first NumPy array of objects or strings, which neither PPL can
    compute with (it would otherwise fail inside the tracer, far from the argument)."""
    names = _parameter_names(program)
    given = [(names[i] if i < len(names) else f"positional argument {i}", v) for i, v in enumerate(args)]
    for name, value in given + list(kwargs.items()):
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape) >= 1 and shape[0] == 0:
            raise ValueError(f"{name} has no rows (shape {tuple(shape)}): there must be at least one datum")
        kind = getattr(getattr(value, "dtype", None), "kind", None)
        if type(value).__module__ == "numpy" and kind in ("O", "U", "S"):
            raise TypeError(
                f"{name} is an array of dtype {value.dtype}: pass numbers (e.g. numpy.asarray({name}, dtype=float))"
            )


def keyword_parameters(fn):
    """The parameters of ``fn``'s signature (``inspect.Signature.parameters``), or ``None`` where they
    do not bound its keywords: no signature to read, or a ``**kwargs`` that takes any keyword."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return params


def check_model_keywords(model, kwargs, function) -> None:
    """A ``TypeError`` for a keyword that is neither a parameter of ``model`` (unless it takes
    ``**kwargs``) nor an option of ``function`` (the ppzoo function it was passed to, whose own
    options it did not match), with the closest name among both: ``num_sample=10`` would
    otherwise reach the model and fail there."""
    import difflib
    import inspect

    params = keyword_parameters(model)
    if params is None:
        return
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    options = [n for n, p in inspect.signature(function).parameters.items()
               if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for name in kwargs:
        if name not in accepted:
            close = difflib.get_close_matches(name, options + accepted, n=1)
            model_name = getattr(model, "__name__", type(model).__name__)
            raise TypeError(
                f"unknown keyword {name!r}: it is neither an option of ppzoo.{function.__name__} nor a parameter "
                f"of model {model_name!r} {tuple(accepted)}" + (f"; did you mean {close[0]!r}?" if close else "")
            )
