"""SGLD against closed forms and a NUTS reference.

Gaussian location model x_i ~ N(theta, 1), theta ~ N(0, 1): the posterior is
N(N xbar / lam, 1 / lam) with precision lam = N + 1. SGLD's gradient
estimate is lam theta - (N/B) sum_I x_i, so the chain is a Gaussian AR(1)
with the exact mean and stationary variance

    V(h) = (2 + h N^2 s^2 / B) / (lam (2 - h lam)),

s^2 the (1/N) variance of the data, B indices drawn with replacement. At
h = 0 it is the posterior variance 1/lam; the h-dependence is Langevin's
step-size bias plus the minibatch noise.
"""

import json
import pathlib

import arviz as az
import numpy as np
import ppzoo.models
import pytest
from conftest import GAUSSIAN_LOCATION, slow_for

import ppzoo

N, B = 1000, 32
DATA = (1.0 + 0.2 * np.random.default_rng(0).standard_normal(N)).astype(np.float32)
LAM = N + 1.0
POST_MEAN = N * DATA.astype(np.float64).mean() / LAM
S2 = DATA.astype(np.float64).var()


def sgld_variance(h):
    return (2 + h * N**2 * S2 / B) / (LAM * (2 - h * LAM))


@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: b == "pyro"))
def test_conjugate_gaussian_mean_and_variance_at_a_small_step(backend):
    h = 0.02 / LAM
    idata = ppzoo.sample(
        GAUSSIAN_LOCATION[backend], DATA, method="sgld", step_size=h, batch_size=B, num_warmup=2000,
        num_samples=2000, thinning=10, num_chains=16 if backend == "numpyro" else 8, seed=1,
        progress_bar=False,
    )
    theta = idata.posterior["theta"].values
    ess = float(az.ess(idata, var_names=["theta"])["theta"])
    mcse_mean = float(az.mcse(idata, var_names=["theta"])["theta"])
    var = theta.var()
    se_var = var * np.sqrt(2.0 / ess)
    assert ess > 1000
    assert abs(theta.mean() - POST_MEAN) < 4 * mcse_mean
    assert abs(var - sgld_variance(h)) < 4 * se_var
    assert abs(var * LAM - 1) < 0.10  # within 10% of the posterior variance


@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: b == "pyro"))
def test_step_size_bias_is_visible(backend):
    h = 0.5 / LAM
    idata = ppzoo.sample(
        GAUSSIAN_LOCATION[backend], DATA, method="sgld", step_size=h, batch_size=B, num_warmup=500,
        num_samples=2000, thinning=2, num_chains=8, seed=2, progress_bar=False,
    )
    theta = idata.posterior["theta"].values
    ess = float(az.ess(idata, var_names=["theta"])["theta"])
    var = theta.var()
    se_var = var * np.sqrt(2.0 / ess)
    assert abs(var - sgld_variance(h)) < 4 * se_var  # the biased law Langevin theory predicts
    assert var - 1 / LAM > 10 * se_var  # measurably above the posterior variance


class CountingBackend:
    """A backend whose gradient work is counted here, per datum, independently of the driver's
    own accounting: ``N`` per point for a full gradient or potential, ``2 N`` per point for a
    Hessian-vector product, one per index of a minibatch, ``steps * B`` per chain for the MAP
    search, and ``B`` per chain and SGLD step (one minibatch gradient)."""

    def __init__(self, inner):
        self.inner, self.count = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _points(self, theta):
        return int(np.prod(theta.shape[:-1]))

    def full_grad(self, theta):
        self.count += self.inner.num_data * self._points(theta)
        return self.inner.full_grad(theta)

    def full_potential(self, theta):
        self.count += self.inner.num_data * self._points(theta)
        return self.inner.full_potential(theta)

    def full_hvp(self, theta, v):
        self.count += 2 * self.inner.num_data * self._points(theta)
        return self.inner.full_hvp(theta, v)

    def grad(self, theta, idx):
        self.count += int(np.prod(idx.shape))
        return self.inner.grad(theta, idx)

    def minimize(self, theta, rng, num_steps, learning_rate, batch_size):
        self.count += num_steps * batch_size * self._points(theta)
        return self.inner.minimize(theta, rng, num_steps, learning_rate, batch_size)

    def run_block(self, kernel, state, rng, num_draws, thinning, tuning, method="update"):
        assert kernel.name == "sgld" and method == "update"
        self.count += num_draws * thinning * kernel.batch_size * self._points(state.position)
        return self.inner.run_block(kernel, state, rng, num_draws, thinning, tuning, method)


