"""Prior and posterior predictive checks through each PPL's own ``Predictive``.

``ppzoo.predict(result, model, *args, **kwargs)`` runs ``numpyro.infer.Predictive``
or ``pyro.infer.Predictive`` (:mod:`ppzoo.backends.predictive`) on the draws of a
result's ``posterior`` group and adds them to the result:

* ``posterior_predictive`` at the observed data: the arguments hold the result's
  ``observed_data`` (same shapes and values), or ``new_data=False``;
* ``predictions`` and ``predictions_constant_data`` (the array arguments) at new
  arguments, e.g. a new ``x`` with ``M`` rows.

``ppzoo.prior_predictive(model, *args, **kwargs)`` returns a new result with
``prior``, ``prior_predictive`` and ``observed_data``.

Each observed site is drawn anew, whether the arguments give its value or
``None``; ``deterministic`` statements are recomputed and reported with them.
A plate that subsamples (``plate("data", N, subsample_size=B)``) runs on all
its ``N`` indices. Dims are named after the plates, as ``az.from_numpyro``
names them (``<site>_dim_k`` for axes outside any plate). Draws run in chunks
whose working memory, estimated as 5 times their output, stays within
``memory_budget`` bytes (:data:`MEMORY_BUDGET`, 256 MiB, by default), or of
``chunk_size`` draws, written into arrays allocated once: memory is the
result's ``(C, S, *shape)`` arrays plus one chunk's work.
"""

from __future__ import annotations

import inspect
import numbers

import numpy as np

from ppzoo.diagnostics import arviz_compat

__all__ = ["MEMORY_BUDGET", "predict", "prior_predictive"]

#: bytes of working memory per chunk of draws, by default (256 MiB)
MEMORY_BUDGET = 256 * 2**20


def _check_options(seed, chunk_size, memory_budget) -> None:
    from ppzoo.checks import check_count, check_seed

    check_seed(seed)
    if chunk_size is not None:
        check_count("chunk_size", chunk_size, 1)
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, numbers.Real) or not memory_budget >= 1:
        raise ValueError(f"memory_budget must be a number of bytes >= 1, got {memory_budget!r}")


def _backend_of(model, args, kwargs, recorded=None):
    """The PPL of ``model`` and its predictive module; ``recorded`` (a result's ``backend`` attr) must agree."""
    from ppzoo.backends import resolve_backend
    from ppzoo.backends.predictive import predictive_module

    name = resolve_backend(model, args, kwargs)
    if recorded is not None and recorded != name:
        raise ValueError(f"the result was made by {recorded}, but model is a {name} program; "
                         "pass the model the result was made with")
    return name, predictive_module(name)


