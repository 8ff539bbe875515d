"""British coal-mining disasters 1851-1962 with a continuous, smoothly switching change point."""

from __future__ import annotations

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist

NAME = "change_point"
DESCRIPTION = "Coal-mining disasters (112 years): Poisson rate switching from early to late by a sigmoid at tau ~ U(0, 112)"
IDIOMS = ("count", "change-point", "time-series")

#: disasters per year, 1851-1962 (Jarrett 1979, as in Carlin, Gelfand & Smith 1992)
COUNTS = (
    4, 5, 4, 1, 0, 4, 3, 4, 0, 6, 3, 3, 4, 0, 2, 6, 3, 3, 5, 4, 5, 3, 1, 4, 4, 1, 5, 5,
    3, 4, 2, 5, 2, 2, 3, 4, 2, 1, 3, 2, 2, 1, 1, 1, 1, 3, 0, 0, 1, 0, 1, 1, 0, 0, 3, 1,
    0, 3, 2, 2, 0, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 2, 1, 0, 0, 0, 1, 1, 0, 2, 3, 3, 1, 1,
    2, 1, 1, 1, 1, 2, 4, 2, 0, 0, 0, 1, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1,
)
FIRST_YEAR = 1851
SPAN = float(len(COUNTS))  # years covered: tau lies in [0, SPAN]
#: The posterior of tau has minor modes (near years 3, 58, 85, 91 and 96 after 1851, their profile
#: log densities 12 to 33 below the main mode's near 39); a NUTS chain started in one stays there.
#: The reference's chains start in the main mode.
REFERENCE_INIT = {"tau": 40.0, "early": 3.0, "late": 1.0}


def model(t, y=None):
    tau = numpyro.sample("tau", dist.Uniform(0.0, SPAN))
    early = numpyro.sample("early", dist.Exponential(1.0))
    late = numpyro.sample("late", dist.Exponential(1.0))
    switch = jax.nn.sigmoid(t - tau)  # 0 well before tau, 1 well after; about a year wide
    with numpyro.plate("data", t.shape[0]):
        numpyro.sample("y", dist.Poisson(early * (1.0 - switch) + late * switch), obs=y)


def data():
    t = np.arange(len(COUNTS), dtype=np.float32)  # years since 1851
    return (t,), {"y": np.asarray(COUNTS, dtype=np.int32)}