@pytest.mark.parametrize("adapt, num_chains", [(False, 2), (True, 3)])
def test_grad_evals_add_up_to_the_work_done(regression_data, adapt, num_chains):
    """The chains' final ``grad_evals`` add up to an independent count of the per-datum gradient
    evaluations (set-up, adaptation, warmup and draws), each chain charged its share of work
    done once for all (the Hessians at the best mode, the curvature at the origin)."""
    from conftest import LINEAR_REGRESSION
    from ppzoo.inference import SGLD, run_chains

    from ppzoo.backends import make_backend

    x, y = regression_data
    backend = CountingBackend(make_backend(LINEAR_REGRESSION["numpyro"], (x,), {"y": y}))
    run = run_chains(SGLD(batch_size=8), backend, num_samples=50, num_warmup=100, num_chains=num_chains,
                     thinning=1, adapt=adapt, progress_bar=False)
    grad_evals = run.stats["grad_evals"]
    assert int(grad_evals[:, -1].sum()) == backend.count
    assert np.all(np.diff(grad_evals, axis=1) == 8)  # one minibatch per draw
    shares = grad_evals[:, 0]
    assert shares.max() - shares.min() <= (1000 * 8 + 100 * 8 if adapt else 1)  # shared work split evenly


def test_unadapted_settings_record_step_size(regression_data):
    from conftest import LINEAR_REGRESSION

    x, y = regression_data
    idata = ppzoo.sample(
        LINEAR_REGRESSION["numpyro"], x, y=y, method="sgld", num_warmup=100, num_samples=50, num_chains=2, adapt=False,
        thinning=1, batch_size=8,
        progress_bar=False,
    )
    stats = idata.sample_stats
    h = stats.step_size.values
    assert np.all(h == h[0, 0]) and h[0, 0] > 0
    assert idata.posterior.attrs["batch_size"] == 8
    assert idata.posterior.attrs["adapted"] == 0 and "inverse_mass" not in idata.posterior.attrs


def test_adaptation_records_the_preconditioner(regression_data):
    from conftest import LINEAR_REGRESSION

    x, y = regression_data
    d = 5  # w (3), b, sigma
    idata = ppzoo.sample(LINEAR_REGRESSION["numpyro"], x, y=y, method="sgld", num_warmup=100, num_samples=50, num_chains=2,
                         thinning=1, batch_size=8, progress_bar=False)
    h = idata.sample_stats.step_size.values
    assert np.all(h == h[0, 0]) and h[0, 0] > 0
    assert idata.posterior.attrs["adapted"] == 1
    minv = np.asarray(idata.posterior.attrs["inverse_mass"])
    assert minv.shape == (d, d) and np.all(np.linalg.eigvalsh(minv) > 0)  # dense: D <= 256


REFERENCE = pathlib.Path(ppzoo.models.__file__).parent / "references" / "logistic_regression.json"


@pytest.mark.slow
def test_breast_cancer_logistic_regression_matches_nuts():
    """SGLD with the defaults (adapted step size and preconditioner); 8 chains x 152,000 steps, so
    the Monte Carlo error is about 0.017 sd (SGLD's minibatch bias is most of the error: the worst
    mean was 0.078 sd off with 16 chains)."""
    from ppzoo.models import logistic_regression

    ref = json.loads(REFERENCE.read_text())["params"]
    args, kwargs = logistic_regression.load_data()
    idata = ppzoo.sample(
        logistic_regression.numpyro_model, *args, method="sgld", num_warmup=2000, num_samples=500, thinning=300,
        num_chains=8, seed=0, progress_bar=False, log_likelihood=False, **kwargs,
    )
    summary = az.summary(idata, var_names=["w", "b"], round_to="none")
    z = np.array([(summary.loc[k, "mean"] - ref[k]["mean"]) / ref[k]["sd"] for k in ref])
    assert (summary["mcse_mean"] / summary["sd"]).max() < 0.03  # 0.1 sd is at least 3 MCSE
    assert np.abs(z).max() < 0.1, dict(zip(ref, np.round(z, 3)))
