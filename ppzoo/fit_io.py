"""A fit saved to a file and loaded back.

``Fit.save(path)`` writes it; ``ppzoo.load_fit(path, model, guide, *args, **kwargs)`` reads it.

The file is one NumPy ``.npz`` archive, read with ``allow_pickle=False``, so
loading a file runs none of its contents as code:

* ``ppzoo_fit``: JSON text: the format and its version, the ppzoo version,
  the backend, the objective's settings, the fit's record (every field of
  :class:`ppzoo.fitting.Fit` but the programs, the data, the device, the
  parameters and the PPL's state: stop reason, data plate, learning rates,
  loss trend, ...), the parameters' names with the number of arrays each
  holds, the PPL's metadata (Pyro: each parameter's constraint) and a digest
  of the data;
* ``losses``; ``param_<i>_<j>``: array ``j`` of parameter ``i`` (constrained;
  a NumPyro parameter may be a pytree of several); ``state_<i>``: the PPL's
  state (Pyro: the parameter store's unconstrained values, ``torch.nn``
  module weights included).

The programs are code, not data: ``load_fit`` takes the model and guide (and
the data) again, checks that they are of the saved fit's PPL and declare the
same parameters, and rebuilds what is not stored from them (a pytree's
structure, Pyro's constraints, the modules whose weights it copies back).
Given the same programs and data, the loaded fit draws what the saved one drew
(``to_arviz(seed=...)`` alike).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import tempfile
import warnings

import numpy as np

from ppzoo._version import __version__

__all__ = ["save_fit", "read_fit", "FORMAT", "VERSION"]

#: the ``format`` of the JSON record, and its version (a file of a later version is refused)
FORMAT = "ppzoo-fit"
VERSION = 1
_RECORD = "ppzoo_fit"
#: fields of ``Fit`` stored otherwise, or given again to ``load_fit``
_NOT_RECORDED = {
    "model",
    "guide",
    "args",
    "kwargs",
    "params",
    "losses",
    "objective",
    "device",
    "backend",
}


def save_fit(fit, path) -> None:
    """Write ``fit`` (a :class:`ppzoo.fitting.Fit`) to ``path`` (written whole or not at all)."""
    from ppzoo.backends.fit_state import fit_state

    state = fit_state(fit.backend, fit.device)
    leaves = state.flatten(fit.params)
    state_arrays, state_meta = state.export(fit)
    names = sorted(leaves)
    arrays = {"losses": np.asarray(fit.losses, dtype=np.float64)}
    for i, name in enumerate(names):
        arrays.update({f"param_{i}_{j}": np.asarray(leaf) for j, leaf in enumerate(leaves[name])})
    state_names = sorted(state_arrays)
    arrays.update(
        {f"state_{i}": np.asarray(state_arrays[name]) for i, name in enumerate(state_names)}
    )
    record = {
        "format": FORMAT,
        "version": VERSION,
        "ppzoo_version": __version__,
        "backend": fit.backend,
        "objective": _objective_settings(fit.objective),
        "record": _record(fit),
        "params": [[name, len(leaves[name])] for name in names],
        "state": state_names,
        "state_meta": state_meta,
        "data_digest": data_digest(fit.args, fit.kwargs),
    }
    arrays[_RECORD] = np.array(json.dumps(record))
    _write_atomically(path, arrays)


def read_fit(path, model, guide, args, kwargs, *, device=None, fields=frozenset(), stacklevel=3) -> dict:
    """The keyword arguments of the :class:`~ppzoo.fitting.Fit` saved at ``path`` (by ``Fit.save``),
    for ``model`` and ``guide`` on the data ``args, kwargs`` (``ppzoo.load_fit`` builds the fit).
    ``fields``: the names ``Fit`` takes; the record's other entries are left out. The checks and
    errors are those :func:`ppzoo.fitting.load_fit` documents; ``stacklevel`` points the data
    warning at its caller's caller.
    """
    from ppzoo.backends import check_guide_ppl, resolve_backend
    from ppzoo.backends.fit_state import fit_state

    arrays, record = _read(path)
    backend = record["backend"]
    args, kwargs = tuple(args), dict(kwargs)
    detected = resolve_backend(model, args, kwargs)
    if detected != backend:
        raise ValueError(
            f"{os.fspath(path)} holds a {backend} fit, but the model is a {detected} program; "
            f"load it with the {backend} model and guide it was fitted with"
        )
    check_guide_ppl(guide, backend)
    state = fit_state(backend, device)
    leaves = {
        name: [arrays[f"param_{i}_{j}"] for j in range(count)]
        for i, (name, count) in enumerate(record["params"])
    }
    _check_names(path, set(leaves), _program_params(state, model, guide, args, kwargs, backend))
    if record["data_digest"] != data_digest(args, kwargs):
        warnings.warn(
            f"the data given to load_fit differ from those {os.fspath(path)} was fitted to: its "
            "draws "
            "and weights will be of these data",
            UserWarning,
            stacklevel=stacklevel,
        )
    saved_state = {name: arrays[f"state_{i}"] for i, name in enumerate(record["state"])}
    rest = {k: _decode(v) for k, v in record["record"].items() if k in fields}
    return dict(
        model=model,
        guide=guide,
        args=args,
        kwargs=kwargs,
        backend=backend,
        objective=_objective(record["objective"]),
        params=state.unflatten(leaves, model, guide, args, kwargs),
        losses=np.asarray(arrays["losses"]),
        device=device,
        **{
            **rest,
            "_scope": state.restore(saved_state, record["state_meta"], model, guide, args, kwargs),
        },
    )


def data_digest(args, kwargs) -> str:
    """SHA-256 of the data ``(args, kwargs)``: arrays by dtype, shape and bytes, other values by
    ``repr``."""
    digest = hashlib.sha256()

    def visit(value):
        if isinstance(value, dict):
            for key in sorted(value):
                digest.update(repr(key).encode())
                visit(value[key])
        elif isinstance(value, (list, tuple)):
            digest.update(f"{type(value).__name__}{len(value)}".encode())
            for item in value:
                visit(item)
        elif hasattr(value, "shape") and hasattr(value, "dtype"):  # NumPy, torch, JAX arrays
            array = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        else:
            digest.update(repr(value).encode())

    visit([list(args), kwargs])
    return digest.hexdigest()


# -- the file --------------------------------------------------------------------
def _write_atomically(path, arrays) -> None:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".ppzoo-fit-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:  # a file object: np.savez adds no ".npz" to the name
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _read(path) -> tuple[dict, dict]:
    """``(arrays, record)`` of a saved fit; ``ValueError`` for anything else."""
    where = os.fspath(path)
    if not os.path.isfile(where):
        raise ValueError(f"{where}: no such file")
    try:
        with np.load(where, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        record = json.loads(str(arrays[_RECORD]))
    except Exception as err:  # not a zip, not .npy members, pickled members, no record, bad JSON
        raise ValueError(
            f"{where}: not a fit saved by Fit.save ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{where}: not a fit saved by Fit.save (no {FORMAT!r} record)")
    if record.get("version", 0) > VERSION:
        raise ValueError(
            f"{where}: saved by ppzoo {record.get('ppzoo_version')} in format version "
            f"{record['version']}; this ppzoo ({__version__}) reads up to version {VERSION}"
        )
    return arrays, record


def _program_params(state, model, guide, args, kwargs, backend) -> set:
    try:
        return state.param_names(model, guide, args, kwargs)
    except Exception as err:  # a hand-written guide of the other PPL fails when run
        raise ValueError(
            f"the guide could not be run as a {backend} program with the model and data given "
            f"({type(err).__name__}: {err})"
        ) from err


def _check_names(path, saved: set, programs: set) -> None:
    if saved == programs:
        return
    parts = []
    if saved - programs:
        parts.append(f"saved but not declared by the programs: {sorted(saved - programs)}")
    if programs - saved:
        parts.append(f"declared by the programs but not saved: {sorted(programs - saved)}")
    raise ValueError(
        f"the parameters of {os.fspath(path)} do not match the model's and guide's param "
        f"statements: {'; '.join(parts)}"
    )


# -- the objective -----------------------------------------------------------------
def _objective_settings(objective) -> dict:
    """The settings that rebuild ``objective`` (``IWAE`` or ``AnnealedELBO``; ``ValueError``
    otherwise)."""
    from ppzoo.inference.svi import IWAE, AnnealedELBO, LinearWarmup

    common = {
        "num_particles": objective.num_particles,
        "data_plate": objective.data_plate,
        "max_plate_nesting": objective.max_plate_nesting,
        "estimator": getattr(objective, "estimator", None),
    }
    if type(objective) is IWAE:
        return {"type": "IWAE", **common}
    if type(objective) is AnnealedELBO:
        beta = objective.beta
        if isinstance(beta, LinearWarmup):
            beta = {"LinearWarmup": {"steps": beta.steps, "final": beta.final}}
        elif not isinstance(beta, float):
            raise ValueError(
                f"cannot save a fit whose AnnealedELBO has the schedule beta={beta!r}: a function "
                "is "
                "code, not data (a number or LinearWarmup can be saved)"
            )
        return {"type": "AnnealedELBO", "beta": beta, **common}
    raise ValueError(
        f"cannot save a fit with the objective {objective!r}: Fit.save stores IWAE and AnnealedELBO"
    )


def _objective(settings: dict):
    from ppzoo.inference.svi import IWAE, AnnealedELBO, LinearWarmup

    options = {
        "data_plate": settings["data_plate"],
        "max_plate_nesting": settings["max_plate_nesting"],
    }
    if settings["type"] == "IWAE":
        return IWAE(settings["num_particles"], settings["estimator"], **options)
    beta = settings["beta"]
    beta = LinearWarmup(**beta["LinearWarmup"]) if isinstance(beta, dict) else beta
    return AnnealedELBO(beta, settings["num_particles"], estimator=settings["estimator"], **options)


# -- the record ---------------------------------------------------------------------
def _record(fit) -> dict:
    """The fit's fields other than :data:`_NOT_RECORDED` and the PPL state (``_``-prefixed),
    each as JSON."""
    out = {}
    for f in dataclasses.fields(fit):
        if f.name in _NOT_RECORDED or f.name.startswith("_"):
            continue
        try:
            out[f.name] = _encode(getattr(fit, f.name))
        except TypeError as err:
            raise TypeError(f"cannot save the fit's field {f.name!r}: {err}") from None
    return out


def _encode(value):
    """JSON for numbers, strings, lists, tuples, dicts and ppzoo's dataclasses (tagged to be
    rebuilt)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _encode(v) for k, v in value.items()}}
    if dataclasses.is_dataclass(value) and type(value).__module__.startswith("ppzoo."):
        cls = type(value)
        return {
            "__dataclass__": f"{cls.__module__}:{cls.__qualname__}",
            "fields": {
                f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init
            },
        }
    raise TypeError(f"{type(value).__name__} values cannot be stored")


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode(v) for k, v in value["__dict__"].items()}
    module, _, name = value["__dataclass__"].partition(":")
    if not module.startswith("ppzoo."):  # only ppzoo's own record types are rebuilt
        raise ValueError(
            f"a saved fit's record names the type {value['__dataclass__']!r}, which is not ppzoo's"
        )
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ValueError(
            f"a saved fit's record names {value['__dataclass__']!r}, which is not a record type"
        )
    return cls(**{k: _decode(v) for k, v in value["fields"].items()})
