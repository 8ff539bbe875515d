"""SVRG-LD, SARAH-LD and SGLD-CV: exact laws, unbiasedness, work accounting, cross-backend, budget.

For the Gaussian location model of ``test_sgld`` every per-datum gradient
has the same slope, so the variance-reduced estimates are exact and the
three samplers are the unadjusted Langevin algorithm, whose stationary law
at step h and temperature T is N(posterior mean, T / (lam (1 - h lam / 2))).
"""

import math

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from conftest import GAUSSIAN_LOCATION, HETEROSCEDASTIC, LINEAR_REGRESSION
from ppzoo.inference import SGLDCV
from ppzoo.inference.sgmcmc.gradients import anchored_gradient, minibatch_gradient, sarah_gradient
from test_sgld import DATA, LAM, POST_MEAN, sgld_variance

import ppzoo
from ppzoo.backends import make_backend

METHODS = ["svrg-ld", "sarah-ld", "sgld-cv"]


def ula_variance(h, temperature=1.0):
    return temperature / (LAM * (1 - h * LAM / 2))


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
@pytest.mark.parametrize("method", METHODS)
def test_exact_stationary_law_on_the_gaussian_location_model(backend, method):
    h = 0.5 / LAM
    idata = ppzoo.sample(
        GAUSSIAN_LOCATION[backend], DATA, method=method, step_size=h, batch_size=32, num_warmup=300,
        num_samples=2000, thinning=2, num_chains=8, seed=4, progress_bar=False, log_likelihood=False,
    )
    theta = idata.posterior["theta"].values
    ess = float(az.ess(idata, var_names=["theta"])["theta"])
    mcse = float(az.mcse(idata, var_names=["theta"])["theta"])
    var, se_var = theta.var(), theta.var() * np.sqrt(2.0 / ess)
    assert abs(theta.mean() - POST_MEAN) < 4 * mcse
    assert abs(var - ula_variance(h)) < 4 * se_var
    # and not SGLD's law, which carries the minibatch noise on top
    assert sgld_variance(h) - var > 10 * se_var


def test_temperature_scales_the_stationary_variance():
    h = 0.5 / LAM
    idata = ppzoo.sample(
        GAUSSIAN_LOCATION["numpyro"], DATA, method="svrg-ld", step_size=h, temperature=0.25, num_warmup=300,
        num_samples=2000, thinning=2, num_chains=8, seed=5, progress_bar=False, log_likelihood=False,
    )
    theta = idata.posterior["theta"].values
    ess = float(az.ess(idata, var_names=["theta"])["theta"])
    assert abs(theta.var() - ula_variance(h, 0.25)) < 4 * theta.var() * np.sqrt(2.0 / ess)
    assert idata.posterior.attrs["temperature"] == 0.25


def _as_index(backend, idx):
    if backend.name == "numpyro":
        return jnp.asarray(idx)
    import torch

    return torch.as_tensor(idx, dtype=torch.long)


@pytest.mark.parametrize("name", ["numpyro", "pyro"])
def test_variance_reduced_estimates_are_unbiased_and_less_noisy(name, heteroscedastic_data):
    """Many minibatches of B = 10 at one point; the anchor is a nearby point, as in a run."""
    x, y, noise_scale = heteroscedastic_data
    backend = make_backend(HETEROSCEDASTIC[name], (x, y, noise_scale), {})
    draws = 4000 if name == "numpyro" else 1000  # Pyro runs this many "chains" eagerly
    theta = np.tile([0.6, -1.1], (draws, 1))
    anchor = theta + np.array([0.03, -0.02])  # e.g. the snapshot, a few steps back
    idx = np.random.default_rng(0).integers(0, 500, (draws, 10))
    as_arr, as_np = backend.asarray, backend.to_numpy
    full = as_np(backend.full_grad(as_arr(theta[:1])))[0]
    anchor_grad = backend.full_grad(as_arr(anchor))
    estimates = {
        "sgld": minibatch_gradient(backend, as_arr(theta), _as_index(backend, idx)),
        "anchored": anchored_gradient(backend, as_arr(theta), _as_index(backend, idx), as_arr(anchor), anchor_grad),
        "sarah": sarah_gradient(backend, as_arr(theta), as_arr(anchor), anchor_grad, _as_index(backend, idx)),
    }
    variance = {}
    for key, value in estimates.items():
        value = as_np(value).astype(np.float64)
        se = value.std(0) / np.sqrt(draws)
        assert np.all(np.abs(value.mean(0) - full) < 4 * se), key
        variance[key] = value.var(0).sum()
    # measured: the total variance falls by a factor of about 57 for an anchor this close
    assert variance["anchored"] < variance["sgld"] / 20, variance
    assert variance["sarah"] < variance["sgld"] / 20, variance


def _expected_grad_evals(method, n, b, m, steps, setup=0):
    """Cumulative per-datum gradient evaluations after each of ``steps`` steps."""
    t = np.arange(steps)
    if method == "sgld":
        per = np.full(steps, b)
    elif method == "sgld-cv":
        per = np.full(steps, 2 * b)
    else:
        per = np.where(t % m == 0, n, 2 * b)
    return setup + np.cumsum(per)


