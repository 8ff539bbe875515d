"""Small models written in both PPLs, shared by the tests."""

import os

import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pytest


def pytest_configure(config):
    # pytest-xdist runs one worker per core: each worker keeps to one thread, so that XLA's and
    # torch's thread pools do not fight over the cores (XLA reads its flags when JAX first computes)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
        import torch

        torch.set_num_threads(1)


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


def worst_second_moment_gap(z, expected):
    """The largest ``|mean(z_i z_j) - expected[i, j]|`` over ``i <= j``, in Monte Carlo standard errors
    of the product series (ArviZ's MCSE); ``z`` is ``(chain, draw, D)``, ``expected`` ``(D, D)``."""
    import arviz as az

    worst = 0.0
    for i in range(z.shape[-1]):
        for j in range(i, z.shape[-1]):
            product = z[..., i] * z[..., j]
            worst = max(worst, abs(product.mean() - expected[i, j]) / float(az.mcse(product)))
    return worst


def slow_for(cases, is_slow):
    """``cases`` as parameters, those for which ``is_slow(case)`` marked ``slow`` (run by ``pytest -m slow``):
    a check whose variants cost very different times keeps its quick ones in the default run."""
    return [pytest.param(*(c if isinstance(c, tuple) else (c,)), marks=pytest.mark.slow) if is_slow(c) else c for c in cases]


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


# -- a linear-Gaussian latent-variable model (probabilistic PCA with fixed loadings) --
# z_i ~ N(0, I_2), x_i | z_i ~ N(W z_i + mu, sigma^2 I_3), W with orthogonal columns, so the exact
# posterior q(z_i | x_i) = N(A x_i + b, diag(s)^2) is in the guide family below.
PPCA_W = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
PPCA_MU = np.array([0.5, -1.0, 0.2])
PPCA_SIGMA = 0.5


def ppca_exact_posterior():
    """``(A, b, s)`` (the guide's initial values) of the exact posterior ``z_i | x_i ~ N(A x_i + b, diag(s)^2)``."""
    m = PPCA_W.T @ PPCA_W + PPCA_SIGMA**2 * np.eye(2)
    a = np.linalg.solve(m, PPCA_W.T)
    return a, -a @ PPCA_MU, np.sqrt(PPCA_SIGMA**2 * np.diag(np.linalg.inv(m)))


def ppca_log_evidence(x):
    """``sum_i log N(x_i; mu, W W^T + sigma^2 I)``, the closed-form log p(x)."""
    from scipy.stats import multivariate_normal

    cov = PPCA_W @ PPCA_W.T + PPCA_SIGMA**2 * np.eye(3)
    return float(multivariate_normal(PPCA_MU, cov).logpdf(x).sum())


@pytest.fixture(scope="session")
def ppca_data():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((10, 2))
    return (z @ PPCA_W.T + PPCA_MU + PPCA_SIGMA * rng.standard_normal((10, 3))).astype(np.float32)


def numpyro_ppca(x):
    mu = numpyro.param("mu", np.asarray(PPCA_MU, np.float32))
    w = np.asarray(PPCA_W, np.float32)
    with numpyro.plate("data", x.shape[0]) as idx:
        z = numpyro.sample("z", ndist.Normal(0.0, 1.0).expand([2]).to_event(1))
        numpyro.sample("x", ndist.Normal(z @ w.T + mu, PPCA_SIGMA).to_event(1), obs=x[idx])


def numpyro_ppca_guide(x):
    a0, b0, s0 = ppca_exact_posterior()
    a = numpyro.param("A", np.asarray(a0, np.float32))
    b = numpyro.param("b", np.asarray(b0, np.float32))
    s = numpyro.param("s", np.asarray(s0, np.float32), constraint=ndist.constraints.positive)
    with numpyro.plate("data", x.shape[0]) as idx:
        numpyro.sample("z", ndist.Normal(x[idx] @ a.T + b, s).to_event(1))


def pyro_ppca(x):
    import torch

    mu = pyro.param("mu", torch.tensor(PPCA_MU, dtype=torch.float32))
    w = torch.tensor(PPCA_W, dtype=torch.float32)
    with pyro.plate("data", x.shape[0]) as idx:
        z = pyro.sample("z", pdist.Normal(0.0, 1.0).expand([2]).to_event(1))
        pyro.sample("x", pdist.Normal(z @ w.T + mu, PPCA_SIGMA).to_event(1), obs=x[idx])


def pyro_ppca_guide(x):
    import torch

    a0, b0, s0 = ppca_exact_posterior()
    a = pyro.param("A", torch.tensor(a0, dtype=torch.float32))
    b = pyro.param("b", torch.tensor(b0, dtype=torch.float32))
    s = pyro.param("s", torch.tensor(s0, dtype=torch.float32), constraint=pdist.constraints.positive)
    with pyro.plate("data", x.shape[0]) as idx:
        pyro.sample("z", pdist.Normal(x[idx] @ a.T + b, s).to_event(1))


PPCA = {"numpyro": (numpyro_ppca, numpyro_ppca_guide), "pyro": (pyro_ppca, pyro_ppca_guide)}
