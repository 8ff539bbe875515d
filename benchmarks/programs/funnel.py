"""Neal's funnel in 10 dimensions: a prior-only program with no data."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

NAME = "funnel"
DESCRIPTION = "Neal's funnel: v ~ N(0, 3), x_k ~ N(0, exp(v / 2)), k = 1..9; no observations"
IDIOMS = ("no-data", "funnel", "varying-curvature")


def model():
    v = numpyro.sample("v", dist.Normal(0.0, 3.0))
    numpyro.sample("x", dist.Normal(0.0, jnp.exp(v / 2)).expand([9]).to_event(1))


def data():
    return (), {}


def exact_draws(rng, num_chains, num_draws):
    """Independent draws of the posterior (here the prior itself): ``{site: (C, S, *shape)}``."""
    v = rng.normal(0.0, 3.0, (num_chains, num_draws))
    x = rng.normal(0.0, 1.0, (num_chains, num_draws, 9)) * np.exp(v / 2)[..., None]
    return {"v": v, "x": x}