@pytest.mark.parametrize("method", ["sgld", "svrg-ld", "sarah-ld", "sgld-cv"])
def test_gradient_evaluation_totals(method, regression_data):
    x, y = regression_data
    n, b, m, warmup, samples = 60, 7, 5, 13, 20
    kw = {"inner_loop": m} if method in ("svrg-ld", "sarah-ld") else {}
    if method == "sgld-cv":
        method_arg = SGLDCV(step_size=1e-4, batch_size=b, map_steps=30)
        options = {}
    else:
        method_arg, options = method, {"step_size": 1e-4, "batch_size": b, **kw}
    idata = ppzoo.sample(
        LINEAR_REGRESSION["numpyro"], x, y=y, method=method_arg, num_warmup=warmup, num_samples=samples,
        num_chains=2, progress_bar=False, log_likelihood=False, **options,
    )
    setup = 30 * b + n if method == "sgld-cv" else 0
    expected = _expected_grad_evals(method, n, b, m, warmup + samples, setup)[warmup:]
    got = idata.sample_stats["grad_evals"].values
    np.testing.assert_array_equal(got, np.broadcast_to(expected, got.shape))
    full = idata.sample_stats["full_gradient"].values
    refreshed = (np.arange(warmup, warmup + samples) % m == 0) & (method in ("svrg-ld", "sarah-ld"))
    np.testing.assert_array_equal(full, np.broadcast_to(refreshed, full.shape))


def test_backends_agree_on_the_posterior(regression_data):
    x, y = regression_data
    summaries = {}
    for name in ("numpyro", "pyro"):
        idata = ppzoo.sample(
            LINEAR_REGRESSION[name], x, y=y, method="sarah-ld", step_size=1e-3, num_warmup=1000,
            num_samples=500, thinning=4, num_chains=4, seed=7, progress_bar=False, log_likelihood=False,
        )
        summaries[name] = az.summary(idata, var_names=["w", "b", "sigma"], round_to="none")
    a, b = summaries["numpyro"], summaries["pyro"]
    assert np.all(np.abs(a["mean"] - b["mean"]) < 4 * np.hypot(a["mcse_mean"], b["mcse_mean"]))
    se_sd = lambda s: s["sd"] / np.sqrt(2 * s["ess_bulk"])  # noqa: E731
    assert np.all(np.abs(a["sd"] - b["sd"]) < 4 * np.hypot(se_sd(a), se_sd(b)))
    # the two runs are not the same draws (independent randomness per backend)
    assert not np.allclose(a["mean"], b["mean"])


def _logistic(x, y=None):
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("data", x.shape[0]) as idx:
        numpyro.sample("y", dist.Bernoulli(logits=x[idx] @ w), obs=y[idx])


@pytest.mark.slow
def test_variance_reduction_beats_sgld_at_an_equal_budget():
    """Logistic regression, N = 2,000, d = 5, h = 0.2 / lambda_max at the posterior mean,
    400 epochs of per-datum gradients for every method, against NUTS.

    Error: the largest |mean - ref| / ref_sd plus the largest |sd / ref_sd - 1|.
    Measured: SGLD about 1.6, SARAH-LD 0.6, SVRG-LD 0.13.
    """
    from numpyro.infer import MCMC, NUTS
    from ppzoo.inference.sgmcmc.step_size import largest_curvature

    rng = np.random.default_rng(0)
    n, d = 2000, 5
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (rng.random(n) < 1 / (1 + np.exp(-x @ rng.standard_normal(d)))).astype(np.float32)
    nuts = MCMC(NUTS(_logistic), num_warmup=500, num_samples=1500, num_chains=4, chain_method="vectorized", progress_bar=False)
    nuts.run(jax.random.PRNGKey(0), jnp.asarray(x), jnp.asarray(y))
    ref = np.asarray(nuts.get_samples()["w"])
    ref_mean, ref_sd = ref.mean(0), ref.std(0)
    lam = largest_curvature(make_backend(_logistic, (x,), {"y": y}), ref_mean[None])[0][0]
    b = math.ceil(math.sqrt(n))
    budget = 400 * n
    cost_per_step = {"sgld": b, "svrg-ld": (n + (b - 1) * 2 * b) / b, "sarah-ld": (n + (b - 1) * 2 * b) / b}
    errors = {}
    for method, per_step in cost_per_step.items():
        steps = int(budget / per_step)
        idata = ppzoo.sample(
            _logistic, x, y=y, method=method, step_size=0.2 / lam, batch_size=b, num_warmup=steps // 5, num_samples=1000,
            thinning=(steps - steps // 5) // 1000, num_chains=4, seed=1, progress_bar=False, log_likelihood=False,
        )
        w = idata.posterior["w"].values.reshape(-1, d)
        errors[method] = np.max(np.abs(w.mean(0) - ref_mean) / ref_sd) + np.max(np.abs(w.std(0) / ref_sd - 1))
        assert int(idata.sample_stats["grad_evals"].values[0, -1]) <= budget * 1.01
    assert errors["svrg-ld"] < errors["sgld"] / 2, errors
    assert errors["sarah-ld"] < errors["sgld"] / 2, errors


def test_numpyro_mcmc_runs_the_kernels(regression_data):
    from numpyro.infer import MCMC
    from ppzoo.inference import SARAHLD, NumPyroLangevin

    x, y = regression_data
    mcmc = MCMC(
        NumPyroLangevin(SARAHLD(step_size=1e-4, batch_size=6, inner_loop=4), LINEAR_REGRESSION["numpyro"]),
        num_warmup=10, num_samples=30, num_chains=2, chain_method="vectorized", progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(1), jnp.asarray(x), y=jnp.asarray(y), extra_fields=("grad_evals", "full_gradient"))
    idata = az.from_numpyro(mcmc, log_likelihood=True)  # 1.x leaves it out by default
    assert idata.posterior["w"].shape == (2, 30, 3)
    assert idata.log_likelihood["y"].shape == (2, 30, 60)
    expected = _expected_grad_evals("sarah-ld", 60, 6, 4, 40)[10:]
    np.testing.assert_array_equal(idata.sample_stats["grad_evals"].values, np.broadcast_to(expected, (2, 30)))
    assert not idata.sample_stats["diverging"].values.any()
    assert float(idata.posterior["sigma"].min()) > 0
