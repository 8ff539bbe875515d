"""ppzoo's Langevin kernels as NumPyro ``MCMCKernel``s.

    mcmc = numpyro.infer.MCMC(NumPyroLangevin(SARAHLD(), model), num_warmup=1000, num_samples=1000,
                              num_chains=4, chain_method="vectorized")
    mcmc.run(jax.random.PRNGKey(0), x, y=y)
    idata = az.from_numpyro(mcmc)

``NumPyroLangevin`` wraps a ppzoo kernel (which knows nothing of NumPyro)
and turns it into NumPyro's ``init`` / ``sample``. With
``chain_method="vectorized"`` NumPyro hands ``init`` one key per chain and
the kernel runs all chains as one batch (each with its own minibatches, and
full-gradient refreshes as real branches); with ``"sequential"`` (what
``"parallel"`` becomes on a single device) each chain is a batch of one.

Warmup is ``ppzoo.sample``'s: ``init`` runs the ``num_warmup`` steps with
the same adaptation (Laplace start, windows of draws for ``M^-1``, the step
size re-estimated; :func:`ppzoo.inference.sgmcmc.driver.warm_up`), or with
the kernel's own ``step_size`` where one is given, and ``sample`` then
passes the state through unchanged for ``MCMC``'s ``num_warmup``
iterations (so they cost nothing) and steps afterwards with the tuning
warmup chose. ``z`` (the sample field) is the flat unconstrained vector,
``(D,)`` or ``(C, D)``; ``postprocess_fn`` maps it to the model's
constrained sites. The state also carries ``diverging`` (a default field),
``grad_evals`` (cumulative per-datum gradient evaluations, warmup
included), ``step_size`` and ``full_gradient``, which ``MCMC.run(...,
extra_fields=(...))`` can collect, the kernel's ``tuning`` (step size and
preconditioner) and the iteration ``i``. ``init_params``, when given, are
constrained site values (one per chain, leading axis ``C`` when
``num_chains > 1``), not NumPyro's unconstrained ones.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.mcmc import MCMCKernel
from numpyro.util import is_prng_key

__all__ = ["NumPyroLangevin", "LangevinMCMCState"]


class LangevinMCMCState(NamedTuple):
    z: Any
    diverging: Any
    grad_evals: Any
    step_size: Any
    full_gradient: Any
    kernel_state: Any
    tuning: Any
    rng_key: Any
    i: Any


class NumPyroLangevin(MCMCKernel):
    """NumPyro's ``MCMCKernel`` face of a ppzoo Langevin kernel ``kernel`` on ``model``.

    ``data_plate`` names the model's data plate (default: found as ``ppzoo.sample`` finds it).
    """

    sample_field = "z"

    def __init__(self, kernel, model, data_plate=None):
        if not callable(model):
            raise TypeError(f"model must be a NumPyro program, got {type(model).__name__}")
        self.kernel, self.model, self.data_plate = kernel, model, data_plate
        self._bound = None  # (kernel bound to the model, backend, batched), set by init

    def __repr__(self):
        return f"NumPyroLangevin({self.kernel!r}, model={getattr(self.model, '__name__', self.model)!r})"

    @property
    def default_fields(self):
        return ("z", "diverging")

    def _run(self):
        if self._bound is None:
            raise RuntimeError("call init (numpyro.infer.MCMC does) before sample")
        return self._bound

    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        from ppzoo.backends.numpyro_backend import NumPyroBackend

        from .driver import warm_up

        backend = NumPyroBackend(self.model, model_args, model_kwargs, data_plate=self.data_plate)
        batched = not is_prng_key(rng_key)
        key = rng_key[0] if batched else rng_key
        num_chains = rng_key.shape[0] if batched else 1
        if init_params is not None:
            position = backend.unconstrain({k: jnp.reshape(v, (num_chains,) + jnp.shape(v)[batched:]) for k, v in init_params.items()})
        else:
            position, key = backend.init_positions(key, num_chains)
        seed = int(jax.random.randint(jax.random.fold_in(key, 1), (), 0, 2**31 - 1))
        warm = warm_up(self.kernel, backend, position, key, num_warmup=int(num_warmup), seed=seed)
        self._bound = (warm.kernel, backend, batched, int(num_warmup))
        squeeze = self._squeeze(batched)
        position = warm.state.position
        return LangevinMCMCState(
            z=squeeze(position),
            diverging=squeeze(jnp.zeros(num_chains, dtype=bool)),
            grad_evals=squeeze(jnp.asarray(warm.spent, dtype=jnp.int32)),
            step_size=squeeze(jnp.full(num_chains, warm.tuning.step_size_at(int(num_warmup)), dtype=position.dtype)),
            full_gradient=squeeze(jnp.zeros(num_chains, dtype=bool)),
            kernel_state=warm.state,
            tuning=warm.tuning,
            rng_key=warm.rng,
            i=jnp.zeros((), dtype=jnp.int32),
        )

    @staticmethod
    def _squeeze(batched):
        return (lambda x: x) if batched else (lambda x: x[0])

    def sample(self, state, model_args, model_kwargs):
        kernel, backend, batched, num_warmup = self._run()
        squeeze = self._squeeze(batched)

        def step(state):
            position = state.kernel_state.position
            key, k_idx, k_noise = jax.random.split(state.rng_key, 3)
            idx = jax.random.randint(k_idx, (position.shape[0], kernel.batch_size), 0, backend.num_data)
            noise = jax.random.normal(k_noise, position.shape, position.dtype)
            kernel_state, info = kernel.update(backend, state.kernel_state, idx, noise, state.tuning)
            new = LangevinMCMCState(
                z=squeeze(kernel_state.position),
                diverging=squeeze(info["diverging"]),
                grad_evals=state.grad_evals + squeeze(info["grad_evals"]),
                step_size=squeeze(info["step_size"]),
                full_gradient=squeeze(info["full_gradient"]),
                kernel_state=kernel_state,
                tuning=state.tuning,
                rng_key=key,
                i=state.i + 1,
            )
            # the same dtypes as the pass-through branch (lax.cond needs them equal)
            return jax.tree_util.tree_map(lambda a, b: jnp.asarray(a, dtype=jnp.result_type(b)), new, state)

        def pass_through(state):  # warmup already ran in init
            return state._replace(i=state.i + 1)

        return jax.lax.cond(state.i < num_warmup, pass_through, step, state)

    def postprocess_fn(self, model_args, model_kwargs):
        backend = self._run()[1]

        def constrain(z):
            flat = jnp.reshape(z, (-1, backend.dim))
            values = backend._constrain(flat)
            return {k: jnp.reshape(v, jnp.shape(z)[:-1] + v.shape[1:]) for k, v in values.items()}

        return constrain

    def get_diagnostics_str(self, state):
        return f"step size {float(np.ravel(state.step_size)[0]):.2e}"
