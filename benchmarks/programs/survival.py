"""Weibull survival regression with right censoring (300 simulated subjects)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

NAME = "survival"
DESCRIPTION = "Weibull AFT regression, right-censored: observed rows by a masked likelihood, censored by factor log S(t); 300 rows"
IDIOMS = ("survival", "censoring", "factor", "mask")


def model(x, t, censored):
    b0 = numpyro.sample("b0", dist.Normal(0.0, 3.0))
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    k = numpyro.sample("k", dist.Gamma(2.0, 1.0))  # Weibull shape
    scale = jnp.exp(b0 + x @ w)
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("t", dist.Weibull(scale, k).mask(~censored), obs=t)
        # a censored time contributes the survival function: log S(t) = -(t / scale)^k
        numpyro.factor("censored_t", jnp.where(censored, -((t / scale) ** k), 0.0))


def data():
    rng = np.random.default_rng(5)
    n = 300
    x = rng.normal(size=(n, 2)).astype(np.float32)
    scale = np.exp(1.0 + x @ np.array([0.5, -0.3]))
    event_time = scale * rng.weibull(1.5, size=n)
    censor_time = rng.exponential(2.0 * np.median(event_time), size=n)
    censored = event_time > censor_time
    t = np.minimum(event_time, censor_time).astype(np.float32)
    return (x, t, censored), {}
