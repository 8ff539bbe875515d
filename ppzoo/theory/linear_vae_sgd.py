"""Online SGD on the linear VAE's exact loss at finite ``N`` (JAX, compiled), recording the
order parameters that :mod:`ppzoo.theory.linear_vae_hd`'s ODEs predict.

One step, for a fresh ``x = sqrt(rho / N) W* c + sqrt(eta) n``, with ``s = W' x / sqrt(N)``,
``mu = W~ x / sqrt(N)``, ``Q = W' W / N`` and ``g = (Q + beta) mu - s``::

    W  <- W  - tau [-x mu' / sqrt(N) + W (mu mu' + diag(v) + lambda) / N]
    W~ <- W~ - tau [g x' / sqrt(N) + lambda W~ / N]
    v  <- v  - (tau / N) [diag(Q) + beta (1 - 1 / v)] / 2

the gradients of the loss in :mod:`~ppzoo.theory.linear_vae_hd` plus the ridge
``lambda / (2N) (|W|^2 + |W~|^2)``. With ``setting.sampled_z`` the step is SVI's instead: one
``z = mu + sqrt(v) eps`` per datum and the KL sampled, so ``mu mu' + diag(v)`` becomes ``z z'``,
``g`` becomes ``(Q + beta) z - s`` and ``v``'s gradient is
``[(Q z - s)_k + beta z_k] eps_k / (2 sqrt(v_k)) - beta / (2 v_k)``. Initial ``W``, ``W~`` with
N(0, 1) entries, ``v = 1``. The teacher is ``W* = 1`` (all ones) for ``M* = 1``, else ``sqrt(N)``
times orthonormal columns.
"""

from __future__ import annotations

import functools

import numpy as np

from ppzoo.theory.linear_vae_hd import OrderParameters, Setting

__all__ = ["simulate", "teacher"]


def teacher(num_dims: int, teacher_dim: int, seed: int = 0) -> np.ndarray:
    """``W*`` ``(N, M*)`` with ``W*' W* / N = I``: all ones for ``M* = 1``."""
    if teacher_dim == 1:
        return np.ones((num_dims, 1))
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((num_dims, teacher_dim)))
    return np.sqrt(num_dims) * q


def simulate(setting: Setting, num_dims: int, latent_dim: int, teacher_dim: int, t_max: float, record_every: float,
             seeds, anneal=None):
    """Online SGD from ``t = 0`` to ``t_max`` (``t = step / N``), one run per seed (``vmap``).

    Args:
        setting: ``rho``, ``eta``, ``lam``, ``tau`` and a constant ``beta`` (ignored where
            ``anneal`` is given).
        anneal: ``(beta_f, gamma)`` for the KL-annealing schedule ``beta(t) = beta_f tanh(gamma t)``,
            or ``None`` for the constant ``setting.beta``. Every run of one shape shares one
            compiled function, whatever its constants and schedule.
        record_every: time between recorded states (a whole number of steps, at least one).

    Returns:
        ``(times (T,), states)``: ``states[i][j]`` the :class:`OrderParameters` of seed ``i`` at
        ``times[j]``, ``times[0] = 0`` the initial state.
    """
    import jax
    import jax.numpy as jnp

    if callable(setting.beta):
        raise ValueError("beta: pass a schedule as anneal=(beta_f, gamma), not as a function in setting")
    n, M, K = int(num_dims), int(latent_dim), int(teacher_dim)
    steps_per_record = max(int(round(record_every * n)), 1)
    num_records = int(round(t_max * n)) // steps_per_record
    if num_records < 1:
        raise ValueError(f"t_max: expected at least one record_every ({record_every}), got {t_max}")
    run = _compiled_run(n, M, K, steps_per_record, num_records, bool(setting.sampled_z))
    beta, gamma = (setting.beta, 0.0) if anneal is None else (float(anneal[0]), float(anneal[1]))
    if anneal is not None and not (beta > 0 and gamma > 0):
        raise ValueError(f"anneal: expected (beta_f > 0, gamma > 0), got {anneal!r}")
    constants = jnp.asarray([setting.rho, setting.eta, setting.lam, setting.tau, beta, gamma], dtype=jnp.float32)
    keys = jnp.stack([jax.random.PRNGKey(int(s)) for s in seeds])
    out = [np.asarray(a, dtype=np.float64) for a in run(keys, constants)]
    times = np.arange(num_records + 1) * steps_per_record / n
    states = [[OrderParameters(*(a[i, j] for a in out)) for j in range(len(times))] for i in range(len(keys))]
    return times, states


