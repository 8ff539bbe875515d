"""Empirical Lipschitz ratios ``||f(a) - f(b)|| / ||a - b||`` of a JAX map, for checking its bounds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from ..checks import check_constant, check_dim

__all__ = ["lipschitz_ratios"]


def _ratio(f, a, b):
    return jnp.linalg.norm(f(a) - f(b), axis=-1) / jnp.linalg.norm(a - b, axis=-1)


def lipschitz_ratios(f, dim: int, *, num_pairs: int = 10_000, search_pairs: int = 64, search_steps: int = 200,
                     scale: float = 2.0, seed: int = 0, lr: float = 0.05) -> dict:
    """Smallest and largest ratio on random pairs and by gradient search (as :func:`ppzoo.nn.torch.lipschitz_ratios`).

    Returns ``{"random_min", "random_max", "search_min", "search_max"}`` (floats).
    """
    dim = check_dim("dim", dim)
    num_pairs, search_pairs = check_dim("num_pairs", num_pairs), check_dim("search_pairs", search_pairs)
    scale = check_constant("scale", scale, positive=True)
    k1, k2, k3, k4, k5 = jax.random.split(jax.random.PRNGKey(seed), 5)
    a = scale * jax.random.normal(k1, (num_pairs, dim))
    b = scale * jax.random.normal(k2, (num_pairs, dim))
    close = (jnp.arange(num_pairs) % 2 == 1)[:, None]
    b = jnp.where(close, a + 1e-3 * scale * jax.random.normal(k3, (num_pairs, dim)), b)
    r = jax.jit(lambda a, b: _ratio(f, a, b))(a, b)
    out = {"random_min": float(r.min()), "random_max": float(r.max())}
    for sign, key, name in ((1.0, k4, "search_min"), (-1.0, k5, "search_max")):
        ka, kb = jax.random.split(key)
        pair = (scale * jax.random.normal(ka, (search_pairs, dim)),)
        pair = (pair[0], pair[0] + 0.1 * scale * jax.random.normal(kb, (search_pairs, dim)))
        opt = optax.adam(lr * scale)

        @jax.jit
        def step(pair, state, sign=sign, opt=opt):
            def loss(p):
                ratio = _ratio(f, *p)
                return sign * jnp.sum(jnp.log(ratio)), ratio

            (_, ratio), g = jax.value_and_grad(loss, has_aux=True)(pair)
            updates, state = opt.update(g, state)
            return optax.apply_updates(pair, updates), state, ratio

        state = opt.init(pair)
        best = float("inf") if sign > 0 else 0.0
        for _ in range(search_steps):
            pair, state, ratio = step(pair, state)
            best = min(best, float(ratio.min())) if sign > 0 else max(best, float(ratio.max()))
        out[name] = best
    return out
