"""``ppzoo.fit(..., batch_size=B)`` takes minibatches of a model written for NUTS (the data used whole,
``with plate("data", x.shape[0]): sample("y", ..., obs=y)``) as ``ppzoo.sample`` does: the arguments
with N rows sliced to the minibatch, the likelihood scaled by ``N / B``. Checked against the exact
posterior of a conjugate linear regression, which a mean-field Gaussian guide fits exactly (its
posterior covariance is near diagonal here): a fit whose minibatch likelihood were not scaled by
``N / B`` would have sds twice the posterior's (N / B = 4)."""

import warnings

import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pytest
import torch
from conftest import slow_for
from numpyro.infer import autoguide as nag
from pyro.infer import autoguide as pag

import ppzoo
from ppzoo.diagnostics.fit_convergence import FitConvergenceWarning

N, B = 200, 50


def numpyro_regression(x, y):
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([2]).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", ndist.Normal(x @ w, 1.0), obs=y)


def pyro_regression(x, y):
    w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([2]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Normal(x @ w, 1.0), obs=y)


def numpyro_sized(x, y, n):
    """The plate sized by an argument, the data used whole: the plate itself scales by N / B."""
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([2]).to_event(1))
    with numpyro.plate("data", n):
        numpyro.sample("y", ndist.Normal(x @ w, 1.0), obs=y)


def pyro_sized(x, y, n):
    w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([2]).to_event(1))
    with pyro.plate("data", n):
        pyro.sample("y", pdist.Normal(x @ w, 1.0), obs=y)


MODELS = {"numpyro": numpyro_regression, "pyro": pyro_regression}
SIZED = {"numpyro": numpyro_sized, "pyro": pyro_sized}
GUIDES = {"numpyro": nag, "pyro": pag}


def regression_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 2)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0]) + rng.normal(size=N)).astype(np.float32)
    precision = np.eye(2) + x.T.astype(np.float64) @ x
    mean = np.linalg.solve(precision, x.T.astype(np.float64) @ y)
    return x, y, mean, np.sqrt(np.diag(np.linalg.inv(precision)))


def loc_and_scale(backend, params):
    if backend == "numpyro":
        return np.asarray(params["w_auto_loc"]), np.asarray(params["w_auto_scale"])
    return np.asarray(params["AutoNormal.locs.w"]), np.asarray(params["AutoNormal.scales.w"])


def fitted(backend, model, *args, batch_size=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitConvergenceWarning)
        fit = ppzoo.fit(model, GUIDES[backend].AutoNormal(model), *args, batch_size=batch_size, num_steps=1500,
                        seed=0, progress_bar=False, refine=False)
    return loc_and_scale(backend, fit.params)


@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: b == "numpyro"))
def test_a_nuts_style_model_fits_on_minibatches(backend):
    x, y, mean, sd = regression_data()
    loc, scale = fitted(backend, MODELS[backend], x, y, batch_size=B)
    full_loc, full_scale = fitted(backend, MODELS[backend], x, y)
    # the guide's optimum is the exact posterior (mean-field error below 2% here); the stochastic fit
    # leaves its mean within 0.2 sd of it over seeds 0-2, its sd within 15%: tolerances twice that
    np.testing.assert_array_less(np.abs(loc - mean) / sd, 0.4)
    np.testing.assert_array_less(np.abs(scale / sd - 1), 0.3)
    np.testing.assert_array_less(np.abs(loc - full_loc) / sd, 0.4)
    np.testing.assert_array_less(np.abs(scale / full_scale - 1), 0.3)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_a_plate_sized_by_an_argument_is_scaled_once(backend):
    x, y, mean, sd = regression_data()
    loc, scale = fitted(backend, SIZED[backend], x, y, N, batch_size=B)
    np.testing.assert_array_less(np.abs(loc - mean) / sd, 0.4)
    np.testing.assert_array_less(np.abs(scale / sd - 1), 0.3)


# -- what cannot be minibatched by slicing is refused, or runs full-batch, as in ppzoo.sample ------------
def numpyro_local(y):
    mu = numpyro.sample("mu", ndist.Normal(0.0, 1.0))
    with numpyro.plate("data", y.shape[0]):
        z = numpyro.sample("z", ndist.Normal(mu, 1.0))
        numpyro.sample("y", ndist.Normal(z, 1.0), obs=y)


