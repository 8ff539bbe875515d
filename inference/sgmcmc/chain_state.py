"""The driver's chains saved as plain arrays and JSON text, and restored from them.

:func:`chains_record` turns a :class:`~.driver.Chains` into ``(arrays, attrs)``:
NumPy arrays (the kernel state's fields, the random state, the tuning's
arrays, the base preconditioner, the gradient evaluations spent) and JSON
strings (the kernel's class and settings, the state's class and field kinds,
the step size, the adaptation's record). :func:`restore_chains` rebuilds the
chains on a backend from the same two mappings. A checkpoint
(:mod:`ppzoo.checkpoint`) stores them as one netCDF group; nothing here
knows about files.

Classes are named ``module:qualname`` and restored only from ppzoo's own
modules, so a record cannot make the reader import anything else.
"""

from __future__ import annotations

import dataclasses
import importlib
import json

import numpy as np

from .diffusions import Tuning
from .driver import Chains
from .preconditioner import Preconditioner

__all__ = ["chains_record", "restore_chains", "RECORD_ATTRS"]

#: the attrs :func:`chains_record` writes (each a string)
RECORD_ATTRS = ("state_class", "state_fields", "kernel_class", "kernel_settings", "tuning", "chains")


def chains_record(chains: Chains, backend) -> tuple[dict, dict]:
    """``(arrays, attrs)``: ``chains`` as NumPy arrays (``{name: ndarray}``) and JSON strings
    (``{name: str}``, the keys :data:`RECORD_ATTRS`)."""
    arrays, fields = {}, {}
    state = chains.state
    for field in state._fields:
        value = getattr(state, field)
        fields[field] = "python" if isinstance(value, (int, float)) else "array"
        arrays[f"state__{field}"] = np.asarray(value) if fields[field] == "python" else backend.to_numpy(value)
    arrays["rng"] = backend.rng_state(chains.rng)
    tuning = chains.tuning
    for name in ("inverse_mass", "factor"):
        if getattr(tuning, name) is not None:
            arrays[f"tuning__{name}"] = backend.to_numpy(getattr(tuning, name))
    if chains.preconditioner is not None:
        arrays["preconditioner"] = np.asarray(chains.preconditioner.inverse_mass)
    arrays["spent"] = np.asarray(chains.spent)
    kernel = chains.kernel
    settings = {f.name: _encode_setting(getattr(kernel, f.name), arrays, f.name) for f in dataclasses.fields(kernel)}
    attrs = {
        "state_class": f"{type(state).__module__}:{type(state).__qualname__}",
        "state_fields": json.dumps(fields),
        "kernel_class": f"{type(kernel).__module__}:{type(kernel).__qualname__}",
        "kernel_settings": json.dumps(settings),
        "tuning": json.dumps({"step_size": float(tuning.step_size),
                              "decay": None if tuning.decay is None else list(tuning.decay)}),
        "chains": json.dumps({"adapting": chains.adapting, "dense": chains.dense, "adapt_mass": chains.adapt_mass,
                              "autocorrelation": chains.autocorrelation,
                              "warmup_r_hat": [float(r) for r in chains.warmup_r_hat],
                              "remedies": list(chains.remedies), "extra_warmup": int(chains.extra_warmup),
                              "steps": int(chains.steps)}),
    }
    return arrays, attrs


def restore_chains(arrays: dict, attrs, backend) -> Chains:
    """The chains :func:`chains_record` recorded, on ``backend`` (arrays back in its own kind)."""
    to_backend = backend.restore_array
    values = {}
    for field, kind in json.loads(attrs["state_fields"]).items():
        value = arrays[f"state__{field}"]
        values[field] = value.item() if kind == "python" else to_backend(value)
    kernel_state = _ppzoo_class(attrs["state_class"])(**values)
    settings = {k: _decode_setting(v, arrays) for k, v in json.loads(attrs["kernel_settings"]).items()}
    kernel = _ppzoo_class(attrs["kernel_class"])(**settings)
    tuning = json.loads(attrs["tuning"])
    decay = None if tuning["decay"] is None else tuple(tuning["decay"])
    tuning = Tuning(tuning["step_size"], *(to_backend(arrays[f"tuning__{n}"]) if f"tuning__{n}" in arrays else None
                                           for n in ("inverse_mass", "factor")), decay)
    info = json.loads(attrs["chains"])
    preconditioner = Preconditioner(arrays["preconditioner"]) if "preconditioner" in arrays else None
    return Chains(kernel, kernel_state, backend.restore_rng(arrays["rng"]), arrays["spent"].astype(np.int64),
                  preconditioner, info["adapt_mass"], info["dense"], 1.0 if info["adapting"] else None, tuning,
                  autocorrelation=info["autocorrelation"], warmup_r_hat=info["warmup_r_hat"],
                  remedies=info["remedies"], extra_warmup=info["extra_warmup"], steps=info["steps"])


def _encode_setting(value, arrays: dict, name: str):
    """A kernel setting as JSON; arrays (a preconditioner) go to ``arrays``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Preconditioner):
        arrays[f"kernel__{name}"] = np.asarray(value.inverse_mass)
        return {"preconditioner": f"kernel__{name}"}
    if dataclasses.is_dataclass(value):  # a step-size schedule
        return {"class": f"{type(value).__module__}:{type(value).__qualname__}",
                "fields": {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}}
    raise TypeError(f"cannot write the kernel setting {name}={value!r} to a checkpoint")


def _decode_setting(value, arrays):
    if isinstance(value, dict) and "preconditioner" in value:
        return Preconditioner(np.asarray(arrays[value["preconditioner"]]))
    if isinstance(value, dict) and "class" in value:
        return _ppzoo_class(value["class"])(**value["fields"])
    return value


def _ppzoo_class(reference: str):
    """The class ``module:qualname`` of ppzoo's inference package (nothing else is imported)."""
    module, _, name = reference.partition(":")
    if not (module.startswith("ppzoo.") or module.startswith("inference.")):
        raise ValueError(f"the checkpoint names a class outside ppzoo: {reference}")
    return getattr(importlib.import_module(module), name)
