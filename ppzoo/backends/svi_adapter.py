"""SVI through the seam: fitting a guide and evaluating it, one object per PPL.

``ppzoo.fit`` and ``ppzoo.log_marginal_likelihood`` name no PPL: they ask
:func:`svi_adapter` for the adapter of the model's PPL and call its
``fit``, ``evaluator`` and ``local_normals``. The adapter converts the data
to the PPL's arrays on the device, checks the optimiser, picks the data
plate, runs the PPL's own fitting loop (``pyro_svi_fit.run_svi`` /
``numpyro_svi.run_svi``), and keeps what a Pyro fit needs afterwards: its
parameter-store scope (``FitResult.scope``), inside which every later
evaluation of that fit runs. Evaluations come back as NumPy arrays.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ppzoo.backends.svi_common import check_batch_size
from ppzoo.checks import check_device

__all__ = ["FitResult", "svi_adapter", "PyroSVI", "NumPyroSVI", "check_param_names"]


@dataclass
class FitResult:
    """What a PPL's fitting loop hands back: fitted ``params`` (NumPy), the loss per step,
    why it stopped early (or ``None``), the data plate, the Pyro parameter-store ``scope``
    (``None`` for NumPyro), how the steps ran (``compiled_as``) and the data plate's size ``N``."""

    params: dict
    losses: Any
    stop_reason: str | None
    data_plate: str | None
    scope: Any
    compiled_as: str
    data_size: int | None = None


def check_param_names(params, known: set) -> None:
    """Raise ``ValueError`` naming the keys of ``params`` that are no ``param`` statement of the
    programs (``known``), with the closest known name: a misspelt name would otherwise leave its
    parameter at its initial value without a word."""
    import difflib

    if params is None:
        return
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of parameter values by name (e.g. Fit.params) or None, got {type(params).__name__}")
    unknown = sorted(set(params) - known)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(
            f"params has name(s) that are no param statement of the model or guide: {', '.join(hints)}; "
            f"their params are {sorted(known)}"
        )


def svi_adapter(name: str, device=None):
    """The SVI adapter of PPL ``name`` (``"pyro"`` or ``"numpyro"``) on ``device``."""
    check_device(device)
    if name == "pyro":
        return PyroSVI(device)
    if name == "numpyro":
        return NumPyroSVI(device)
    raise ValueError(f"backend must be 'pyro' or 'numpyro', got {name!r}")


def _as_numpy(out, convert):
    """An evaluation's ``(terms, latents, log_likelihood, observed, local)`` with NumPy arrays."""
    terms, latents, loglik, observed, local = out
    for name in ("obs_global", "obs_local", "prior_global", "prior_local", "guide_global", "guide_local"):
        value = getattr(terms, name)
        setattr(terms, name, None if value is None else np.asarray(convert(value), dtype=np.float64))
    terms.stop_gradient = lambda x: x
    as_np = lambda d: None if d is None else {k: convert(v) for k, v in d.items()}  # noqa: E731
    return terms, as_np(latents), as_np(loglik), as_np(observed), local


