"""A NumPyro fit's sample-average objective as a function of one flat vector (for a quasi-Newton refinement).

:func:`saa_problem` maps the fit's parameters to NumPyro's unconstrained
space as ``numpyro.infer.SVI`` does (``biject_to`` of each ``param``
statement's constraint), flattens them, and gives the objective of
:mod:`ppzoo.inference.svi.saa` over fixed draws (one PRNG key) and its
gradient, compiled once, on all the data.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.distributions import biject_to, constraints

from ppzoo.backends.saa_problem import SAAProblem
from ppzoo.backends.svi_common import is_auxiliary

__all__ = ["saa_problem"]


def _param_transforms(model, guide, args, kwargs, params):
    """``{name: transform}`` from the unconstrained space to each ``param`` statement's support."""
    guide_trace = handlers.trace(handlers.substitute(handlers.seed(guide, 0), data=params)).get_trace(*args, **kwargs)
    replayed = handlers.replay(handlers.seed(model, 1), guide_trace)
    model_trace = handlers.trace(handlers.substitute(replayed, data=params)).get_trace(*args, **kwargs)
    transforms = {}
    for site in (*guide_trace.values(), *model_trace.values()):
        if site["type"] == "param" and site["name"] in params:
            transforms[site["name"]] = biject_to(site["kwargs"].get("constraint", constraints.real))
    return transforms


def saa_problem(objective, model, guide, args, kwargs, *, params, plate, seeds) -> SAAProblem:
    """The sample-average ``objective`` (a :func:`~ppzoo.inference.svi.saa.sample_average_objective`)
    at the fit's ``params`` (constrained, NumPy), one fixed set of draws per seed in ``seeds``.

    ``plate = (name, N)`` or ``(None, None)``: the data plate is seen whole.
    """
    params = {k: jax.tree_util.tree_map(jnp.asarray, v) for k, v in params.items()}
    if plate[0] is not None:
        whole = {plate[0]: jnp.arange(plate[1])}
        model, guide = handlers.substitute(model, data=whole), handlers.substitute(guide, data=whole)
    transforms = _param_transforms(model, guide, args, kwargs, params)
    fixed = {k: v for k, v in params.items() if k not in transforms}
    unconstrained = {k: transforms[k].inv(v) for k, v in params.items() if k in transforms}
    flat, unravel = ravel_pytree(unconstrained)
    dtype = flat.dtype

    def constrain(x):
        u = unravel(x)
        return {**fixed, **{k: transforms[k](v) for k, v in u.items()}}

    @jax.jit
    def value_and_grad(x, key):
        return jax.value_and_grad(lambda y: objective.loss(key, constrain(y), model, guide, *args, **kwargs))(x)

    keys = {seed: jax.random.PRNGKey(seed) for seed in seeds}

    def evaluate(x, seed):
        value, grad = value_and_grad(jnp.asarray(x, dtype=dtype), keys[seed])
        return float(value), np.asarray(grad, dtype=np.float64)

    def params_at(x):
        return {k: jax.tree_util.tree_map(np.asarray, v) for k, v in constrain(jnp.asarray(x, dtype=dtype)).items()}

    @partial(jax.jit, static_argnums=1)
    def guide_draws(x, num, key):
        def one(k):
            seeded = handlers.substitute(handlers.seed(guide, k), data=constrain(x))
            trace = handlers.trace(seeded).get_trace(*args, **kwargs)
            return {n: s["value"] for n, s in trace.items()
                    if s["type"] == "sample" and not s["is_observed"] and not is_auxiliary(s)}
        return jax.vmap(one)(jax.random.split(key, num))

    def draws(x, num, seed):
        out = guide_draws(jnp.asarray(x, dtype=dtype), num, jax.random.PRNGKey(seed))
        return {k: np.asarray(v) for k, v in out.items()}

    return SAAProblem(np.asarray(flat, dtype=np.float64), evaluate, params_at, draws)
