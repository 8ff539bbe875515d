"""The backend adapter: the only place that knows Pyro from NumPyro.

:func:`make_backend` traces a user's program once, decides which PPL wrote it
(or takes ``backend=``), and returns a :class:`~ppzoo.backends.base.Backend`:
the gradient oracle, the unconstrained-space transforms, the per-datum
log-likelihood and the array primitives the samplers are driven with.
"""

from __future__ import annotations

import re

from ppzoo.backends.base import Backend
from ppzoo.backends.batching import check_real_arguments, indexed_arguments
from ppzoo.backends.layout import ModelLayout, model_name
from ppzoo.checks import (
    check_device,
    integer_arguments,
    non_array_arguments,
    nonfinite_arguments,
    nonfinite_count,
    pandas_values,
)

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

    from ppzoo.backends.numpyro_backend import NumPyroBackend, to_jax, trace_numpyro

    watcher = _statement_watcher(Messenger)(model)
    trace = _watched("numpyro", watcher, lambda: trace_numpyro(watcher, to_jax(tuple(args)), to_jax(dict(kwargs))))
    has_sites = any(site["type"] == "sample" for site in trace.values())
    return NumPyroBackend, trace if has_sites else None


def _pyro_trace(model, args, kwargs):
    import torch
    from pyro.poutine.messenger import Messenger

    from ppzoo.backends.pyro_backend import PyroBackend, to_torch, trace_pyro

    class PyroWatcher(Messenger):
        entered = finished = None

        def _process_message(self, msg):
            self.entered = msg.get("name")

        def _postprocess_message(self, msg):
            self.finished, self.entered = msg.get("name"), None

    watcher = PyroWatcher()
    args, kwargs = to_torch(tuple(args), torch.device("cpu")), to_torch(dict(kwargs), torch.device("cpu"))
    trace = _watched("pyro", watcher, lambda: trace_pyro(watcher(model), args, kwargs))
    has_sites = any(site["type"] == "sample" for site in trace.nodes.values())
    return PyroBackend, trace if has_sites else None


_TRACERS = {"numpyro": _numpyro_trace, "pyro": _pyro_trace}


def _raise_from_model(model, found: ModelRaised, args=(), kwargs=None):
    """Re-raise the program's own error, saying where in the program it came from (``found.ppl``
    ``None``: before any statement of either PPL), and naming the arguments that may have caused
    it: those holding NaN or infinite values, and, for an error about types, those holding integers."""
    err = found.error
    ppl = f" ({found.ppl})" if found.ppl else ""
    message = (f"model {model_name(model)!r}{ppl} raised {type(err).__name__} {found.where}: "
               f"{str(err).splitlines()[0] if str(err) else repr(err)}")
    notes = nonfinite_arguments(model, args, kwargs or {})
    if isinstance(err, IndexError):
        notes += indexed_arguments(model, args, kwargs or {}, str(err))
    if "type" in str(err).lower():
        notes += integer_arguments(model, args, kwargs or {})
    asked = re.search(r"'(\w+)' object has no attribute '(\w+)'", str(err))
    if isinstance(err, AttributeError) and asked:
        notes += non_array_arguments(model, args, kwargs or {}, asked.group(2), of_type=asked.group(1))
    if notes:
        message += f" ({'; '.join(notes)})"
    try:
        new = type(err)(message)
    except Exception:  # noqa: BLE001 - an exception class with its own constructor
        new = ValueError(message)
    raise new from err


def _check_observed_log_prob(model, args, kwargs, trace) -> None:
    """Where an argument holds NaN or infinite values and an observed site with finite values gets a
    non-finite log-probability in the trace, a ``ValueError`` naming both: the chains or the fit
    would otherwise start from a NaN potential and fail far from the cause (a covariate with a
    missing value). Arguments a program masks or imputes itself pass."""
    found = nonfinite_arguments(model, args, kwargs)
    if not found:
        return
    for name, site in getattr(trace, "nodes", trace).items():
        if site.get("type") != "sample" or not site.get("is_observed"):
            continue
        try:
            value_finite = not nonfinite_count(site["value"])
            log_prob = site["fn"].log_prob(site["value"])
        except Exception:  # noqa: BLE001 - the site's own checks report it
            continue
        if value_finite and nonfinite_count(log_prob):
            raise ValueError(
                f"{'; '.join(found)}, and with them the log-probability of observed site {name!r} is not "
                "finite; ppzoo expects finite data (drop or impute the missing values first)"
            )


