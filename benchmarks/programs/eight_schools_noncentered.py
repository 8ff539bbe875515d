"""Eight schools (Rubin 1981), non-centred: the school effects are latents inside the data plate."""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist

NAME = "eight_schools_noncentered"
DESCRIPTION = "y_j ~ N(mu + tau theta_tilde_j, sigma_j); theta_tilde in the 8-school plate with the observations"
IDIOMS = ("hierarchical", "non-centred", "latent-in-data-plate")


def model(sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", sigma.shape[0]):
        theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * theta_tilde)
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def data():
    y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], dtype=np.float32)
    sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], dtype=np.float32)
    return (sigma,), {"y": y}