def pyro_local(y):
    mu = pyro.sample("mu", pdist.Normal(0.0, 1.0))
    with pyro.plate("data", y.shape[0]):
        z = pyro.sample("z", pdist.Normal(mu, 1.0))
        pyro.sample("y", pdist.Normal(z, 1.0), obs=y)


def numpyro_per_datum_guide(y):
    numpyro.sample("mu", ndist.Normal(numpyro.param("m", 0.0), 1.0))
    z_loc = numpyro.param("z_loc", np.zeros(y.shape[0], dtype=np.float32))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("z", ndist.Normal(z_loc, 0.7))


def pyro_per_datum_guide(y):
    pyro.sample("mu", pdist.Normal(pyro.param("m", torch.tensor(0.0)), 1.0))
    z_loc = pyro.param("z_loc", torch.zeros(y.shape[0]))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("z", pdist.Normal(z_loc, 0.7))


def numpyro_amortised_guide(y):
    numpyro.sample("mu", ndist.Normal(numpyro.param("m", 0.0), 1.0))
    a = numpyro.param("a", 0.5)
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("z", ndist.Normal(a * y, 0.7))


def pyro_amortised_guide(y):
    pyro.sample("mu", pdist.Normal(pyro.param("m", torch.tensor(0.0)), 1.0))
    a = pyro.param("a", torch.tensor(0.5))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("z", pdist.Normal(a * y, 0.7))


def numpyro_reads_count(y):
    mu = numpyro.sample("mu", ndist.Normal(0.0, 1.0 / y.shape[0] ** 0.5))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", ndist.Normal(mu, 1.0), obs=y)


def pyro_reads_count(y):
    mu = pyro.sample("mu", pdist.Normal(0.0, 1.0 / y.shape[0] ** 0.5))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", pdist.Normal(mu, 1.0), obs=y)


LOCAL = {"numpyro": numpyro_local, "pyro": pyro_local}
PER_DATUM_GUIDE = {"numpyro": numpyro_per_datum_guide, "pyro": pyro_per_datum_guide}
AMORTISED_GUIDE = {"numpyro": numpyro_amortised_guide, "pyro": pyro_amortised_guide}
READS_COUNT = {"numpyro": numpyro_reads_count, "pyro": pyro_reads_count}


def small_y(backend, n=40):
    y = np.random.default_rng(1).normal(size=n).astype(np.float32)
    return torch.as_tensor(y) if backend == "pyro" else y


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_a_per_datum_parameter_sized_by_the_data_is_refused(backend):
    with pytest.raises(ValueError, match=r"batch_size: the guide's parameter\(s\) \['z_loc'\] take their shape from "
                                         r"the data \('z_loc' has shape \(40,\) on all N=40 rows, \(2,\) on 2\)"):
        ppzoo.fit(LOCAL[backend], PER_DATUM_GUIDE[backend], small_y(backend), batch_size=10, num_steps=2,
                  progress_bar=False)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_an_autoguide_of_per_datum_latents_is_refused(backend):
    model = LOCAL[backend]
    with pytest.raises(ValueError, match=r"batch_size: model '.*_local' has latent site\(s\) \['z'\] in the data "
                                         r"plate 'data'.*the autoguide AutoNormal would then make its per-datum"):
        ppzoo.fit(model, GUIDES[backend].AutoNormal(model), small_y(backend), batch_size=10, num_steps=2,
                  progress_bar=False)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_an_amortised_guide_of_per_datum_latents_runs_on_minibatches(backend):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitConvergenceWarning)
        fit = ppzoo.fit(LOCAL[backend], AMORTISED_GUIDE[backend], small_y(backend), batch_size=10, num_steps=20,
                        progress_bar=False, refine=False)
    assert len(fit.losses) == 20 and np.all(np.isfinite(fit.losses))


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_a_model_that_reads_its_data_elsewhere_runs_full_batch(backend):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitConvergenceWarning)
        with pytest.warns(UserWarning, match=r"model '.*_reads_count' reads its data outside the rows of the data "
                                             r"plate 'data' \(N=40\).*ppzoo runs it full-batch"):
            ppzoo.fit(READS_COUNT[backend], GUIDES[backend].AutoNormal(READS_COUNT[backend]), small_y(backend),
                      batch_size=10, num_steps=2, progress_bar=False)
