"""ppzoo's Langevin kernels as NumPyro ``MCMCKernel``s.

    mcmc = numpyro.infer.MCMC(SARAHLD(model), num_warmup=1000, num_samples=1000,
                              num_chains=4, chain_method="vectorized")
    mcmc.run(jax.random.PRNGKey(0), x, y=y)
    idata = az.from_numpyro(mcmc)

The adapter turns a kernel's chain-batched ``setup`` / ``init_state`` /
``update`` into NumPyro's ``init`` / ``sample``. With
``chain_method="vectorized"`` NumPyro hands ``init`` one key per chain and
the kernel runs all chains as one batch (each with its own minibatches, and
full-gradient refreshes as real branches); with ``"sequential"`` (what
``"parallel"`` becomes on a single device) each chain is a batch of one.
``z`` (the sample field) is the flat unconstrained vector, ``(D,)`` or
``(C, D)``; ``postprocess_fn`` maps it to the model's constrained sites. The
state also carries ``diverging`` (a default field), and ``grad_evals``
(cumulative per-datum gradient evaluations), ``step_size`` and
``full_gradient``, which ``MCMC.run(..., extra_fields=(...))`` can collect.
``init_params``, when given, are constrained site values (one per chain,
leading axis ``C`` when ``num_chains > 1``), not NumPyro's unconstrained ones.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.mcmc import MCMCKernel
from numpyro.util import is_prng_key

__all__ = ["NumPyroMCMCAdapter", "LangevinMCMCState"]


class LangevinMCMCState(NamedTuple):
    z: Any
    diverging: Any
    grad_evals: Any
    step_size: Any
    full_gradient: Any
    kernel_state: Any
    rng_key: Any


class NumPyroMCMCAdapter(MCMCKernel):
    """NumPyro's ``MCMCKernel`` interface for a ppzoo Langevin kernel (a mixin)."""

    sample_field = "z"

    @property
    def default_fields(self):
        return ("z", "diverging")

    def _bound(self):
        bound = getattr(self, "_numpyro_run", None)
        if bound is None:
            raise RuntimeError("call init (numpyro.infer.MCMC does) before sample")
        return bound

    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        from ppzoo.backends.numpyro_backend import NumPyroBackend

        if self.model is None:
            raise ValueError(f"{type(self).__name__} needs the model to run under numpyro.infer.MCMC: {type(self).__name__}(model, ...)")
        backend = NumPyroBackend(self.model, model_args, model_kwargs, data_plate=self.data_plate)
        batched = not is_prng_key(rng_key)
        key = rng_key[0] if batched else rng_key
        num_chains = rng_key.shape[0] if batched else 1
        if init_params is not None:
            position = backend.unconstrain({k: jnp.reshape(v, (num_chains,) + jnp.shape(v)[batched:]) for k, v in init_params.items()})
        else:
            position, key = backend.init_positions(key, num_chains)
        kernel, setup_cost = self.setup(backend, position)
        kernel_state, key, init_cost = kernel.init_state(backend, position, key)
        # The bound kernel and backend are run-time companions, not settings.
        object.__setattr__(self, "_numpyro_run", (kernel, backend, batched))
        spent = jnp.full((num_chains,), setup_cost + init_cost, dtype=jnp.int32)
        squeeze = self._squeeze(batched)
        return LangevinMCMCState(
            z=squeeze(position),
            diverging=squeeze(jnp.zeros(num_chains, dtype=bool)),
            grad_evals=squeeze(spent),
            step_size=squeeze(jnp.zeros(num_chains, dtype=position.dtype)),
            full_gradient=squeeze(jnp.zeros(num_chains, dtype=bool)),
            kernel_state=kernel_state,
            rng_key=key,
        )

    @staticmethod
    def _squeeze(batched):
        return (lambda x: x) if batched else (lambda x: x[0])

    def sample(self, state, model_args, model_kwargs):
        kernel, backend, batched = self._bound()
        position = state.kernel_state.position
        key, k_idx, k_noise = jax.random.split(state.rng_key, 3)
        idx = jax.random.randint(k_idx, (position.shape[0], kernel.batch_size), 0, backend.num_data)
        noise = jax.random.normal(k_noise, position.shape, position.dtype)
        kernel_state, info = kernel.update(backend, state.kernel_state, idx, noise)
        squeeze = self._squeeze(batched)
        return LangevinMCMCState(
            z=squeeze(kernel_state.position),
            diverging=squeeze(info["diverging"]),
            grad_evals=state.grad_evals + squeeze(info["grad_evals"]),
            step_size=squeeze(info["step_size"]),
            full_gradient=squeeze(info["full_gradient"]),
            kernel_state=kernel_state,
            rng_key=key,
        )

    def postprocess_fn(self, model_args, model_kwargs):
        _, backend, _ = self._bound()

        def constrain(z):
            flat = jnp.reshape(z, (-1, backend.dim))
            values = backend._constrain(flat)
            return {k: jnp.reshape(v, jnp.shape(z)[:-1] + v.shape[1:]) for k, v in values.items()}

        return constrain

    def get_diagnostics_str(self, state):
        return f"step size {float(np.ravel(state.step_size)[0]):.2e}"
