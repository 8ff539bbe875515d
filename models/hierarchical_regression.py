"""Hierarchical (varying-intercept) regression, centred.

    mu_a ~ N(0, 1),  tau_a ~ HalfNormal(1),  a_g ~ N(mu_a, tau_a),  beta ~ N(0, 1),  sigma ~ HalfNormal(1),
    y_i ~ N(a_{g_i} + beta x_i, sigma),   i in the plate "data".

Default data: scikit-learn's iris set: petal length against sepal length,
both standardised, with one intercept per species (N = 150, 3 groups of 50).

Centred, because the data pin each group's intercept down (50 observations
a group): the non-centred form ``a_g = mu_a + tau_a a~_g`` then puts the
posterior on a curved ridge in ``(mu_a, tau_a, a~)`` whose curvature changes
along it, which no fixed preconditioner fits (Langevin needs tiny steps
there); the centred posterior is close to Gaussian in the unconstrained
space (Betancourt & Girolami 2015 on when each form suits).
"""

from __future__ import annotations

import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist

from ppzoo.data import load_iris_grouped

from .registry import ModelSpec

__all__ = ["numpyro_model", "pyro_model", "load_data", "SPEC"]


def numpyro_model(x, group, num_groups, y=None):
    """``x``: ``(N,)`` predictor; ``group``: ``(N,)`` integer group of each datum; ``y``: ``(N,)`` or ``None``."""
    mu_a = numpyro.sample("mu_a", ndist.Normal(0.0, 1.0))
    tau_a = numpyro.sample("tau_a", ndist.HalfNormal(1.0))
    a = numpyro.sample("a", ndist.Normal(mu_a, tau_a).expand([num_groups]).to_event(1))
    beta = numpyro.sample("beta", ndist.Normal(0.0, 1.0))
    sigma = numpyro.sample("sigma", ndist.HalfNormal(1.0))
    with numpyro.plate("data", x.shape[0], subsample_size=None) as idx:
        loc = a[group[idx]] + beta * x[idx]
        numpyro.sample("y", ndist.Normal(loc, sigma), obs=None if y is None else y[idx])


def pyro_model(x, group, num_groups, y=None):
    """``x``: ``(N,)`` tensor; ``group``: ``(N,)`` integer tensor; ``y``: ``(N,)`` tensor or ``None``."""
    mu_a = pyro.sample("mu_a", pdist.Normal(0.0, 1.0))
    tau_a = pyro.sample("tau_a", pdist.HalfNormal(1.0))
    a = pyro.sample("a", pdist.Normal(mu_a, tau_a).expand([num_groups]).to_event(1))
    beta = pyro.sample("beta", pdist.Normal(0.0, 1.0))
    sigma = pyro.sample("sigma", pdist.HalfNormal(1.0))
    with pyro.plate("data", x.shape[0], subsample_size=None) as idx:
        loc = a[group[idx]] + beta * x[idx]
        pyro.sample("y", pdist.Normal(loc, sigma), obs=None if y is None else y[idx])


def load_data():
    """``(args, kwargs)``: standardised sepal length, species, 3, and standardised petal length."""
    x, group, y = load_iris_grouped()
    return (x, group, 3), {"y": y}


SPEC = ModelSpec(
    name="hierarchical_regression",
    description="Varying-intercept regression, centred (intercept per iris species)",
    numpyro_model=numpyro_model,
    pyro_model=pyro_model,
    load_data=load_data,
    data="iris (standardised)",
    # three groups leave tau_a weakly identified (a funnel at small tau_a): a smaller NUTS step avoids divergences
    reference_recipe={"target_accept_prob": 0.99},
    # SGLD on all 150 rows (the default batch here): the same chain as SGLD-CV, whose control variate
    # cancels exactly on the full batch, at half the gradients per step. Thinning 50: at small tau_a
    # the step size is small (0.02 to 0.04), and thinning 5 left bulk ESS at 160 to 240 and R-hat up
    # to 1.03; 50 gives about 1,200
    sampler_defaults={"method": "sgld", "num_warmup": 3000, "num_samples": 1000, "thinning": 50},
)
