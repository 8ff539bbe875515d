"""Predictive draws through each PPL's own ``Predictive``: the PPL-independent half.

A PPL's module (:mod:`ppzoo.backends.numpyro_predictive`,
:mod:`ppzoo.backends.pyro_predictive`) offers two functions:

* ``probe(model, args, kwargs, observed)`` -> :class:`Probe`: one trace of the
  program at its arguments, latents at a feasible value, every plate that
  subsamples (``plate("data", N, subsample_size=B)``) given all its ``N``
  indices;
* ``chunks(model, args, kwargs, *, samples, num_samples, return_sites, unobserve,
  full_plates, seed, chunk_size, dims)``: ``numpyro.infer.Predictive`` /
  ``pyro.infer.Predictive`` run ``chunk_size`` draws at a time, yielding
  ``(start, {site: (n, *shape)})`` NumPy arrays. ``samples`` ``{latent: (S, *shape)}``
  are constrained posterior draws (``None``: draws from the prior, ``num_samples``
  of them); the sites in ``unobserve`` are drawn even where the program was given
  their values; the subsampling plates run on all their indices.

:func:`draw` assembles the chunks into ``{site: (S, *shape)}``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from ppzoo.backends.layout import SiteRecord, value_dims

__all__ = ["Probe", "WORK_FACTOR", "predictive_module", "site_dims", "chunk_draws", "draw"]

_MODULES = {"numpyro": "ppzoo.backends.numpyro_predictive", "pyro": "ppzoo.backends.pyro_predictive"}


@dataclass(frozen=True)
class Probe:
    """One trace of a program at given arguments, seen without reference to its PPL.

    ``shapes``: every sample and deterministic site's value shape (one draw);
    ``itemsize``: bytes per element of each value; ``latent``: sample sites with no
    value given (in order); ``observed``: the sites named as data (``observed=``), or
    those given values (not by a conditioning handler wrapped around the program);
    ``given``: the observed values the arguments hold ``{site: array}`` (an observed
    site whose value is ``None`` at these arguments is absent); ``deterministic``: the
    ``deterministic`` statements; ``dims``: each site's axis names (a plate's name
    where the axis is that plate's dim, as ``az.from_numpyro`` names them,
    ``<site>_dim_k`` otherwise); ``full_plates``: ``{plate: size}`` of the plates that
    subsample, each to be run on all its indices; ``plate_sizes``: every plate's size;
    ``params``: the names of the program's ``param`` statements (learned values: a draw of the
    latents does not fix them).
    """

    shapes: dict
    itemsize: dict
    latent: tuple
    observed: tuple
    given: dict
    deterministic: tuple
    dims: dict
    full_plates: dict
    plate_sizes: dict
    params: tuple = ()


def predictive_module(name: str):
    """The predictive module of PPL ``name`` (``"numpyro"`` or ``"pyro"``)."""
    return importlib.import_module(_MODULES[name])


def site_dims(name: str, shape, frames, event_dim: int = 0) -> tuple[str, ...]:
    """Axis names of a value ``shape`` inside the plates ``frames`` (``(name, batch dim)``)."""
    record = SiteRecord(name, True, tuple(shape), tuple(shape), False, tuple(n for n, _ in frames), dict(frames),
                        event_dim=event_dim)
    return value_dims(record)


#: a chunk's working memory over its output: the PPL's intermediates (a linear regression's mean,
#: the noise, the draw, the rows gathered) take about four times the output again (measured with
#: NumPyro at N = 10^6, d = 5: 340 MiB of working memory for a chunk of 64 MiB of output)
WORK_FACTOR = 5


def chunk_draws(probe: Probe, sites, memory_budget: int) -> int:
    """Draws per chunk so that one chunk's working memory, :data:`WORK_FACTOR` times its output (the
    values of ``sites``), stays within ``memory_budget`` bytes (at least one draw)."""
    per_draw = sum(int(np.prod(probe.shapes[s], dtype=np.int64)) * probe.itemsize[s] for s in sites)
    return max(1, int(memory_budget // max(WORK_FACTOR * per_draw, 1)))


def draw(module, model, args, kwargs, *, samples, num_samples: int, return_sites, unobserve, full_plates,
         seed: int, chunk_size: int, shapes=None, dims=None) -> dict:
    """``{site: (S, *shape)}``: the PPL's ``Predictive`` run ``chunk_size`` draws at a time
    (see the module docstring), the chunks written into arrays allocated once; ``shapes``: each
    site's value shape (one draw), which the draws are reshaped to; ``dims``: each site's axis names."""
    out = {}
    shapes = dict(shapes or {})
    for start, part in module.chunks(model, args, kwargs, samples=samples, num_samples=num_samples,
                                     return_sites=tuple(return_sites), unobserve=tuple(unobserve),
                                     full_plates=dict(full_plates), seed=seed, chunk_size=chunk_size, dims=dims):
        for name, value in part.items():
            if name in shapes:  # a PPL may return extra singleton dims (Pyro's plates one draw at a time)
                value = value.reshape((value.shape[0],) + tuple(shapes[name]))
            if name not in out:
                out[name] = np.empty((num_samples,) + value.shape[1:], dtype=value.dtype)
            out[name][start:start + value.shape[0]] = value
    return out