class PyroSVI:
    """Pyro's SVI: ``pyro_svi`` under a parameter-store scope of the fit's own."""

    name = "pyro"

    def __init__(self, device=None):
        from ppzoo.backends.pyro_backend import torch_device

        self.device = torch_device(device)

    def _data(self, args, kwargs):
        from ppzoo.backends.pyro_backend import to_torch

        return to_torch(tuple(args), self.device), to_torch(dict(kwargs), self.device)

    def scope(self, scope):
        """A context in which the Pyro parameter store is the fit's (``None``: the global store)."""
        import pyro

        return contextlib.nullcontext() if scope is None else pyro.get_param_store().scope(scope)

    def fit(self, objective, model, guide, args, kwargs, *, optimizer, learning_rate, batch_size, data_plate,
            settings, jit_compile) -> FitResult:
        import pyro

        from ppzoo.backends import pyro_svi, pyro_svi_fit

        args, kwargs = self._data(args, kwargs)
        if optimizer is None:
            optimizer = pyro.optim.Adam({"lr": learning_rate})
        if not isinstance(optimizer, pyro.optim.PyroOptim):
            raise TypeError(f"optimizer must be a pyro.optim optimiser for a Pyro model, got {type(optimizer).__name__}")
        with pyro.get_param_store().scope() as scope:
            pyro.set_rng_seed(settings["seed"])
            plate, size, _ = pyro_svi.data_plate_of(model, guide, args, kwargs, data_plate)
            check_batch_size(batch_size, plate, size)
            params, losses, reason, compiled_as = pyro_svi_fit.run_svi(
                objective, model, guide, args, kwargs, optimizer=optimizer, plate=(plate, size),
                batch_size=batch_size, jit_compile=jit_compile, **settings,
            )
        return FitResult(params, losses, reason, plate, scope, compiled_as, size)

    def check_observations(self, model, args, kwargs) -> None:
        """Refuse NaN or infinite observations, from a trace of ``model`` alone (a throwaway parameter
        store; the user's random stream untouched): before a guide's initialisation fails on them."""
        import pyro
        import pyro.util
        import torch
        from pyro import poutine
        from pyro.poutine.util import site_is_subsample

        from ppzoo.backends.svi_common import check_observations_finite

        args, kwargs = self._data(args, kwargs)
        state = pyro.util.get_rng_state()
        try:
            with pyro.get_param_store().scope(), pyro.validation_enabled(False):
                trace = poutine.trace(model).get_trace(*args, **kwargs)
        finally:
            pyro.util.set_rng_state(state)
        check_observations_finite({
            n: s["value"].detach().cpu().numpy() for n, s in trace.nodes.items()
            if s["type"] == "sample" and s["is_observed"] and not site_is_subsample(s) and torch.is_tensor(s["value"])
        })

    def param_names(self, model, guide, args, kwargs) -> set:
        """The names of the ``param`` statements of ``guide`` and of ``model`` run on its draws (a
        throwaway parameter store; the user's random stream untouched)."""
        import pyro
        import pyro.util
        from pyro import poutine

        args, kwargs = self._data(args, kwargs)
        state = pyro.util.get_rng_state()
        try:
            with pyro.get_param_store().scope(), pyro.validation_enabled(False):
                guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
                model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        finally:
            pyro.util.set_rng_state(state)
        return {n for t in (guide_trace, model_trace) for n, site in t.nodes.items() if site["type"] == "param"}

    def _params(self, params):
        from ppzoo.backends.pyro_backend import to_torch

        return to_torch({k: np.asarray(v) for k, v in (params or {}).items()}, self.device) or None

    def posterior_guide(self, model, guide, args, kwargs, *, params, scope=None):
        """``(guide, params)`` whose draws are the fitted posterior: an ``AutoLaplaceApproximation``
        (fitted as a point mass at the MAP) becomes its Laplace approximation, Pyro's
        ``laplace_approximation`` (a Gaussian in the unconstrained space with the inverse Hessian of
        ``-log p(x, z)`` at the MAP as covariance); any other guide is itself."""
        import pyro
        from pyro.infer.autoguide import AutoLaplaceApproximation

        if not isinstance(guide, AutoLaplaceApproximation):
            return guide, params
        args, kwargs = self._data(args, kwargs)
        with self.scope(scope), pyro.validation_enabled(False):
            laplace = guide.laplace_approximation(*args, **kwargs)
        own = {name for name, _ in guide.named_parameters()} | {f"{guide._pyro_name}.{n}" for n, _ in guide.named_parameters()}
        return laplace, {k: v for k, v in params.items() if k not in own}

    def evaluator(self, model, guide, args, kwargs, *, params, data_plate=None, scope=None):
        """``evaluate(num_particles, seed, terms_only=False)`` (``pyro_svi_eval.evaluate``), NumPy out."""
        import pyro

        from ppzoo.backends import pyro_svi_eval

        args, kwargs = self._data(args, kwargs)
        params = self._params(params)

        def evaluate(num_particles, seed, terms_only=False):
            with self.scope(scope):
                pyro.set_rng_seed(seed)
                out = pyro_svi_eval.evaluate(
                    model, guide, args, kwargs, params=params, num_particles=num_particles, data_plate=data_plate,
                    terms_only=terms_only,
                )
            return _as_numpy(out, lambda x: x.detach().cpu().numpy())

        return evaluate

    def local_normals(self, model, guide, args, kwargs, *, params, data_plate=None, scope=None) -> dict:
        """``{site: (loc, scale)}``: the guide's per-datum Normal latents on all the data, NumPy ``(N, d)``."""
        from ppzoo.backends import pyro_svi_eval

        args, kwargs = self._data(args, kwargs)
        with self.scope(scope):
            return pyro_svi_eval.local_normal_sites(
                model, guide, args, kwargs, params=self._params(params), data_plate=data_plate
            )

    def observed_means(self, model, args, kwargs, *, params, latents, scope=None) -> dict:
        """``{site: mean}``: the model's observed sites' means, latents held at ``latents``, NumPy."""
        from ppzoo.backends import pyro_svi_eval
        from ppzoo.backends.pyro_backend import to_torch

        args, kwargs = self._data(args, kwargs)
        latents = to_torch({k: np.asarray(v) for k, v in latents.items()}, self.device)
        with self.scope(scope):
            return pyro_svi_eval.observed_means(model, args, kwargs, params=self._params(params), latents=latents)

    def with_params(self, model, params, scope=None):
        """``model`` run with the fitted parameters ``params`` (its modules' trained in place), in the
        fit's parameter-store scope."""
        from ppzoo.backends import pyro_svi_eval

        fitted = pyro_svi_eval.with_params(model, {k: v for k, v in (self._params(params) or {}).items() if "$$$" not in k})

        def run(*args, **kwargs):
            with self.scope(scope):
                return fitted(*args, **kwargs)

        return run

    def saa_problem(self, objective, model, guide, args, kwargs, *, params, plate, seeds, scope=None):
        """The fit's sample-average objective over one flat vector (``pyro_svi_refine``); every
        evaluation runs in the fit's parameter-store scope and leaves the store at its point."""
        from ppzoo.backends import pyro_svi_refine
        from ppzoo.backends.saa_problem import SAAProblem

        args, kwargs = self._data(args, kwargs)
        with self.scope(scope):
            problem = pyro_svi_refine.saa_problem(objective, model, guide, args, kwargs, plate=plate, seeds=seeds)

        def scoped(fn):
            def run(*a):
                with self.scope(scope):
                    return fn(*a)
            return run

        return SAAProblem(problem.x0, scoped(problem.evaluate), scoped(problem.params_at), scoped(problem.draws))


