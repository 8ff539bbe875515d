"""Online SGD on the linear VAE's exact loss at finite ``N`` (JAX, compiled), recording the
order parameters that :mod:`ppzoo.theory.linear_vae_hd`'s ODEs predict.

One step, for a fresh ``x = sqrt(rho / N) W* c + sqrt(eta) n``, with ``s = W' x / sqrt(N)``,
``mu = W~ x / sqrt(N)``, ``Q = W' W / N`` and ``g = (Q + beta) mu - s``::

    W  <- W  - tau [-x mu' / sqrt(N) + W (mu mu' + diag(v) + lambda) / N]
    W~ <- W~ - tau [g x' / sqrt(N) + lambda W~ / N]
    v  <- v  - (tau / N) [diag(Q) + beta (1 - 1 / v)] / 2

the gradients of the loss in :mod:`~ppzoo.theory.linear_vae_hd` plus the ridge
``lambda / (2N) (|W|^2 + |W~|^2)``. Initial ``W``, ``W~`` with N(0, 1) entries, ``v = 1``. The
teacher is ``W* = 1`` (all ones) for ``M* = 1``, else ``sqrt(N)`` times orthonormal columns.
"""

from __future__ import annotations

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
             seeds, beta_schedule=None):
    """Online SGD from ``t = 0`` to ``t_max`` (``t = step / N``), one run per seed (``vmap``).

    Args:
        setting: ``rho``, ``eta``, ``lam``, ``tau`` and a constant ``beta`` (ignored where
            ``beta_schedule`` is given).
        beta_schedule: ``beta(t)`` written with ``jax.numpy`` (traced), or ``None``.
        record_every: time between recorded states (a whole number of steps, at least one).

    Returns:
        ``(times (T,), states)``: ``states[i][j]`` the :class:`OrderParameters` of seed ``i`` at
        ``times[j]``, ``times[0] = 0`` the initial state.
    """
    import jax
    import jax.numpy as jnp

    if callable(setting.beta) and beta_schedule is None:
        raise ValueError("beta: pass a schedule as beta_schedule= (written with jax.numpy), not in setting")
    n, M, K = int(num_dims), int(latent_dim), int(teacher_dim)
    steps_per_record = max(int(round(record_every * n)), 1)
    num_records = int(round(t_max * n)) // steps_per_record
    if num_records < 1:
        raise ValueError(f"t_max: expected at least one record_every ({record_every}), got {t_max}")
    rho, eta, lam, tau = setting.rho, setting.eta, setting.lam, setting.tau
    w_star = jnp.asarray(teacher(n, K), dtype=jnp.float32)
    sqrt_n = np.sqrt(n)

    def beta_at(step):
        t = step / n
        return beta_schedule(t) if beta_schedule is not None else setting.beta

    def step(state, key):
        W, Wt, v, count = state
        kc, kn = jax.random.split(key)
        c = jax.random.normal(kc, (K,))
        x = np.sqrt(rho / n) * (w_star @ c) + np.sqrt(eta) * jax.random.normal(kn, (n,))
        s, mu, Q = W.T @ x / sqrt_n, Wt @ x / sqrt_n, W.T @ W / n
        beta = beta_at(count)
        g = (Q + beta * jnp.eye(M)) @ mu - s
        grad_W = -jnp.outer(x, mu) / sqrt_n + W @ (jnp.outer(mu, mu) + jnp.diag(v) + lam * jnp.eye(M)) / n
        grad_Wt = jnp.outer(g, x) / sqrt_n + lam * Wt / n
        grad_v = 0.5 * (jnp.diag(Q) + beta * (1 - 1 / v))
        return (W - tau * grad_W, Wt - tau * grad_Wt, v - (tau / n) * grad_v, count + 1), None

    def observe(W, Wt, v):
        return (W.T @ w_star / n, Wt @ w_star / n, W.T @ W / n, Wt @ Wt.T / n, W.T @ Wt.T / n, v)

    def record(state, key):
        state, _ = jax.lax.scan(step, state, jax.random.split(key, steps_per_record))
        return state, observe(*state[:3])

    @jax.jit
    def run(key):
        k_init, k_init_t, k_run = jax.random.split(key, 3)
        W = jax.random.normal(k_init, (n, M))
        Wt = jax.random.normal(k_init_t, (M, n))
        v = jnp.ones(M)
        first = observe(W, Wt, v)
        _, recorded = jax.lax.scan(record, (W, Wt, v, jnp.zeros((), jnp.int32)), jax.random.split(k_run, num_records))
        return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), first, recorded)

    keys = jnp.stack([jax.random.PRNGKey(int(s)) for s in seeds])
    out = [np.asarray(a, dtype=np.float64) for a in jax.vmap(run)(keys)]
    times = np.arange(num_records + 1) * steps_per_record / n
    states = [[OrderParameters(*(a[i, j] for a in out)) for j in range(len(times))] for i in range(len(keys))]
    return times, states
