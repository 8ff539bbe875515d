"""Predictive draws of a Pyro program through ``pyro.infer.Predictive``
(the contract: :mod:`ppzoo.backends.predictive`)."""

from __future__ import annotations

import warnings
import weakref

import numpy as np
import torch
from pyro import poutine
from pyro.infer import Predictive
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from ppzoo.backends.predictive import Probe, site_dims
from ppzoo.backends.pyro_backend import conditioned_names, pyro_deterministic, trace_pyro

__all__ = ["probe", "chunks"]

#: programs already warned about running one draw at a time
_WARNED = weakref.WeakSet()


def _torch(tree):
    """NumPy (and JAX) arrays in ``tree`` as tensors, floats in torch's default dtype."""
    if isinstance(tree, (list, tuple)):
        return type(tree)(_torch(v) for v in tree)
    if isinstance(tree, dict):
        return {k: _torch(v) for k, v in tree.items()}
    if isinstance(tree, torch.Tensor):
        return tree.to(dtype=torch.get_default_dtype()) if tree.is_floating_point() else tree
    if isinstance(tree, np.ndarray) or type(tree).__module__.startswith(("jax", "jaxlib")):
        value = np.asarray(tree)
        dtype = torch.get_default_dtype() if np.issubdtype(value.dtype, np.floating) else None
        return torch.as_tensor(value, dtype=dtype)
    return tree


class _Unobserve(Messenger):
    """Draw the sample sites ``names`` from their distributions even where the program gives
    their values (``poutine.uncondition``, for those sites alone)."""

    def __init__(self, names):
        super().__init__()
        self.names = frozenset(names)

    def _pyro_sample(self, msg):
        if msg["is_observed"] and msg["name"] in self.names:
            msg["is_observed"], msg["value"], msg["done"] = False, None, False


def _prepared(model, unobserve, rows=None):
    """``model`` with the ``unobserve`` sites drawn (innermost, so it sees the program's own
    observations alone) and, with ``rows`` ``{plate: indices}``, those plates on those indices."""
    fn = _Unobserve(unobserve)(model) if unobserve else model
    return poutine.condition(fn, data=rows) if rows else fn


def _plates(trace) -> dict:
    """``{plate: (size, subsample size)}`` (the size where the program asks for no subsampling)."""
    return {name: (int(site["fn"].size), int(site["fn"].subsample_size or site["fn"].size))
            for name, site in trace.nodes.items() if site["type"] == "sample" and site_is_subsample(site)}


def _subsampled(plates) -> tuple | None:
    """``(plate, size, batch)`` of the plate that subsamples (Pyro refuses a plate its full indices
    when the program fixes ``subsample_size``: such a plate runs over its rows ``batch`` at a time)."""
    found = [(n, size, sub) for n, (size, sub) in plates.items() if sub < size]
    if len(found) > 1:
        raise ValueError(f"the plates {[n for n, _, _ in found]} all subsample; predictive draws run one subsampling "
                         "plate over all its rows, not several (give them subsample_size=None)")
    return found[0] if found else None


def _row_batches(size: int, batch: int):
    """``(kept, indices)``: the plate's rows ``batch`` at a time, the last batch padded by repeating
    its last row (``kept`` rows of it are real)."""
    for start in range(0, size, batch):
        idx = torch.arange(start, min(start + batch, size))
        kept = len(idx)
        yield kept, torch.cat([idx, idx[-1:].expand(batch - kept)])


def _gather(parts, axes: dict) -> dict:
    """The runs on each batch of rows (``[(kept, {site: array})]``) joined along each site's
    plate axis (``axes``; a site outside the plate is the first run's)."""
    out = {}
    for name, first in parts[0][1].items():
        axis = axes.get(name)
        out[name] = first if axis is None else np.concatenate(
            [np.take(values[name], np.arange(kept), axis=axis) for kept, values in parts], axis=axis)
    return out


