"""No bare NumPy ``RuntimeWarning`` (``invalid value encountered``, ``divide by zero``) nor ArviZ log line
reaches the user from a run whose draws are legitimately constant: an ``LKJCholesky`` latent (its unit
diagonal and the zeros above it are constants of the constraint, neither flagged nor warned about),
``temperature=0`` (noise-free chains, which optimise: the warning says so), chains stuck by a step
size too small to move (said in words), one chain (no R-hat)."""

import logging
import warnings

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pytest
import torch
from conftest import slow_for

import ppzoo
from ppzoo.diagnostics.convergence import ConvergenceWarning

RUN = dict(num_samples=50, num_warmup=50, progress_bar=False, seed=0)


def numpyro_lkj(y):
    chol = numpyro.sample("L", ndist.LKJCholesky(3, 2.0))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", ndist.MultivariateNormal(jnp.zeros(3), scale_tril=chol), obs=y)


def pyro_lkj(y):
    chol = pyro.sample("L", pdist.LKJCholesky(3, 2.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", pdist.MultivariateNormal(torch.zeros(3), scale_tril=chol), obs=y)


def numpyro_location(y):
    mu = numpyro.sample("mu", ndist.Normal(0.0, 10.0))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", ndist.Normal(mu, 1.0), obs=y)


def pyro_location(y):
    mu = pyro.sample("mu", pdist.Normal(0.0, 10.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", pdist.Normal(mu, 1.0), obs=y)


LKJ = {"numpyro": numpyro_lkj, "pyro": pyro_lkj}
LOCATION = {"numpyro": numpyro_location, "pyro": pyro_location}


def data(backend, *shape):
    y = np.random.default_rng(0).normal(size=(50, *shape)).astype(np.float32)
    return torch.as_tensor(y) if backend == "pyro" else y


def run(model, y, caplog, **settings):
    """The run's warnings, none of them NumPy's ``RuntimeWarning`` and no ArviZ log line."""
    with caplog.at_level(logging.WARNING, logger="arviz"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ppzoo.sample(model, y, **{**RUN, **settings})
    bare = [str(w.message) for w in caught if w.category is RuntimeWarning
            and ("encountered" in str(w.message) or "divide by zero" in str(w.message))]
    assert not bare, bare
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("arviz")]
    return [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]


@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: b == "numpyro"))
def test_the_constants_of_an_lkj_cholesky_are_not_flagged(backend, caplog):
    said = run(LKJ[backend], data(backend, 3), caplog, method="sgld", step_size=1e-3, adapt=False, num_warmup=0)
    flagged = " ".join(said)
    for constant in ("L[0, 0]", "L[0, 1]", "L[0, 2]", "L[1, 2]"):
        assert constant not in flagged, flagged
    assert "do not move" not in flagged and "could not be computed" not in flagged, flagged


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_temperature_zero_says_what_it_does(backend, caplog):
    said = run(LOCATION[backend], data(backend), caplog, temperature=0.0)
    assert len(said) == 1 and said[0].startswith("the draws are not posterior draws: temperature=0"), said


def test_stuck_chains_are_said_in_words(caplog):
    said = run(LOCATION["numpyro"], data("numpyro"), caplog, step_size=1e-30, adapt=False)
    assert len(said) == 1 and "draws that do not move: mu constant in 4 of 4 chains" in said[0], said


def test_one_chain_logs_nothing(caplog):
    run(LOCATION["numpyro"], data("numpyro"), caplog, num_chains=1)
