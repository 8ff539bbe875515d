"""A latent fixed by a conditioning handler (``numpyro.handlers.condition(model, data={"sigma": 1.0})``,
``pyro.condition``) is a fixed value of the model, not data: it has no log-likelihood and is not in
``observed_data`` (it is in ``constant_data``), so ``az.loo`` sees the data alone; the value may be a
plain Python number. The posterior is the conditioned model's: for ``y_i ~ N(mu, 1)``, ``mu ~ N(0, 10^2)``
it is ``N(sum(y) / (N + 0.01), 1 / (N + 0.01))``."""

import warnings

import arviz as az
import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pytest
import torch
from numpyro.infer import autoguide as nag
from pyro.infer import autoguide as pag

import ppzoo
from ppzoo.diagnostics import arviz_compat
from ppzoo.diagnostics.convergence import ConvergenceWarning
from ppzoo.diagnostics.fit_convergence import FitConvergenceWarning

N = 50


def numpyro_model(y):
    mu = numpyro.sample("mu", ndist.Normal(0.0, 10.0))
    sigma = numpyro.sample("sigma", ndist.HalfNormal(2.0))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", ndist.Normal(mu, sigma), obs=y)


def pyro_model(y):
    mu = pyro.sample("mu", pdist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", pdist.HalfNormal(2.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", pdist.Normal(mu, sigma), obs=y)


def conditioned(backend, value):
    """The model with ``sigma`` fixed at 1: a Python float, or an array of the PPL's kind."""
    if backend == "numpyro":
        fixed = 1.0 if value == "float" else np.float32(1.0) * np.ones(())
        return numpyro.handlers.condition(numpyro_model, data={"sigma": fixed})
    fixed = 1.0 if value == "float" else torch.tensor(1.0)
    return pyro.condition(pyro_model, data={"sigma": fixed})


def data():
    return (1.0 + np.random.default_rng(0).normal(size=N)).astype(np.float32)


def groups_of(idata):
    return {name: set(arviz_compat.get_group(idata, name).data_vars) for name in ("log_likelihood", "observed_data")}


def check_fixed(idata):
    assert groups_of(idata) == {"log_likelihood": {"y"}, "observed_data": {"y"}}
    assert np.asarray(arviz_compat.get_group(idata, "constant_data")["sigma"]).ravel().tolist() == [1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ's own notes on few draws
        loo = az.loo(idata)
    elpd = loo.elpd if arviz_compat.DATATREE else loo["elpd_loo"]  # ArviZ 1.x: an ELPDData with .elpd
    assert np.isfinite(float(elpd))


def sample(backend, value, **settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ppzoo.sample(conditioned(backend, value), data(), progress_bar=False, **settings)


@pytest.mark.parametrize("value", ["array", "float"])
@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_a_conditioned_latent_is_a_fixed_value_not_data(backend, value):
    idata = sample(backend, value, num_samples=50, num_warmup=50, num_chains=2, seed=0)
    check_fixed(idata)
    assert set(arviz_compat.get_group(idata, "posterior").data_vars) == {"mu"}


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_the_posterior_is_the_conditioned_models(backend):
    y = data()
    mean, sd = y.sum() / (N + 0.01), 1 / np.sqrt(N + 0.01)
    mu = sample(backend, "float", num_samples=500, num_chains=2, seed=1).posterior["mu"].values
    # over seeds 0-2: mean within 0.05 sd (MCSE 0.05 sd), sd within 4%; tolerances several times that
    assert abs(mu.mean() - mean) < 0.3 * sd
    assert abs(mu.std() / sd - 1) < 0.2


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_a_fit_of_a_conditioned_model_treats_it_as_fixed(backend):
    model = conditioned(backend, "float" if backend == "numpyro" else "array")
    guide = (nag if backend == "numpyro" else pag).AutoNormal(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitConvergenceWarning)
        fit = ppzoo.fit(model, guide, data(), num_steps=200, progress_bar=False, refine=False)
    assert fit.data_plate == "data"
    check_fixed(fit.to_arviz(num_samples=100))


def test_pyro_fit_says_a_conditioned_value_must_be_a_tensor():
    model = conditioned("pyro", "float")
    with pytest.raises(TypeError, match=r"observed site 'sigma': its value is a float.*pyro.condition.*must be a torch "
                                        r"tensor too, e.g. torch.tensor\(1.0\)"):
        ppzoo.fit(model, pag.AutoNormal(model), data(), num_steps=2, progress_bar=False)