@functools.lru_cache(maxsize=32)
def _compiled_run(n, M, K, steps_per_record, num_records, sampled_z=False):
    """``run(keys (S, 2), constants (6,) = [rho, eta, lambda, tau, beta, gamma])``, compiled once
    per shape (the constants are traced, so a sweep over them reuses it); ``gamma > 0`` anneals
    ``beta(t) = beta tanh(gamma t)``."""
    import jax
    import jax.numpy as jnp

    w_star = jnp.asarray(teacher(n, K), dtype=jnp.float32)
    sqrt_n = np.sqrt(n)

    def step(carry, key):
        (W, Wt, v, count), (rho, eta, lam, tau, beta_f, gamma) = carry
        # (the exact loss keeps its two draws per step; fold_in(key, 1) would repeat split(key)[1])
        kc, kn, kz = jax.random.split(key, 3) if sampled_z else (*jax.random.split(key), None)
        c = jax.random.normal(kc, (K,))
        x = jnp.sqrt(rho / n) * (w_star @ c) + jnp.sqrt(eta) * jax.random.normal(kn, (n,))
        s, mu, Q = W.T @ x / sqrt_n, Wt @ x / sqrt_n, W.T @ W / n
        beta = jnp.where(gamma > 0, beta_f * jnp.tanh(gamma * count / n), beta_f)
        qb = Q + beta * jnp.eye(M)
        if sampled_z:
            eps = jax.random.normal(kz, (M,))
            z = mu + jnp.sqrt(v) * eps
            grad_W = -jnp.outer(x, z) / sqrt_n + W @ (jnp.outer(z, z) + lam * jnp.eye(M)) / n
            g = qb @ z - s
            grad_v = g * eps / (2 * jnp.sqrt(v)) - beta / (2 * v)
        else:
            grad_W = -jnp.outer(x, mu) / sqrt_n + W @ (jnp.outer(mu, mu) + jnp.diag(v) + lam * jnp.eye(M)) / n
            g = qb @ mu - s
            grad_v = 0.5 * (jnp.diag(Q) + beta * (1 - 1 / v))
        grad_Wt = jnp.outer(g, x) / sqrt_n + lam * Wt / n
        state = (W - tau * grad_W, Wt - tau * grad_Wt, v - (tau / n) * grad_v, count + 1)
        return (state, carry[1]), None

    def observe(W, Wt, v):
        return (W.T @ w_star / n, Wt @ w_star / n, W.T @ W / n, Wt @ Wt.T / n, W.T @ Wt.T / n, v)

    def record(carry, key):
        carry, _ = jax.lax.scan(step, carry, jax.random.split(key, steps_per_record))
        return carry, observe(*carry[0][:3])

    def one(key, constants):
        k_init, k_init_t, k_run = jax.random.split(key, 3)
        W = jax.random.normal(k_init, (n, M))
        Wt = jax.random.normal(k_init_t, (M, n))
        v = jnp.ones(M)
        first = observe(W, Wt, v)
        carry = ((W, Wt, v, jnp.zeros((), jnp.int32)), tuple(constants))
        _, recorded = jax.lax.scan(record, carry, jax.random.split(k_run, num_records))
        return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), first, recorded)

    return jax.jit(jax.vmap(one, in_axes=(0, None)))
