"""A fitted guide's PPL state as plain arrays, and back: what :mod:`ppzoo.fit_io` writes and reads.

One object per PPL (:func:`fit_state`), each with

* ``flatten(params)``: ``{name: [leaf arrays]}`` of ``Fit.params`` (a NumPyro
  parameter may be a pytree, e.g. an Equinox module's weights registered by
  ``eqx_module``; a Pyro one is one array);
* ``unflatten(leaves, model, guide, args, kwargs)``: the parameters again, each
  pytree rebuilt on the structure of the programs' own initial value (the
  structure itself is code, not data, so it is never stored);
* ``export(fit)`` / ``restore(arrays, meta, ...)``: the rest of the PPL's state.
  Pyro: the fit's parameter-store scope, i.e. every parameter's unconstrained
  value and its constraint (stored by ``repr`` and checked against the one the
  programs declare, which restores it), and the weights of ``torch.nn`` modules
  registered with ``pyro.module`` (trained in place, so copied back into the
  modules of the programs given). NumPyro: nothing beyond ``Fit.params``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_state", "PyroState", "NumPyroState"]


def fit_state(backend: str, device=None):
    """The state handler of PPL ``backend`` (``"pyro"`` or ``"numpyro"``) on ``device``."""
    return {"pyro": PyroState, "numpyro": NumPyroState}[backend](device)


class _State:
    def __init__(self, device=None):
        from ppzoo.backends.svi_adapter import svi_adapter

        self.adapter = svi_adapter(self.name, device)

    def param_names(self, model, guide, args, kwargs) -> set:
        """The names of the programs' ``param`` statements."""
        return self.adapter.param_names(model, guide, args, kwargs)


class NumPyroState(_State):
    """NumPyro: the parameters are all of the state (``Fit.params``, constrained, pytrees
    allowed)."""

    name = "numpyro"

    def flatten(self, params) -> dict:
        import jax

        return {
            name: [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(value)]
            for name, value in params.items()
        }

    def initial_params(self, model, guide, args, kwargs) -> dict:
        """``{name: initial value}`` of the ``param`` statements of ``guide`` and of ``model``
        run on its draws."""
        from numpyro import handlers

        args, kwargs = self.adapter._data(args, kwargs)
        guide_trace = handlers.trace(handlers.seed(guide, 0)).get_trace(*args, **kwargs)
        model_trace = handlers.trace(
            handlers.replay(handlers.seed(model, 1), guide_trace)
        ).get_trace(*args, **kwargs)
        return {
            n: s["value"]
            for t in (guide_trace, model_trace)
            for n, s in t.items()
            if s["type"] == "param"
        }

    def unflatten(self, leaves: dict, model, guide, args, kwargs) -> dict:
        import jax

        initial = self.initial_params(model, guide, args, kwargs)
        params = {}
        for name, saved in leaves.items():
            template, treedef = jax.tree_util.tree_flatten(initial[name])
            _check_leaves(name, saved, template)
            params[name] = jax.tree_util.tree_unflatten(treedef, saved)
        return params

    def export(self, fit) -> tuple[dict, dict]:
        return {}, {}

    def restore(self, arrays, meta, model, guide, args, kwargs):
        return None


class PyroState(_State):
    """Pyro: ``Fit.params`` plus the fit's parameter-store scope (unconstrained values, constraints)
    and the weights of the ``pyro.module`` networks."""

    name = "pyro"

    def flatten(self, params) -> dict:
        return {name: [np.asarray(value)] for name, value in params.items()}

    def unflatten(self, leaves: dict, model, guide, args, kwargs) -> dict:
        return {name: values[0] for name, values in leaves.items()}

    def export(self, fit) -> tuple[dict, dict]:
        """``({name: unconstrained value}, {"constraints": {name: repr}})`` of the fit's scope."""
        scope = fit._scope or {"params": {}, "constraints": {}}
        arrays = {name: value.detach().cpu().numpy() for name, value in scope["params"].items()}
        return arrays, {"constraints": {name: repr(c) for name, c in scope["constraints"].items()}}

    def restore(self, arrays, meta, model, guide, args, kwargs):
        """A fresh parameter-store scope holding the saved unconstrained values under the programs'
        own constraints, with the ``pyro.module`` networks' weights copied into the programs'
        modules.
        Raises ``ValueError`` when a constraint differs from the saved one."""
        import pyro
        import pyro.util
        import torch
        from pyro import poutine

        args, kwargs = self.adapter._data(args, kwargs)
        state = {"params": {}, "constraints": {}}
        modules = _ModuleParameters()
        rng = pyro.util.get_rng_state()
        try:
            with (
                pyro.get_param_store().scope(state),
                pyro.validation_enabled(False),
                torch.no_grad(),
            ):
                with (
                    modules
                ):  # runs the programs once: their param statements declare each constraint
                    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
                    poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
                        *args, **kwargs
                    )
                store = pyro.get_param_store()
                _check_constraints(
                    meta.get("constraints", {}), {n: store._constraints[n] for n in store.keys()}
                )
                for name, value in arrays.items():
                    saved = torch.as_tensor(value, device=self.adapter.device)
                    if name in modules.found:  # the module keeps its own weights: copy them in
                        modules.found[name].copy_(saved)
                        store._params[name] = modules.found[name]
                    else:
                        store._params[name] = saved.clone().requires_grad_(True)
        finally:
            pyro.util.set_rng_state(rng)
        return state


def _check_leaves(name, saved, template) -> None:
    if len(saved) != len(template) or any(
        np.shape(s) != np.shape(t) for s, t in zip(saved, template)
    ):
        raise ValueError(
            f"parameter {name!r} does not match the programs': saved as {len(saved)} array(s) of "
            "shapes "
            f"{[np.shape(s) for s in saved]}, the programs' has {[np.shape(t) for t in template]}"
        )


def _check_constraints(saved: dict, declared: dict) -> None:
    differ = {
        n: (saved[n], repr(c)) for n, c in declared.items() if n in saved and saved[n] != repr(c)
    }
    if differ:
        listed = "; ".join(
            f"{n!r}: saved {a}, the programs declare {b}" for n, (a, b) in sorted(differ.items())
        )
        raise ValueError(
            f"the programs' parameter constraints differ from the saved fit's: {listed}"
        )


class _ModuleParameters:
    """A Pyro messenger that records the ``torch.nn.Parameter`` behind each ``pyro.module``
    parameter
    (its ``param`` message carries the module's own tensor as the initial value)."""

    def __init__(self):
        self.found = {}
        self._messenger = None

    def __enter__(self):
        from pyro.poutine.messenger import Messenger

        found = self.found

        class Record(Messenger):
            def _pyro_param(self, msg):
                name, *rest = msg["args"]
                if "$$$" in name and rest and hasattr(rest[0], "copy_"):
                    found[name] = rest[0]

        self._messenger = Record()
        return self._messenger.__enter__()

    def __exit__(self, *exc):
        return self._messenger.__exit__(*exc)
