"""SGHMC (Chen, Fox & Guestrin 2014), the plain kernel: its discrete chain's stationary law in closed
form, its reduction to SGLD without momentum, and its settings' checks."""

import warnings

import numpy as np
import pytest
from conftest import worst_second_moment_gap
from ppzoo.inference import SAMPLERS, SGHMC

import ppzoo
from ppzoo.diagnostics.convergence import ConvergenceWarning

D = 3
PRIOR_SD = 2.0
#: one observation y ~ N(w, NOISE_COV): the data plate holds a single datum, so every minibatch is
#: the whole data set and the gradient is exact
NOISE_COV = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 0.5]])
Y = np.array([[0.5, -1.0, 2.0]])
PRECISION = np.eye(D) / PRIOR_SD**2 + np.linalg.inv(NOISE_COV)
MEAN = np.linalg.solve(PRECISION, np.linalg.inv(NOISE_COV) @ Y[0])


def _numpyro_model(y):
    import numpyro
    import numpyro.distributions as dist

    w = numpyro.sample("w", dist.Normal(0.0, PRIOR_SD).expand([D]).to_event(1))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", dist.MultivariateNormal(w, covariance_matrix=NOISE_COV), obs=y)


def _pyro_model(y):
    import pyro
    import pyro.distributions as dist
    import torch

    w = pyro.sample("w", dist.Normal(0.0, PRIOR_SD).expand([D]).to_event(1))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.MultivariateNormal(w, covariance_matrix=torch.as_tensor(NOISE_COV, dtype=y.dtype)), obs=y)


def _data(backend):
    if backend == "pyro":
        import torch

        return _pyro_model, torch.as_tensor(Y, dtype=torch.float32)
    return _numpyro_model, Y.astype(np.float32)


def _stationary_covariance(h, alpha, p):
    """The position block of the stationary covariance of the linear chain
    ``v' = (1 - alpha) v - h P A e + n``, ``e' = e + v'`` (``e = theta - mean``, ``n ~ N(0, 2 alpha h P)``),
    from the discrete Lyapunov equation ``S = T S T' + G Q G'`` of the state ``(e, v)``."""
    from scipy.linalg import solve_discrete_lyapunov

    eye, pa = np.eye(D), p @ PRECISION
    t = np.block([[eye - h * pa, (1 - alpha) * eye], [-h * pa, (1 - alpha) * eye]])
    g = np.vstack([eye, eye])
    s = solve_discrete_lyapunov(t, g @ (2 * alpha * h * p) @ g.T)
    return s[:D, :D]


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_the_chain_has_its_closed_form_stationary_covariance(backend):
    """With exact gradients, a fixed diagonal ``M^-1 = P`` and ``h = 1 / lambda_max(P A)`` (about a
    quarter of the stability limit), SGHMC is a linear Gaussian chain in ``(theta, v)`` whose stationary covariance is
    known exactly (and differs visibly from the posterior's, so the test sees this integrator's own
    law). In whitened coordinates ``z = A^(1/2) (theta - mean)`` each entry of ``E[z z']`` is the mean of
    the product series over all draws and must lie within 4 Monte Carlo standard errors (ArviZ's
    MCSE of that series) of the closed form."""
    model, y = _data(backend)
    p = 1.0 / np.diag(PRECISION)
    h, alpha = 1.0 / np.linalg.eigvals(np.diag(p) @ PRECISION).real.max(), 0.2
    w, v = np.linalg.eigh(PRECISION)
    root = (v * np.sqrt(w)) @ v.T
    expected = root @ _stationary_covariance(h, alpha, np.diag(p)) @ root
    inflation = np.linalg.eigvalsh(expected)
    assert inflation.max() > 1.3  # not the posterior's identity: the discretisation's own law
    chains, draws = (8, 2000) if backend == "numpyro" else (4, 1000)
    idata = ppzoo.sample(
        model, y, method=SGHMC(step_size=float(h), inverse_mass=p, friction=alpha), num_warmup=300,
        num_samples=draws, num_chains=chains, thinning=2, seed=0, backend=backend, progress_bar=False,
        log_likelihood=False,
    )
    assert idata.posterior.attrs["adapted"] == 0
    z = (idata.posterior["w"].values.astype(np.float64) - MEAN) @ root
    worst = worst_second_moment_gap(z, expected)
    assert worst < 4.0, f"an entry of the stationary covariance is {worst:.1f} MCSE from the closed form"


def test_without_momentum_it_is_sgld():
    """``alpha = 1`` forgets the velocity every step: the step is SGLD's, draw for draw."""
    model, y = _data("numpyro")
    settings = dict(num_warmup=20, num_samples=50, num_chains=2, thinning=1, seed=3, progress_bar=False,
                    log_likelihood=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 50 draws: short on purpose
        sgld = ppzoo.sample(model, y, method="sgld", step_size=0.05, **settings)
        sghmc = ppzoo.sample(model, y, method=SGHMC(step_size=0.05, friction=1.0), **settings)
    np.testing.assert_allclose(sghmc.posterior["w"].values, sgld.posterior["w"].values, rtol=1e-5, atol=1e-6)


def test_sghmc_is_a_method_and_checks_its_friction():
    assert SAMPLERS["sghmc"] is SGHMC and SGHMC.integrator == "underdamped" and SGHMC.estimator == "plain"
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="friction must be"):
            SGHMC(friction=bad)
    with pytest.raises(TypeError, match="friction must be"):
        SGHMC(friction="high")
