"""The backend adapter: the only place that knows Pyro from NumPyro.

:func:`make_backend` traces a user's program once, decides which PPL wrote it
(or takes ``backend=``), and returns a :class:`~ppzoo.backends.base.Backend`:
the gradient oracle, the unconstrained-space transforms, the per-datum
log-likelihood and the array primitives the samplers are driven with.
"""

from __future__ import annotations

from ppzoo.backends.base import Backend
from ppzoo.backends.layout import ModelLayout, model_name

__all__ = ["Backend", "ModelLayout", "BACKENDS", "detect_backend", "resolve_backend", "check_guide_ppl", "make_backend"]

BACKENDS = ("numpyro", "pyro")


class ModelRaised(Exception):
    """The program raised after running statements of one PPL: it is that PPL's program, and the
    error is the program's own (``where``: the statement it raised at, or the last it finished)."""

    def __init__(self, ppl, where, error):
        super().__init__(ppl, where, error)
        self.ppl, self.where, self.error = ppl, where, error


def _statement_watcher(base):
    """A messenger class of a PPL (``base``) that notes the statement being run and the last finished."""

    class Watcher(base):
        entered = finished = None

        def process_message(self, msg):
            self.entered = msg.get("name")

        def postprocess_message(self, msg):
            self.finished, self.entered = msg.get("name"), None

    return Watcher


def _watched(ppl, watcher, run):
    try:
        return run()
    except Exception as err:
        if watcher.entered is None and watcher.finished is None:
            raise  # no statement of this PPL ran: not (evidently) its program
        where = (f"at its statement {watcher.entered!r}" if watcher.entered is not None
                 else f"after its statement {watcher.finished!r}")
        raise ModelRaised(ppl, where, err) from err


def _numpyro_trace(model, args, kwargs):
    from numpyro.primitives import Messenger

    from ppzoo.backends.numpyro_backend import NumPyroBackend, _to_jax, trace_numpyro

    watcher = _statement_watcher(Messenger)(model)
    trace = _watched("numpyro", watcher, lambda: trace_numpyro(watcher, _to_jax(tuple(args)), _to_jax(dict(kwargs))))
    has_sites = any(site["type"] == "sample" for site in trace.values())
    return NumPyroBackend, trace if has_sites else None


def _pyro_trace(model, args, kwargs):
    import torch
    from pyro.poutine.messenger import Messenger

    from ppzoo.backends.pyro_backend import PyroBackend, _to_torch, trace_pyro

    class PyroWatcher(Messenger):
        entered = finished = None

        def _process_message(self, msg):
            self.entered = msg.get("name")

        def _postprocess_message(self, msg):
            self.finished, self.entered = msg.get("name"), None

    watcher = PyroWatcher()
    args, kwargs = _to_torch(tuple(args), torch.device("cpu")), _to_torch(dict(kwargs), torch.device("cpu"))
    trace = _watched("pyro", watcher, lambda: trace_pyro(watcher(model), args, kwargs))
    has_sites = any(site["type"] == "sample" for site in trace.nodes.values())
    return PyroBackend, trace if has_sites else None


_TRACERS = {"numpyro": _numpyro_trace, "pyro": _pyro_trace}


def _raise_from_model(model, found: ModelRaised):
    """Re-raise the program's own error, saying where in the program it came from."""
    err = found.error
    message = (f"model {model_name(model)!r} ({found.ppl}) raised {type(err).__name__} {found.where}: "
               f"{str(err).splitlines()[0] if str(err) else repr(err)}")
    try:
        new = type(err)(message)
    except Exception:  # noqa: BLE001 - an exception class with its own constructor
        new = ValueError(message)
    raise new from err


def detect_backend(model, args=(), kwargs=None) -> str:
    """``"numpyro"`` or ``"pyro"``: which PPL's sample statements the program makes.

    The model is run once under each PPL's ``trace`` handler; the first whose
    trace records sample sites wins. Raises ``TypeError`` if neither does.
    """
    return _detect(model, tuple(args), dict(kwargs or {}))[0]


def resolve_backend(model, args=(), kwargs=None, backend=None) -> str:
    """The PPL of ``model``: detected by tracing; a forced ``backend`` must agree with it."""
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    detected = detect_backend(model, args, kwargs)
    _check_forced(model, backend, detected)
    return detected


def check_guide_ppl(guide, backend: str) -> None:
    """A guide that is an instance of a PPL's class (an autoguide) must be of the model's PPL."""
    for klass in type(guide).__mro__:
        top = klass.__module__.split(".")[0]
        if top in BACKENDS and top != backend:
            raise ValueError(
                f"guide {type(guide).__name__} is a {top} program but the model is a {backend} program; "
                f"use {backend}'s own guide (e.g. {backend}.infer.autoguide.{type(guide).__name__})"
            )


def _detect(model, args, kwargs):
    if not callable(model):
        raise TypeError(
            f"model must be a callable Pyro or NumPyro program, got {type(model).__name__}"
        )
    errors, raised = [], []
    for name, tracer in _TRACERS.items():
        try:
            cls, trace = tracer(model, args, kwargs)
        except ModelRaised as found:
            _raise_from_model(model, found)
        except Exception as err:  # the program is not written for this PPL
            errors.append(f"{name}: {type(err).__name__}: {err}")
            raised.append(err)
            continue
        if trace is not None:
            return name, cls, trace
        errors.append(f"{name}: no sample sites recorded")
    first_lines = {str(e).split("\n", 1)[0] for e in raised}
    if len(raised) == len(_TRACERS) and all(type(e) is ValueError for e in raised) and len(first_lines) == 1:
        # the program itself refused its arguments, whichever PPL ran it (Pyro appends trace shapes)
        raise ValueError(first_lines.pop()) from raised[0]
    raise TypeError(
        f"model {model_name(model)!r} is neither a Pyro nor a NumPyro program: tracing it "
        f"recorded no sample statements ({'; '.join(errors)})"
    )


def make_backend(model, args=(), kwargs=None, backend=None, data_plate=None, device=None, batch_args=None) -> Backend:
    """Wrap ``model(*args, **kwargs)`` in the gradient oracle of its PPL.

    ``backend``, ``"pyro"`` or ``"numpyro"``, must be the detected PPL (an error says so otherwise);
    ``data_plate`` names the plate that holds the data (default: the single
    plate whose size is the leading dimension of the observations);
    ``device`` is a torch device for Pyro, a JAX device or platform name for NumPyro;
    ``batch_args`` names the per-datum arguments (positions and keyword names)
    that minibatches slice, where :mod:`ppzoo.backends.batching` should not guess.
    """
    args, kwargs = tuple(args), dict(kwargs or {})
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    name, cls, trace = _detect(model, args, kwargs)
    _check_forced(model, backend, name)
    return cls(model, args, kwargs, data_plate=data_plate, device=device, trace=trace if device is None else None,
               batch_args=batch_args)


def _check_forced(model, backend, detected) -> None:
    if backend is not None and backend != detected:
        raise ValueError(
            f"backend={backend!r}, but model {model_name(model)!r} is a {detected} program; "
            "leave backend=None, or pass a program of that PPL"
        )
