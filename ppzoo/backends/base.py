"""The gradient-oracle contract every sampler is written against.

A backend wraps one user program (Pyro or NumPyro) and offers, for ``C`` chains
at once, with ``theta`` the flat unconstrained parameters of shape ``(C, D)``
and ``idx`` minibatch indices into the data plate of shape ``(C, B)``:

* ``potential(theta, idx)``  ``(C,)``:
  ``U_idx(theta) = -log p(theta) - log|J(theta)| - (N / B) * sum_{i in idx} log p(x_i | theta)``
* ``grad(theta, idx)``  ``(C, D)``: its gradient in ``theta``;
* ``full_grad(theta)``  ``(C, D)``: the gradient of the full-data potential
  ``U(theta)``, computed in chunks of the data so memory stays bounded;
* ``full_hvp(theta, v)``  ``(C, D)``: its Hessian-vector products, by autodiff;
* ``log_likelihood(theta)``: per observed site, ``log p(x_i | theta)`` of shape ``(S, N)``;
* ``pointwise(theta)``: ``lp = -U(theta)`` ``(S,)`` (the full-data log density in the
  unconstrained space, ``log|J|`` included, as NumPyro's ``-potential_energy``)
  together with the per-datum log-likelihood, from one pass over the data;
* ``constrain(theta)``: per latent site, values in the support, ``(S, *site_shape)``.

and the array primitives a sampler's driver needs (random indices and noise,
a block of steps run fast: ``jit`` + ``lax`` loops for JAX, a loop over
chain-batched tensors for torch). Nothing outside ``ppzoo.backends`` knows
which PPL it talks to.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import numpy as np

from ppzoo.backends.layout import ModelLayout

__all__ = ["Backend", "reduce_info"]


class Backend(abc.ABC):
    """A user program seen through the gradient-oracle contract (see module docstring)."""

    #: ``"numpyro"`` or ``"pyro"``
    name: str
    layout: ModelLayout
    model: Callable
    args: tuple
    kwargs: dict

    @property
    def num_data(self) -> int:
        """N, the size of the data plate."""
        return self.layout.num_data

    @property
    def dim(self) -> int:
        """D, the length of the unconstrained parameter vector."""
        return self.layout.dim

    # -- the gradient oracle -------------------------------------------------
    @abc.abstractmethod
    def potential(self, theta, idx):
        """``(C, D), (C, B) -> (C,)``: the N/B-scaled minibatch potential."""

    @abc.abstractmethod
    def grad(self, theta, idx):
        """``(C, D), (C, B) -> (C, D)``: gradient of :meth:`potential`."""

    @abc.abstractmethod
    def full_potential(self, theta):
        """``(C, D) -> (C,)``: the full-data potential, in chunks."""

    @abc.abstractmethod
    def full_grad(self, theta):
        """``(C, D) -> (C, D)``: gradient of the full-data potential, in chunks."""

    @abc.abstractmethod
    def full_hvp(self, theta, v):
        """``(C, D), (C, D) -> (C, D)``: Hessian-vector products ``H(theta_c) v_c`` of the
        full-data potential, by automatic differentiation (forward over reverse: ``jax.jvp`` of
        the gradient; torch's double backward), in chunks of the data. Counted as two
        full-data gradients."""

    @abc.abstractmethod
    def pointwise(self, theta) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(S, D) -> (lp, loglik)``: ``lp = -U(theta)`` ``(S,)`` on all the data (the
        unconstrained-space log density, ``log|J|`` included) and per observed site an
        ``(S, N)`` array of ``log p(x_i | theta)``."""

    def log_likelihood(self, theta) -> dict[str, np.ndarray]:
        """``(S, D) ->`` per observed site an ``(S, N)`` array of ``log p(x_i | theta)``."""
        return self.pointwise(theta)[1]

    @abc.abstractmethod
    def constrain(self, theta) -> dict[str, np.ndarray]:
        """``(S, D) ->`` per latent site its constrained value, ``(S, *shape)``."""

    @abc.abstractmethod
    def deterministic(self, theta) -> dict[str, np.ndarray]:
        """``(S, D) ->`` per ``deterministic`` statement its value ``(S, *shape)``, from a run on
        all the data (``{}`` for a model with none)."""

    @abc.abstractmethod
    def unconstrain(self, values: dict[str, Any]):
        """Per latent site a constrained value ``(C, *shape)`` -> ``theta`` of shape ``(C, D)``."""

    @abc.abstractmethod
    def strategy_values(self, init_strategy: Callable, num_chains: int, seed: int) -> dict[str, Any]:
        """Per latent site the value ``init_strategy`` (an init strategy of the model's PPL, e.g.
        ``init_to_median``) gives it, one run per chain with its own seed: ``(C, *shape)``, the
        backend's arrays (:mod:`ppzoo.backends.initial`)."""

    @abc.abstractmethod
    def observed_data(self) -> dict[str, np.ndarray]:
        """The observed values of the sites in the data plate, full data."""

    # -- array primitives for drivers ---------------------------------------
    @abc.abstractmethod
    def rng(self, seed: int):
        """A random state for this backend (a JAX key, or a torch ``Generator``)."""

    @abc.abstractmethod
    def init_positions(self, rng, num_chains: int, radius: float = 2.0):
        """``(C, D)`` starting points drawn uniformly in ``[-radius, radius]`` (unconstrained space);
        returns ``(positions, rng)``."""

    @abc.abstractmethod
    def run_block(self, kernel, state, rng, num_draws: int, thinning: int, tuning, method: str = "update"):
        """Run ``num_draws * thinning`` sampler steps; keep every ``thinning``-th.

        Each step is ``getattr(kernel, method)(backend, state, idx, noise, tuning)
        -> (state, info)``, one step of a chain-batched kernel, with ``idx`` fresh
        minibatch indices ``(C, kernel.batch_size)`` drawn uniformly with
        replacement and ``noise`` standard normal ``(C, D)``. ``tuning`` (step
        size and preconditioner) is handed to every step unopened; under JAX it
        is data of the compiled block, which is cached per
        ``(kernel, method, num_draws, thinning)``.
        Returns ``(state, rng, positions, infos)`` with positions as a NumPy
        array ``(num_draws, C, D)`` and infos a dict of NumPy arrays whose
        leading axis is the draw; per-step quantities named in
        ``step_fn``'s info as ``grad_evals`` are summed over the skipped steps.
        """

    @abc.abstractmethod
    def minimize(self, theta, rng, num_steps: int, learning_rate: float, batch_size: int):
        """Minibatch Adam on the potential from ``theta`` ``(C, D)``, every chain on its own.

        Minimises ``U_idx(theta) / N`` with fresh indices each step and a cosine
        learning-rate decay from ``learning_rate`` to a hundredth of it (the
        PPL's own optimiser: optax for JAX, ``torch.optim`` for torch).
        Returns ``(theta, rng)``; costs ``num_steps * batch_size`` per chain.
        """

    @abc.abstractmethod
    def cond(self, pred, true_fn, false_fn, *operands):
        """``true_fn(*operands) if pred else false_fn(*operands)``, traceable where needed."""

    @abc.abstractmethod
    def to_numpy(self, x) -> np.ndarray:
        """A host NumPy copy of a backend array."""

    @abc.abstractmethod
    def asarray(self, x):
        """A backend array (on the backend's device and default float type) from NumPy."""

    @abc.abstractmethod
    def restore_array(self, x):
        """A backend array on the backend's device from NumPy, keeping ``x``'s dtype (a
        checkpoint's state arrays)."""

    @abc.abstractmethod
    def rng_state(self, rng) -> np.ndarray:
        """The random state ``rng`` as a NumPy array (for a checkpoint)."""

    @abc.abstractmethod
    def restore_rng(self, saved: np.ndarray):
        """The random state that :meth:`rng_state` saved."""


def reduce_info(infos: dict, xp) -> dict:
    """Summarise the ``info`` of the ``thinning`` steps behind one kept draw.

    ``infos`` holds arrays with a leading step axis. ``grad_evals`` adds up
    over the steps; boolean flags (``diverging``) are or-ed; anything else
    keeps the latest value.
    """
    out = {}
    for key, value in infos.items():
        if key == "grad_evals":
            out[key] = xp.sum(value, axis=0, dtype=value.dtype)
        elif str(value.dtype).endswith("bool"):
            out[key] = xp.any(value, axis=0)
        else:
            out[key] = value[-1]
    return out
