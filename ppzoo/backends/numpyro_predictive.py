"""Predictive draws of a NumPyro program through ``numpyro.infer.Predictive``
(the contract: :mod:`ppzoo.backends.predictive`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import Predictive
from numpyro.primitives import Messenger

from ppzoo.backends.numpyro_backend import conditioned_names, numpyro_deterministic, trace_numpyro
from ppzoo.backends.predictive import Probe, site_dims

__all__ = ["probe", "chunks"]


def _jax(tree):
    """NumPy (and torch) arrays in ``tree`` as JAX arrays; other leaves as they are."""

    def convert(leaf):
        if type(leaf).__module__.startswith("torch"):
            leaf = leaf.detach().cpu().numpy()
        return jnp.asarray(leaf) if isinstance(leaf, np.ndarray) else leaf

    return jax.tree_util.tree_map(convert, tree)


class _Unobserve(Messenger):
    """Draw the sample sites ``names`` from their distributions even where the program gives their values."""

    def __init__(self, fn, names):
        self.names = frozenset(names)
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["is_observed"] and msg["name"] in self.names:
            msg["value"], msg["is_observed"] = None, False


class _FullPlates(Messenger):
    """Run the plates ``sizes`` (``{name: size}``) on all their indices, as if the program had asked
    for no subsampling (``subsample_size`` equal to the size: scale 1)."""

    def __init__(self, fn, sizes):
        self.sizes = dict(sizes)
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "plate" and msg["name"] in self.sizes:
            size = self.sizes[msg["name"]]
            msg["args"], msg["value"] = (size, size), jnp.arange(size)


def _prepared(model, unobserve, full_plates):
    """``model`` with the ``unobserve`` sites drawn and the subsampling plates on all their indices."""
    fn = _Unobserve(model, unobserve) if unobserve else model
    return _FullPlates(fn, full_plates) if full_plates else fn


def _plates(trace) -> dict:
    return {name: (int(site["args"][0]), site["args"][1]) for name, site in trace.items() if site["type"] == "plate"}


def probe(model, args, kwargs, observed=None) -> Probe:
    """One trace of ``model(*args, **kwargs)`` (see :class:`~ppzoo.backends.predictive.Probe`);
    ``observed``: the names of the data sites, or ``None`` for those given values."""
    args, kwargs = _jax(tuple(args)), _jax(dict(kwargs))
    plates = _plates(trace_numpyro(model, args, kwargs))
    full = {n: size for n, (size, sub) in plates.items() if sub is not None and int(sub) < size}
    trace = trace_numpyro(_FullPlates(model, full) if full else model, args, kwargs)
    fixed = conditioned_names(model)
    shapes, itemsize, dims, latent, given, found = {}, {}, {}, [], {}, []
    for name, site in trace.items():
        if site["type"] != "sample":
            continue
        value = site["value"]
        shapes[name], itemsize[name] = tuple(jnp.shape(value)), jnp.result_type(value).itemsize
        frames = [(f.name, f.dim) for f in site["cond_indep_stack"]]
        dims[name] = site_dims(name, shapes[name], frames, int(getattr(site["fn"], "event_dim", 0)))
        is_data = name in observed if observed is not None else (site["is_observed"] and name not in fixed)
        if is_data:
            found.append(name)
            if site["is_observed"]:
                given[name] = np.asarray(value)
        elif not site["is_observed"]:
            latent.append(name)
    deterministic = numpyro_deterministic(trace)
    for site in deterministic:
        value = trace[site.name]["value"]
        shapes[site.name], itemsize[site.name] = site.shape, jnp.result_type(value).itemsize
        dims[site.name] = site.dims
    params = tuple(name for name, site in trace.items() if site["type"] == "param")
    return Probe(shapes, itemsize, tuple(latent), tuple(found), given, tuple(s.name for s in deterministic), dims,
                 full, {n: size for n, (size, _) in plates.items()}, params)


def chunks(model, args, kwargs, *, samples, num_samples, return_sites, unobserve, full_plates, seed, chunk_size,
           dims=None):
    """``(start, {site: (n, *shape)})`` per chunk of draws, from ``numpyro.infer.Predictive``
    (``parallel=True``: vectorised over the chunk's draws by ``jax.vmap``; each call compiles
    anew, so few large chunks are faster than many small ones); chunk ``i``'s key is
    ``fold_in(PRNGKey(seed), i)``; ``dims`` (each site's axis names) is not needed here."""
    args, kwargs = _jax(tuple(args)), _jax(dict(kwargs))
    fn = _prepared(model, unobserve, full_plates)
    key = jax.random.PRNGKey(seed)
    for i, start in enumerate(range(0, num_samples, chunk_size)):
        stop = min(start + chunk_size, num_samples)
        if samples is None:
            predictive = Predictive(fn, num_samples=stop - start, return_sites=list(return_sites), parallel=True)
        else:
            part = {k: jnp.asarray(v[start:stop]) for k, v in samples.items()}
            predictive = Predictive(fn, posterior_samples=part, return_sites=list(return_sites), batch_ndims=1,
                                    parallel=True)
        out = predictive(jax.random.fold_in(key, i), *args, **kwargs)
        yield start, {k: np.asarray(v) for k, v in out.items()}