_NUMPYRO_ADAM = {}


class NumPyroSVI:
    """NumPyro's SVI: ``numpyro_svi``, compiled with ``jax.jit``."""

    name = "numpyro"

    def __init__(self, device=None):
        from ppzoo.backends.numpyro_backend import jax_device

        self.device = jax_device(device)

    def _data(self, args, kwargs):
        from ppzoo.backends.numpyro_backend import to_jax

        return to_jax(tuple(args), self.device), to_jax(dict(kwargs), self.device)

    @staticmethod
    def _default_optimizer(learning_rate):
        """One default optimiser object per learning rate, so later fits reuse what the first compiled."""
        if learning_rate not in _NUMPYRO_ADAM:
            import numpyro.optim
            import optax

            # the learning rate lives in the optimiser's state, where the plateau schedule can lower it
            _NUMPYRO_ADAM[learning_rate] = numpyro.optim.optax_to_numpyro(
                optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)
            )
        return _NUMPYRO_ADAM[learning_rate]

    def fit(self, objective, model, guide, args, kwargs, *, optimizer, learning_rate, batch_size, data_plate,
            settings, jit_compile) -> FitResult:
        import numpyro.optim

        from ppzoo.backends import numpyro_svi

        args, kwargs = self._data(args, kwargs)
        if optimizer is None:
            optimizer = self._default_optimizer(learning_rate)
        if not isinstance(optimizer, numpyro.optim._NumPyroOptim):
            raise TypeError(f"optimizer must be a numpyro.optim optimiser for a NumPyro model, got {type(optimizer).__name__}")
        plate, size, _ = numpyro_svi.data_plate_of(model, guide, args, kwargs, data_plate)
        check_batch_size(batch_size, plate, size)
        params, losses, reason = numpyro_svi.run_svi(
            objective, model, guide, args, kwargs, optimizer=optimizer, plate=(plate, size), batch_size=batch_size,
            **settings,
        )
        return FitResult(params, losses, reason, plate, None, "jit", size)

    def check_observations(self, model, args, kwargs) -> None:
        """Refuse NaN or infinite observations, from a trace of ``model`` alone."""
        from numpyro import handlers

        from ppzoo.backends.svi_common import check_observations_finite

        args, kwargs = self._data(args, kwargs)
        trace = handlers.trace(handlers.seed(model, 1)).get_trace(*args, **kwargs)
        check_observations_finite({n: s["value"] for n, s in trace.items() if s["type"] == "sample" and s["is_observed"]})

    def param_names(self, model, guide, args, kwargs) -> set:
        """The names of the ``param`` statements of ``guide`` and of ``model`` run on its draws."""
        from numpyro import handlers

        args, kwargs = self._data(args, kwargs)
        guide_trace = handlers.trace(handlers.seed(guide, 0)).get_trace(*args, **kwargs)
        model_trace = handlers.trace(handlers.replay(handlers.seed(model, 1), guide_trace)).get_trace(*args, **kwargs)
        return {n for t in (guide_trace, model_trace) for n, site in t.items() if site["type"] == "param"}

    def posterior_guide(self, model, guide, args, kwargs, *, params, scope=None):
        """``(guide, params)`` whose draws are the fitted posterior: an ``AutoLaplaceApproximation``
        (fitted as a point mass at the MAP) becomes an ``AutoMultivariateNormal`` of the same model and
        prefix whose location and Cholesky factor are NumPyro's Laplace approximation at the fitted MAP
        (``get_transform``: the inverse Hessian of ``-log p(x, z)`` there, unconstrained); any other
        guide is itself."""
        import jax.numpy as jnp
        from numpyro.infer.autoguide import AutoLaplaceApproximation, AutoMultivariateNormal

        if not isinstance(guide, AutoLaplaceApproximation):
            return guide, params
        transform = guide.get_transform({k: jnp.asarray(v) for k, v in params.items()})
        prefix = guide.prefix
        gaussian = AutoMultivariateNormal(model, prefix=prefix)
        rest = {k: v for k, v in params.items() if k != f"{prefix}_loc"}
        return gaussian, {**rest, f"{prefix}_loc": np.asarray(transform.loc),
                          f"{prefix}_scale_tril": np.asarray(transform.scale_tril)}

    def evaluator(self, model, guide, args, kwargs, *, params, data_plate=None, scope=None):
        """``evaluate(num_particles, seed, terms_only=False)`` (``numpyro_svi.make_evaluator``), NumPy out."""
        from ppzoo.backends import numpyro_svi

        args, kwargs = self._data(args, kwargs)
        evaluate_jax = numpyro_svi.make_evaluator(model, guide, args, kwargs, params=params, data_plate=data_plate)

        def evaluate(num_particles, seed, terms_only=False):
            return _as_numpy(evaluate_jax(num_particles, seed, terms_only), np.asarray)

        return evaluate

    def local_normals(self, model, guide, args, kwargs, *, params, data_plate=None, scope=None) -> dict:
        """``{site: (loc, scale)}``: the guide's per-datum Normal latents on all the data, NumPy ``(N, d)``."""
        from ppzoo.backends import numpyro_svi

        args, kwargs = self._data(args, kwargs)
        return numpyro_svi.local_normal_sites(model, guide, args, kwargs, params=params, data_plate=data_plate)

    def observed_means(self, model, args, kwargs, *, params, latents, scope=None) -> dict:
        """``{site: mean}``: the model's observed sites' means, latents held at ``latents``, NumPy."""
        from ppzoo.backends import numpyro_svi

        args, kwargs = self._data(args, kwargs)
        return numpyro_svi.observed_means(model, args, kwargs, params=params, latents=latents)

    def with_params(self, model, params, scope=None):
        """``model`` with its ``param`` statements substituted by the fitted ``params``."""
        import jax
        import jax.numpy as jnp
        from numpyro import handlers

        return handlers.substitute(model, data={k: jax.tree_util.tree_map(jnp.asarray, v) for k, v in params.items()})

    def saa_problem(self, objective, model, guide, args, kwargs, *, params, plate, seeds, scope=None):
        """The fit's sample-average objective over one flat vector (``numpyro_svi_refine``)."""
        from ppzoo.backends import numpyro_svi_refine

        args, kwargs = self._data(args, kwargs)
        return numpyro_svi_refine.saa_problem(objective, model, guide, args, kwargs, params=params, plate=plate,
                                              seeds=seeds)