def _argument_values(model, args, kwargs) -> dict:
    """``{argument name: NumPy array}`` of the array arguments (positional ones named by the
    program's signature where it has one, ``arg<i>`` otherwise)."""
    names = [f"arg{i}" for i in range(len(args))]
    try:
        params = [p for p in inspect.signature(model).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        names = [params[i].name if i < len(params) else names[i] for i in range(len(args))]
    except (TypeError, ValueError):
        pass
    out = {}
    for name, value in [*zip(names, args), *kwargs.items()]:
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            out[name] = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
    return out


def _constant_dims(values: dict, probe) -> dict:
    """Dims of argument arrays: the leading axis after the plate of that size that holds the data
    (the first plate of an observed site), ``<name>_dim_k`` for the rest."""
    plates = {}
    for site in probe.observed:
        for dim in probe.dims[site]:
            if dim in probe.plate_sizes:
                plates.setdefault(probe.plate_sizes[dim], dim)
    dims = {}
    for name, value in values.items():
        lead = [plates[value.shape[0]]] if value.ndim and value.shape[0] in plates else []
        dims[name] = lead + [f"{name}_dim_{k}" for k in range(value.ndim - len(lead))]
    return dims


def _is_fit(result) -> bool:
    from ppzoo.fitting import Fit

    return isinstance(result, Fit)


def _result_of(result, model, args, kwargs, num_samples, seed):
    """``(ArviZ result, model, args, kwargs)``: a ``Fit`` gives its draws (``Fit.to_arviz``), and
    its model and data where none are given."""
    from ppzoo.fitting import Fit

    if isinstance(result, Fit):
        model = result.model if model is None else model
        if not args and not kwargs:
            args, kwargs = tuple(result.args), dict(result.kwargs)
        result = result.to_arviz(num_samples=num_samples, seed=seed)
    if not arviz_compat.is_result(result):
        raise TypeError("result must be an ArviZ result (from ppzoo.sample or Fit.to_arviz) or a ppzoo Fit, "
                        f"got {type(result).__name__}")
    if not arviz_compat.has_group(result, "posterior"):
        raise ValueError(f"result has no posterior group (it has {arviz_compat.group_names(result)}); "
                         "predictive draws need the posterior's draws")
    if model is None:
        raise TypeError("model must be the Pyro or NumPyro program the result was made with, got None")
    return result, model, tuple(args), dict(kwargs)


def _posterior_samples(posterior, probe) -> dict:
    """``{latent: (C * S, *shape)}``: the posterior's draws of the program's latent sites, flattened;
    a ``ValueError`` names the sites it lacks or whose shapes differ."""
    missing = [n for n in probe.latent if n not in posterior.data_vars]
    if missing:
        raise ValueError(
            f"the model's latent site(s) {missing} are not in the result's posterior (it has "
            f"{sorted(posterior.data_vars)}): the result is not a posterior of this model at these arguments")
    flat = posterior.sizes["chain"] * posterior.sizes["draw"]
    samples = {}
    for name in probe.latent:
        shape = tuple(posterior[name].shape[2:])
        if shape != probe.shapes[name]:
            raise ValueError(
                f"latent site {name!r} has shape {probe.shapes[name]} at these arguments, but the posterior's draws "
                f"have {shape}: a latent inside the data plate cannot be carried to data of another size")
        samples[name] = np.asarray(posterior[name].values).reshape((flat,) + shape)
    return samples


def _same_data(probe, observed) -> bool:
    """Whether the arguments give every observed site the value the result's ``observed_data`` holds."""
    for name in observed.data_vars:
        if name not in probe.given:
            return False
        given, held = probe.given[name], np.asarray(observed[name].values)
        if given.shape != held.shape or not np.allclose(given, held, equal_nan=True):
            return False
    return len(observed.data_vars) > 0


def predict(result, model=None, *args, new_data: bool | None = None, seed: int = 0, chunk_size: int | None = None,
            memory_budget: int = MEMORY_BUDGET, num_samples: int = 1000, **kwargs):
    """Predictive draws of ``model(*args, **kwargs)`` at the posterior draws of ``result``,
    added to ``result`` in place (as ``arviz.InferenceData.add_groups`` does; a group already there
    is replaced) and returned.

    Args:
        result: an ArviZ result with a ``posterior`` group ``(chain, draw, ...)`` of constrained
            draws (``ppzoo.sample``, ``Fit.to_arviz``), or a ppzoo ``Fit`` (its ``to_arviz(num_samples,
            seed)`` is used and returned; its model and data are used where none are given).
        model: the program the result was made with; ``args``/``kwargs`` its arguments.
        new_data: ``None`` (default): ``posterior_predictive`` when the arguments give every observed
            site the value in the result's ``observed_data``, ``predictions`` otherwise (an observed
            value left ``None`` counts as new data); ``False``: ``posterior_predictive`` (the observed
            sites must have the observed data's shapes); ``True``: ``predictions``.
        seed: the random seed (the same seed and chunks give the same draws).
        chunk_size: draws per call of ``Predictive``; default: as many as keep one chunk's working
            memory (estimated as ``WORK_FACTOR = 5`` times its output,
            :func:`ppzoo.backends.predictive.chunk_draws`) within ``memory_budget`` bytes (default
            :data:`MEMORY_BUDGET`, 256 MiB).
        num_samples: the draws a ``Fit`` gives (ignored for an ArviZ result).

    Keyword arguments other than these options go to the model (a model keyword named like one of
    them must be passed positionally).

    The latent sites' draws ``(C, S, *shape)`` go to the PPL's ``Predictive`` as
    ``posterior_samples`` ``(C * S, *shape)`` (deterministic sites are recomputed); its draws of
    each observed site and ``deterministic`` statement come back ``(C, S, *shape)``, dims named
    after the plates. At new data, ``predictions_constant_data`` holds the array arguments.
    """
    from ppzoo.backends.predictive import chunk_draws, draw
    from ppzoo.checks import check_count

    _check_options(seed, chunk_size, memory_budget)
    check_count("num_samples", num_samples, 1)
    if new_data is not None and not isinstance(new_data, (bool, np.bool_)):
        raise TypeError(f"new_data must be True, False or None, got {new_data!r}")
    fitted = result if _is_fit(result) else None
    result, model, args, kwargs = _result_of(result, model, args, kwargs, num_samples, seed)
    posterior = arviz_compat.get_group(result, "posterior")
    observed = (arviz_compat.get_group(result, "observed_data") if arviz_compat.has_group(result, "observed_data")
                else None)
    names = [] if observed is None else list(observed.data_vars)
    if not names:
        raise ValueError("the result has no observed_data group: predict cannot tell the model's data sites "
                         "(use a result of ppzoo.sample or Fit.to_arviz)")
    _, module = _backend_of(model, args, kwargs, posterior.attrs.get("backend"))
    probe = module.probe(model, args, kwargs, observed=names)
    absent = [n for n in names if n not in probe.shapes]
    if absent:
        raise ValueError(f"the result's observed_data holds {absent}, which model has no sample site for at these "
                         "arguments: pass the model the result was made with")
    samples = _posterior_samples(posterior, probe)
    if probe.params:  # learned values (a network's weights): only a Fit holds them
        if fitted is None:
            raise ValueError(
                f"the model has learned parameters {list(probe.params)[:5]}{' ...' if len(probe.params) > 5 else ''}, "
                "which an ArviZ result does not hold: pass the Fit itself (ppzoo.predict(fit, ...)), so that "
                "the fitted values are used rather than their initial ones")
        own = {k: v for k, v in fitted.params.items() if k in probe.params}  # the guide's are not the model's
        model = fitted._adapter.with_params(model, own, fitted._scope)
    if new_data is None:
        new_data = not _same_data(probe, observed)
    elif not new_data:
        wrong = {n: probe.shapes[n] for n in names if probe.shapes[n] != observed[n].shape}
        if wrong:
            raise ValueError(f"new_data=False, but at these arguments the observed site(s) have shapes {wrong}, "
                             f"the observed_data's {{{', '.join(f'{n!r}: {observed[n].shape}' for n in wrong)}}}")
    sites = [*names, *probe.deterministic]
    num_chains, num_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    total = num_chains * num_draws
    draws = draw(module, model, args, kwargs, samples=samples, num_samples=total, return_sites=sites,
                 unobserve=names, full_plates=probe.full_plates, seed=seed, shapes=probe.shapes, dims=probe.dims,
                 chunk_size=chunk_size or chunk_draws(probe, sites, memory_budget))
    values = {k: v.reshape((num_chains, num_draws) + v.shape[1:]) for k, v in draws.items()}
    group = "predictions" if new_data else "posterior_predictive"
    groups = {group: values}
    dims = {k: list(probe.dims[k]) for k in values}
    if new_data:
        constant = _argument_values(model, args, kwargs)
        if constant:
            groups["predictions_constant_data"] = constant
            dims.update(_constant_dims(constant, probe))
    made = arviz_compat.from_dict(groups, dims=dims,
                                  coords={"chain": posterior.chain.values, "draw": posterior.draw.values},
                                  attrs={k: v for k, v in posterior.attrs.items() if k in ("backend", "data_plate")})
    for name in groups:
        if arviz_compat.has_group(result, name) and not arviz_compat.DATATREE:
            delattr(result, name)
        arviz_compat.add_group(result, name, arviz_compat.get_group(made, name))
    return result


def prior_predictive(model, *args, num_samples: int = 500, seed: int = 0, chunk_size: int | None = None,
                     memory_budget: int = MEMORY_BUDGET, **kwargs):
    """Draws from the prior of ``model(*args, **kwargs)`` through the PPL's ``Predictive``: a new
    ArviZ result (one chain of ``num_samples`` draws) with ``prior`` (latent sites and
    ``deterministic`` statements, ``(1, num_samples, *shape)``), ``prior_predictive`` (the
    observed sites drawn anew, ``(1, num_samples, *shape)``) and ``observed_data`` (their values).

    Pass the observations as for fitting: the sites given values are the data (a value fixed by a
    conditioning handler around the program is not); they are drawn from the model whatever values
    the arguments hold. ``chunk_size`` / ``memory_budget``: as :func:`predict` (default budget
    :data:`MEMORY_BUDGET`, 256 MiB of output per chunk).
    """
    from ppzoo.backends.predictive import chunk_draws, draw
    from ppzoo.checks import check_count

    check_count("num_samples", num_samples, 1)
    _check_options(seed, chunk_size, memory_budget)
    _, module = _backend_of(model, args, kwargs)
    probe = module.probe(model, args, kwargs)
    if not probe.observed:
        raise ValueError("model has no observed site at these arguments: pass the observations as for fitting "
                         "(e.g. y=y), so that prior_predictive knows which sites are the data; they are drawn anew")
    sites = [*probe.latent, *probe.observed, *probe.deterministic]
    draws = draw(module, model, args, kwargs, samples=None, num_samples=num_samples, return_sites=sites,
                 unobserve=probe.observed, full_plates=probe.full_plates, seed=seed, shapes=probe.shapes, dims=probe.dims,
                 chunk_size=chunk_size or chunk_draws(probe, sites, memory_budget))
    prior = [*probe.latent, *probe.deterministic]
    groups = {
        "prior": {k: draws[k][None] for k in prior},
        "prior_predictive": {k: draws[k][None] for k in probe.observed},
        "observed_data": dict(probe.given),
    }
    dims = {k: list(probe.dims[k]) for k in sites}
    return arviz_compat.from_dict(groups, dims=dims)