def detect_backend(model, args=(), kwargs=None) -> str:
    """``"numpyro"`` or ``"pyro"``: which PPL's sample statements the program makes.

    The model is run once under each PPL's ``trace`` handler; the first whose
    trace records sample sites wins. Raises ``TypeError`` if neither does.
    """
    return _detect(model, tuple(args), dict(kwargs or {}))[0]


def resolve_backend(model, args=(), kwargs=None, backend=None, proper_priors: str | None = None) -> str:
    """The PPL of ``model``: detected by tracing; a forced ``backend`` must agree with it.

    ``proper_priors``: what needs every latent site's prior proper (a phrase for the message, e.g.
    SVI, whose guides start from prior draws): a site with an improper prior then gets a
    ``ValueError`` naming it (the PPL would raise a bare ``NotImplementedError`` far inside).
    """
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    detected, _, trace = _detect(model, tuple(args), dict(kwargs or {}))
    _check_forced(model, backend, detected)
    if proper_priors is not None:
        for name, site in getattr(trace, "nodes", trace).items():
            if site.get("type") != "sample" or site.get("is_observed"):
                continue
            fn = site["fn"]
            while hasattr(fn, "base_dist"):
                fn = fn.base_dist
            if type(fn).__name__ == "ImproperUniform":
                raise ValueError(
                    f"latent site {name!r} of model {model_name(model)!r} has an improper prior (ImproperUniform): "
                    f"{proper_priors}; give it a proper prior, or sample the model with ppzoo.sample, which "
                    "takes improper priors"
                )
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
            _raise_from_model(model, found, args, kwargs)
        except Exception as err:  # the program is not written for this PPL
            errors.append(f"{name}: {type(err).__name__}: {err}")
            raised.append(err)
            continue
        if trace is not None:
            _check_observed_log_prob(model, args, kwargs, trace)
            return name, cls, trace
        errors.append(f"{name}: no sample sites recorded")
    first_lines = {(type(e), str(e).split("\n", 1)[0]) for e in raised}
    if len(raised) == len(_TRACERS) and len(first_lines) == 1:
        # the program itself raised, whichever PPL ran it, before any statement (Pyro appends trace shapes)
        _raise_from_model(model, ModelRaised(None, "before any Pyro or NumPyro statement", raised[0]), args, kwargs)
    raise TypeError(
        f"model {model_name(model)!r} is neither a Pyro nor a NumPyro program: tracing it "
        f"recorded no sample statements ({'; '.join(errors)})"
    )


def make_backend(model, args=(), kwargs=None, backend=None, data_plate=None, device=None, batch_args=None,
                 jit_compile=True) -> Backend:
    """Wrap ``model(*args, **kwargs)`` in the gradient oracle of its PPL.

    ``backend``, ``"pyro"`` or ``"numpyro"``, must be the detected PPL (an error says so otherwise);
    ``data_plate`` names the plate that holds the data (default: the single
    plate whose size is the leading dimension of the observations);
    ``device`` is a torch device for Pyro, a JAX device or platform name for NumPyro;
    ``batch_args`` names the per-datum arguments (positions and keyword names)
    that minibatches slice, where :mod:`ppzoo.backends.batching` should not guess;
    ``jit_compile`` (Pyro) compiles the chain-batched gradient, guarded against
    Python control flow on the parameters (:mod:`ppzoo.backends.pyro_guard`),
    ``False`` runs it eagerly; NumPyro always compiles with ``jax.jit``, which
    refuses Python control flow on a traced value rather than freezing it.
    """
    args, kwargs = pandas_values(args, kwargs or {})
    check_device(device)
    check_real_arguments(model, args, kwargs)
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    name, cls, trace = _detect(model, args, kwargs)
    _check_forced(model, backend, name)
    compile_flag = {"jit_compile": jit_compile} if name == "pyro" else {}
    return cls(model, args, kwargs, data_plate=data_plate, device=device, trace=trace if device is None else None,
               batch_args=batch_args, **compile_flag)


def _check_forced(model, backend, detected) -> None:
    if backend is not None and backend != detected:
        raise ValueError(
            f"backend={backend!r}, but model {model_name(model)!r} is a {detected} program; "
            "leave backend=None, or pass a program of that PPL"
        )