def probe(model, args, kwargs, observed=None) -> Probe:
    """One trace of ``model(*args, **kwargs)`` (see :class:`~ppzoo.backends.predictive.Probe`);
    ``observed``: the names of the data sites, or ``None`` for those given values. A plate that
    subsamples is traced on its first rows; the observed values given are read over all of them."""
    args, kwargs = _torch(tuple(args)), _torch(dict(kwargs))
    trace = trace_pyro(model, args, kwargs)
    subsampled = _subsampled(_plates(trace))
    fixed = conditioned_names(model)
    deterministic = pyro_deterministic(trace)
    skip = {s.name for s in deterministic}
    shapes, itemsize, dims, latent, found = {}, {}, {}, [], []
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site) or name in skip:
            continue
        value = torch.as_tensor(site["value"])
        shapes[name], itemsize[name] = tuple(value.shape), value.element_size()
        frames = [(f.name, f.dim) for f in site["cond_indep_stack"] if f.vectorized]
        dims[name] = site_dims(name, shapes[name], frames, int(site["fn"].event_dim))
        is_data = name in observed if observed is not None else (site["is_observed"] and name not in fixed)
        if is_data:
            found.append(name)
        elif not site["is_observed"]:
            latent.append(name)
    for site in deterministic:
        shapes[site.name], itemsize[site.name] = site.shape, torch.as_tensor(trace.nodes[site.name]["value"]).element_size()
        dims[site.name] = site.dims
    given = {n: trace.nodes[n]["value"] for n in found if trace.nodes[n]["is_observed"]}
    full = {}
    if subsampled is not None:
        plate, size, batch = subsampled
        full[plate] = size
        shapes = {n: tuple(size if d == plate else k for d, k in zip(dims[n], shape)) for n, shape in shapes.items()}
        axes = {n: dims[n].index(plate) for n in given if plate in dims[n]}
        parts = [(kept, {n: torch.as_tensor(trace_pyro(model, args, kwargs, data={plate: idx}).nodes[n]["value"]).numpy()
                         for n in given}) for kept, idx in _row_batches(size, batch)]
        given = _gather(parts, axes) if given else {}
    given = {n: torch.as_tensor(v).detach().cpu().numpy() for n, v in given.items()}
    params = tuple(name for name, site in trace.nodes.items() if site["type"] == "param")
    return Probe(shapes, itemsize, tuple(latent), tuple(found), given, tuple(s.name for s in deterministic), dims,
                 full, {n: size for n, (size, _) in _plates(trace).items()}, params)


def _run(fn, args, kwargs, part, num, return_sites, parallel):
    if part is None:
        predictive = Predictive(fn, num_samples=num, return_sites=list(return_sites), parallel=parallel)
    else:
        predictive = Predictive(fn, posterior_samples=part, return_sites=list(return_sites), parallel=parallel)
    return predictive(*args, **kwargs)


def _warn_once(model, err) -> None:
    try:
        if model in _WARNED:
            return
        _WARNED.add(model)
    except TypeError:  # not weakly referenceable: warn every time
        pass
    warnings.warn(
        f"the model could not run vectorised over draws ({type(err).__name__}: "
        f"{str(err).splitlines()[0] if str(err) else ''}); pyro.infer.Predictive runs it one draw "
        "at a time (parallel=False), which is slower", RuntimeWarning, stacklevel=5,
    )


def _predict(fn, args, kwargs, part, num, return_sites, state):
    """One ``Predictive`` call, vectorised over draws unless ``state["parallel"]`` is off (then or
    when it fails: one draw at a time, the random state put back first)."""
    if state["parallel"]:
        rng = torch.get_rng_state()
        try:
            return _run(fn, args, kwargs, part, num, return_sites, True)
        except Exception as err:  # noqa: BLE001 - the program cannot be vectorised over draws
            _warn_once(state["model"], err)
            state["parallel"] = False
            torch.set_rng_state(rng)
    return _run(fn, args, kwargs, part, num, return_sites, False)


def _numpy(out, num) -> dict:
    return {k: v.detach().cpu().numpy().reshape((num,) + tuple(v.shape[1:])) for k, v in out.items()}


def chunks(model, args, kwargs, *, samples, num_samples, return_sites, unobserve, full_plates, seed, chunk_size,
           dims=None):
    """``(start, {site: (n, *shape)})`` per chunk of draws, from ``pyro.infer.Predictive``:
    vectorised over the chunk's draws (``parallel=True``, an outer plate), or one draw at a
    time where the program cannot run so (``x @ w`` with a batch dim on ``w``), with a
    warning. A plate in ``full_plates`` (one whose ``subsample_size`` the program fixes) runs
    over its rows one batch at a time, the batches joined along its axis in each site's
    ``dims``; from the prior, the draws outside the plate are the first batch's, held for the
    rest. Seeded by ``torch.manual_seed(seed)`` inside ``torch.random.fork_rng``, so the
    user's global torch random state is left as it was."""
    args, kwargs = _torch(tuple(args)), _torch(dict(kwargs))
    state = {"parallel": True, "model": model}
    (plate, size), = full_plates.items() if full_plates else ((None, None),)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, num_samples, chunk_size):
            stop = min(start + chunk_size, num_samples)
            part = None if samples is None else _torch({k: np.asarray(v[start:stop]) for k, v in samples.items()})
            if plate is None:
                out = _predict(_prepared(model, unobserve), args, kwargs, part, stop - start, return_sites, state)
                yield start, _numpy(out, stop - start)
                continue
            axes = {n: 1 + tuple(dims[n]).index(plate) for n in return_sites if plate in dims[n]}
            batch = int(trace_pyro(model, args, kwargs).nodes[plate]["fn"].subsample_size)
            parts = []
            for kept, idx in _row_batches(size, batch):
                out = _numpy(_predict(_prepared(model, unobserve, {plate: idx}), args, kwargs, part, stop - start,
                                      return_sites, state), stop - start)
                if part is None:  # from the prior: hold the first batch's draws outside the plate
                    part = _torch({n: v for n, v in out.items() if n not in axes and n not in unobserve})
                parts.append((kept, out))
            yield start, _gather(parts, axes)
