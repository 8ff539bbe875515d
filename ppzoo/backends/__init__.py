"""The backend adapter: the only place that knows Pyro from NumPyro.

:func:`make_backend` traces a user's program once, decides which PPL wrote it
(or takes ``backend=``), and returns a :class:`~ppzoo.backends.base.Backend`:
the gradient oracle, the unconstrained-space transforms, the per-datum
log-likelihood and the array primitives the samplers are driven with.
"""

from __future__ import annotations

from ppzoo.backends.base import Backend
from ppzoo.backends.layout import ModelLayout, model_name

__all__ = ["Backend", "ModelLayout", "BACKENDS", "detect_backend", "make_backend"]

BACKENDS = ("numpyro", "pyro")


def _numpyro_trace(model, args, kwargs):
    from ppzoo.backends.numpyro_backend import NumPyroBackend, _to_jax, trace_numpyro

    trace = trace_numpyro(model, _to_jax(tuple(args)), _to_jax(dict(kwargs)))
    has_sites = any(site["type"] == "sample" for site in trace.values())
    return NumPyroBackend, trace if has_sites else None


def _pyro_trace(model, args, kwargs):
    import torch

    from ppzoo.backends.pyro_backend import PyroBackend, _to_torch, trace_pyro

    trace = trace_pyro(model, _to_torch(tuple(args), torch.device("cpu")), _to_torch(dict(kwargs), torch.device("cpu")))
    has_sites = any(site["type"] == "sample" for site in trace.nodes.values())
    return PyroBackend, trace if has_sites else None


_TRACERS = {"numpyro": _numpyro_trace, "pyro": _pyro_trace}


def detect_backend(model, args=(), kwargs=None) -> str:
    """``"numpyro"`` or ``"pyro"``: which PPL's sample statements the program makes.

    The model is run once under each PPL's ``trace`` handler; the first whose
    trace records sample sites wins. Raises ``TypeError`` if neither does.
    """
    return _detect(model, tuple(args), dict(kwargs or {}))[0]


def _detect(model, args, kwargs):
    if not callable(model):
        raise TypeError(
            f"model must be a callable Pyro or NumPyro program, got {type(model).__name__}"
        )
    errors, raised = [], []
    for name, tracer in _TRACERS.items():
        try:
            cls, trace = tracer(model, args, kwargs)
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

    ``backend`` forces ``"pyro"`` or ``"numpyro"`` instead of detection;
    ``data_plate`` names the plate that holds the data (default: the single
    plate whose size is the leading dimension of the observations);
    ``device`` is a torch device for Pyro, a JAX device or platform name for NumPyro;
    ``batch_args`` names the per-datum arguments (positions and keyword names)
    that minibatches slice, where :mod:`ppzoo.backends.batching` should not guess.
    """
    args, kwargs = tuple(args), dict(kwargs or {})
    if backend is None:
        _, cls, trace = _detect(model, args, kwargs)
        return cls(model, args, kwargs, data_plate=data_plate, device=device, trace=trace if device is None else None,
                   batch_args=batch_args)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
    if not callable(model):
        raise TypeError(f"model must be a callable Pyro or NumPyro program, got {type(model).__name__}")
    if backend == "numpyro":
        from ppzoo.backends.numpyro_backend import NumPyroBackend as cls
    else:
        from ppzoo.backends.pyro_backend import PyroBackend as cls
    return cls(model, args, kwargs, data_plate=data_plate, device=device, batch_args=batch_args)
