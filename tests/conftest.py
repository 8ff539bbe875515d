"""Small models written in both PPLs, shared by the tests."""

import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pytest


def numpyro_linear_regression(x, y=None):
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = numpyro.sample("b", ndist.Normal(0.0, 1.0))
    sigma = numpyro.sample("sigma", ndist.HalfNormal(1.0))
    with numpyro.plate("data", x.shape[0], subsample_size=None) as idx:
        numpyro.sample("y", ndist.Normal(x[idx] @ w + b, sigma), obs=None if y is None else y[idx])


def pyro_linear_regression(x, y=None):
    w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = pyro.sample("b", pdist.Normal(0.0, 1.0))
    sigma = pyro.sample("sigma", pdist.HalfNormal(1.0))
    with pyro.plate("data", x.shape[0], subsample_size=None) as idx:
        pyro.sample("y", pdist.Normal(x[idx] @ w + b, sigma), obs=None if y is None else y[idx])


def numpyro_gaussian_location(x):
    """theta ~ N(0, 1), x_i ~ N(theta, 1)."""
    theta = numpyro.sample("theta", ndist.Normal(0.0, 1.0))
    with numpyro.plate("data", x.shape[0]) as idx:
        numpyro.sample("x", ndist.Normal(theta, 1.0), obs=x[idx])


def pyro_gaussian_location(x):
    """theta ~ N(0, 1), x_i ~ N(theta, 1)."""
    theta = pyro.sample("theta", pdist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]) as idx:
        pyro.sample("x", pdist.Normal(theta, 1.0), obs=x[idx])


LINEAR_REGRESSION = {"numpyro": numpyro_linear_regression, "pyro": pyro_linear_regression}
GAUSSIAN_LOCATION = {"numpyro": numpyro_gaussian_location, "pyro": pyro_gaussian_location}


@pytest.fixture(scope="session")
def regression_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -0.5, 0.25]) + 0.3 + 0.5 * rng.standard_normal(60)).astype(np.float32)
    return x, y


def numpyro_heteroscedastic_regression(x, y, noise_scale):
    """w ~ N(0, I), y_i ~ N(x_i . w, noise_scale_i): per-datum gradients with unequal slopes."""
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("data", x.shape[0]) as idx:
        numpyro.sample("y", ndist.Normal(x[idx] @ w, noise_scale[idx]), obs=y[idx])


def pyro_heteroscedastic_regression(x, y, noise_scale):
    w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0]) as idx:
        pyro.sample("y", pdist.Normal(x[idx] @ w, noise_scale[idx]), obs=y[idx])


HETEROSCEDASTIC = {"numpyro": numpyro_heteroscedastic_regression, "pyro": pyro_heteroscedastic_regression}


@pytest.fixture(scope="session")
def heteroscedastic_data():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((500, 2)).astype(np.float32)
    noise_scale = rng.uniform(0.2, 2.0, 500).astype(np.float32)
    y = (x @ np.array([0.7, -1.2]) + noise_scale * rng.standard_normal(500)).astype(np.float32)
    return x, y, noise_scale
