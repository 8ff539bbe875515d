"""The idioms of programs written for NUTS, on both backends: flat priors and init strategies,
observed sites outside the data plate, deterministic sites, the convergence report, and
NumPyro's ``MCMC`` driving the kernels with ``ppzoo.sample``'s warmup.

**Flat prior, closed form, with the defaults** (SGLD-CV, adaptation, ``thinning="auto"``). ``y_i ~ N(x_i . w, 1)`` with ``w ~ ImproperUniform`` on
R^3: the posterior is exactly ``N((X'X)^-1 X'y, (X'X)^-1)``. Means are checked
within 4 Monte Carlo standard errors (ArviZ's ``mcse_mean`` of the run); sds
within 4 of ArviZ's ``mcse_sd`` plus 3% of the sd, the most the unadjusted
Langevin chain at ``h = 0.1 / lambda_max`` inflates it (stationary variance
``1 / (1 - h lambda / 2)`` <= 1.053 in the stiffest preconditioned direction).
Seeds are fixed.
"""

import json
import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as ndist
import ppzoo.models
import pyro
import pyro.distributions as pdist
import pytest
import torch
from conftest import slow_for
from numpyro.infer import init_to_median, init_to_value
from scipy import stats

import ppzoo
from ppzoo.backends import make_backend
from ppzoo.backends.initial import initial_positions
from ppzoo.diagnostics import arviz_compat
from ppzoo.diagnostics.convergence import ConvergenceWarning, convergence_report, stored_report

N_FLAT, D_FLAT = 200, 3
SD_BIAS = 0.03  # Langevin's step-size inflation of the sd allowed (module docstring)


def _flat_problem():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((N_FLAT, D_FLAT))
    y = x @ np.array([1.0, -2.0, 0.5]) + rng.standard_normal(N_FLAT)
    cov = np.linalg.inv(x.T @ x)
    return x.astype(np.float32), y.astype(np.float32), cov @ x.T @ y, np.sqrt(np.diag(cov))


def numpyro_flat(x, y=None):
    w = numpyro.sample("w", ndist.ImproperUniform(ndist.constraints.real, (), event_shape=(x.shape[1],)))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", ndist.Normal(x @ w, 1.0), obs=y)


def pyro_flat(x, y=None):
    w = pyro.sample("w", pdist.ImproperUniform(pdist.constraints.real, (), (x.shape[1],)))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Normal(x @ w, 1.0), obs=y)


FLAT = {"numpyro": (numpyro_flat, np.asarray), "pyro": (pyro_flat, torch.as_tensor)}


@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: b == "pyro"))
def test_flat_prior_matches_the_closed_form_with_the_defaults(backend):
    x, y, mean, sd = _flat_problem()
    model, convert = FLAT[backend]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # the defaults converge here: no warning
        idata = ppzoo.sample(model, convert(x), y=convert(y), num_warmup=1000, num_samples=1000, seed=1,
                             progress_bar=False)
    attrs = arviz_compat.get_group(idata, "posterior").attrs
    assert attrs["method"] == "sgld-cv"
    # thinning="auto": in the adapted metric this Gaussian's Langevin chain is AR(1) with
    # rho = 1 - h lambda = 0.9 at h lambda = 0.1, tau = (1 + rho) / (1 - rho) = 19 steps;
    # (h is 0.07 to 0.1 over seeds: tau up to 28); the estimate from 550 warmup steps is
    # allowed a factor of two
    assert 9.5 < attrs["warmup_autocorrelation"] < 56 and 3 <= attrs["thinning"] <= 14
    table = arviz_compat.summary(idata, var_names=["w"])
    np.testing.assert_array_less(np.abs(table["mean"].to_numpy() - mean), 4 * table["mcse_mean"].to_numpy())
    np.testing.assert_array_less(np.abs(table["sd"].to_numpy() - sd), 4 * table["mcse_sd"].to_numpy() + SD_BIAS * sd)


# -- init strategies -----------------------------------------------------------------------
def numpyro_positive(x, y=None):
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    s = numpyro.sample("s", ndist.HalfNormal(2.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", ndist.Normal(x @ w, s), obs=y)


def pyro_positive(x, y=None):
    w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    s = pyro.sample("s", pdist.HalfNormal(2.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Normal(x @ w, s), obs=y)


def test_init_to_value_and_init_params_set_the_start():
    x, y, _, _ = _flat_problem()
    backend = make_backend(numpyro_positive, (x,), {"y": y})  # latent sites sorted: s, then w
    start = initial_positions(backend, 2, 0, init_strategy=init_to_value(values={"w": jnp.array([1.0, 2.0, 3.0]),
                                                                                  "s": 2.0}))
    np.testing.assert_allclose(start, np.tile([np.log(2.0), 1.0, 2.0, 3.0], (2, 1)), rtol=1e-6)
    start = initial_positions(backend, 2, 0, init_params={"w": np.zeros(3), "s": np.array([0.1, 0.2])})
    np.testing.assert_array_equal(start, [[0.1, 0, 0, 0], [0.2, 0, 0, 0]])
    # a run with a step too small to move keeps the start: the draws are where init_params put them
    idata = ppzoo.sample(numpyro_positive, x, y=y, method="sgld", step_size=1e-12, num_warmup=0, num_samples=2,
                         num_chains=2, init_params={"w": np.ones(3), "s": np.log(3.0)}, progress_bar=False)
    np.testing.assert_allclose(idata.posterior["s"].values, 3.0, rtol=1e-4)
    np.testing.assert_allclose(idata.posterior["w"].values, 1.0, rtol=1e-4)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_init_to_median_starts_each_chain_from_its_own_prior_draws(backend):
    x, y, _, _ = _flat_problem()
    if backend == "numpyro":
        model, data, strategy = numpyro_positive, (x, y), init_to_median
    else:
        from pyro.infer.autoguide.initialization import init_to_median as strategy

        model, data = pyro_positive, (torch.as_tensor(x), torch.as_tensor(y))
    start = initial_positions(make_backend(model, data, {}), 4, 0, init_strategy=strategy)
    assert start.shape == (4, 4) and np.all(np.isfinite(start))
    assert len(np.unique(start[:, 0])) == 4  # the median of 15 prior draws differs per chain
    # the prior median of s ~ HalfNormal(2) is 2 * 0.674 = 1.35: log 1.35 = 0.30, within the spread of 15 draws
    assert np.all(np.abs(start[:, 0] - np.log(2 * stats.halfnorm.ppf(0.75))) < 1.0)


def test_init_errors_name_the_argument_and_the_sites():
    x, y, _, _ = _flat_problem()
    backend = make_backend(numpyro_positive, (x,), {"y": y})
    with pytest.raises(ValueError, match=r"init_params must give every latent site.*missing: \['s'\]"):
        initial_positions(backend, 2, 0, init_params={"w": np.zeros(3)})
    with pytest.raises(ValueError, match=r"init_params\['w'\] has shape \(2,\); expected .* \(3,\) or"):
        initial_positions(backend, 2, 0, init_params={"w": np.zeros(2), "s": 0.0})
    with pytest.raises(ValueError, match="give init_strategy or init_params, not both"):
        initial_positions(backend, 2, 0, init_strategy=init_to_median, init_params={})
    with pytest.raises(TypeError, match="init_strategy must be an init strategy"):
        initial_positions(backend, 2, 0, init_strategy="median")
    from pyro.infer.autoguide.initialization import init_to_median as pyro_median

    flat = make_backend(pyro_flat, (torch.as_tensor(x),), {"y": torch.as_tensor(y)})
    with pytest.raises(ValueError, match="init_strategy 'init_to_median' failed on model 'pyro_flat'.*improper prior"):
        initial_positions(flat, 2, 0, init_strategy=pyro_median)


# -- observed sites outside the data plate, deterministic sites ------------------------
def numpyro_two_kinds_of_data(y, z):
    mu = numpyro.sample("mu", ndist.Normal(0.0, 10.0))
    numpyro.deterministic("mu_twice", 2 * mu)
    numpyro.sample("z", ndist.Normal(mu, 1.0).expand([z.shape[0]]), obs=z)  # outside the data plate
    with numpyro.plate("data", y.shape[0]):
        numpyro.deterministic("centred", y - mu)
        numpyro.sample("y", ndist.Normal(mu, 1.0), obs=y)


def pyro_two_kinds_of_data(y, z):
    mu = pyro.sample("mu", pdist.Normal(0.0, 10.0))
    pyro.deterministic("mu_twice", 2 * mu)
    pyro.sample("z", pdist.Normal(mu, 1.0).expand([z.shape[0]]).to_event(0), obs=z)
    with pyro.plate("data", y.shape[0]):
        pyro.deterministic("centred", y - mu)
        pyro.sample("y", pdist.Normal(mu, 1.0), obs=y)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_every_observed_site_has_its_log_likelihood_and_deterministic_sites_are_reported(backend):
    rng = np.random.default_rng(0)
    y, z = rng.normal(1.0, 1.0, 120).astype(np.float32), rng.normal(1.0, 1.0, 3).astype(np.float32)
    model = numpyro_two_kinds_of_data if backend == "numpyro" else pyro_two_kinds_of_data
    convert = np.asarray if backend == "numpyro" else torch.as_tensor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        idata = ppzoo.sample(model, convert(y), convert(z), method="sgld", step_size=1e-3, num_warmup=50,
                             num_samples=20, num_chains=2, progress_bar=False)
    mu = idata.posterior["mu"].values
    loglik, observed = idata.log_likelihood, idata.observed_data
    assert set(loglik.data_vars) == set(observed.data_vars) == {"y", "z"}
    assert loglik["y"].dims == ("chain", "draw", "data") and loglik["z"].dims == ("chain", "draw", "z_dim_0")
    assert observed["z"].dims == ("z_dim_0",)
    np.testing.assert_allclose(loglik["z"].values, stats.norm.logpdf(z, mu[..., None], 1.0), rtol=1e-5)
    np.testing.assert_allclose(loglik["y"].values, stats.norm.logpdf(y, mu[..., None], 1.0), rtol=1e-5)
    # lp = -U: both kinds of data, the prior and no Jacobian (mu is unconstrained)
    lp = (stats.norm.logpdf(mu, 0.0, 10.0) + stats.norm.logpdf(z, mu[..., None], 1.0).sum(-1)
          + stats.norm.logpdf(y, mu[..., None], 1.0).sum(-1))
    np.testing.assert_allclose(idata.sample_stats["lp"].values, lp, rtol=1e-5)
    post = idata.posterior
    np.testing.assert_allclose(post["mu_twice"].values, 2 * mu, rtol=1e-6)
    assert post["centred"].dims == ("chain", "draw", "data")
    np.testing.assert_allclose(post["centred"].values, y - mu[..., None], rtol=1e-5, atol=1e-6)
    assert len(az.loo(idata, var_name="y").loo_i if not arviz_compat.DATATREE else az.loo(idata, var_name="y").elpd_i) == 120


def test_without_a_data_plate_each_observation_is_a_term():
    rng = np.random.default_rng(0)
    y = rng.normal(1.0, 1.0, 50).astype(np.float32)

    def no_plate(y):
        mu = numpyro.sample("mu", ndist.Normal(0.0, 10.0))
        numpyro.sample("y", ndist.Normal(mu, 1.0).expand([y.shape[0]]), obs=y)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = ppzoo.sample(no_plate, y, method="sgld", step_size=1e-3, num_warmup=10, num_samples=5, num_chains=2,
                             progress_bar=False)
    assert idata.log_likelihood["y"].shape == (2, 5, 50) and idata.observed_data["y"].shape == (50,)
    np.testing.assert_allclose(
        idata.log_likelihood["y"].values, stats.norm.logpdf(y, idata.posterior["mu"].values[..., None], 1.0), rtol=1e-5
    )


# -- the convergence report ----------------------------------------------------------------
def test_a_run_that_has_not_converged_warns_and_says_so_in_its_attrs():
    x, y, _, _ = _flat_problem()
    with pytest.warns(ConvergenceWarning, match=r"R-hat above 1.01: w\[\d\] [\d.]+.*bulk ESS below 400"):
        idata = ppzoo.sample(numpyro_flat, x, y=y, method="sgld", step_size=1e-7, adapt=False, num_warmup=0,
                             num_samples=40, num_chains=4, progress_bar=False)
    attrs = arviz_compat.get_group(idata, "posterior").attrs
    assert attrs["converged"] == 0 and attrs["max_r_hat"] > 1.5 and attrs["min_ess_bulk"] < 40
    report = convergence_report(idata)
    assert list(report.index) == ["w[0]", "w[1]", "w[2]"]
    np.testing.assert_allclose(stored_report(idata).to_numpy(), report.to_numpy())
    assert set(json.loads(attrs["convergence"])["w[0]"]) == {"r_hat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd"}


# -- NumPyro's MCMC with ppzoo's warmup -------------------------------------------------------
@pytest.mark.parametrize("kernel", ["SVRGLD", "SGLDCV"])
def test_numpyro_mcmc_adapts_during_its_warmup(kernel):
    import ppzoo.inference as inference
    from numpyro.infer import MCMC

    x, y, mean, sd = _flat_problem()
    mcmc = MCMC(inference.NumPyroLangevin(getattr(inference, kernel)(), numpyro_flat), num_warmup=1000, num_samples=5000, num_chains=4,
                chain_method="vectorized", progress_bar=False, thinning=5)
    mcmc.run(jax.random.PRNGKey(2), jnp.asarray(x), y=jnp.asarray(y), extra_fields=("grad_evals",))
    state = mcmc.last_state
    assert state.tuning.inverse_mass is not None  # warmup chose a preconditioner
    idata = az.from_numpyro(mcmc)
    table = arviz_compat.summary(idata, var_names=["w"])
    assert table["r_hat"].max() < 1.01
    np.testing.assert_array_less(np.abs(table["mean"].to_numpy() - mean), 4 * table["mcse_mean"].to_numpy())
    np.testing.assert_array_less(np.abs(table["sd"].to_numpy() - sd), 4 * table["mcse_sd"].to_numpy() + SD_BIAS * sd)
    # warmup's work is in grad_evals from the first kept draw on
    assert int(idata.sample_stats["grad_evals"].values[:, 0].min()) > 1000 * 15


def test_psgld_under_numpyro_mcmc_chooses_its_step_size_after_learning_its_preconditioner():
    from numpyro.infer import MCMC
    from ppzoo.inference import PSGLD, NumPyroLangevin

    x, y, _, _ = _flat_problem()
    mcmc = MCMC(NumPyroLangevin(PSGLD(), numpyro_flat), num_warmup=300, num_samples=20, num_chains=2, chain_method="vectorized",
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), jnp.asarray(x), y=jnp.asarray(y), extra_fields=("step_size",))
    step_sizes = np.asarray(mcmc.get_extra_fields()["step_size"])
    assert np.all(step_sizes > 0) and np.all(step_sizes == step_sizes[0])  # chosen once, after warmup
    assert np.all(np.isfinite(mcmc.get_samples()["w"]))


# -- latents inside the data plate: full-batch on small data ---------------------------------
SCHOOLS_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], dtype=np.float32)
SCHOOLS_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], dtype=np.float32)


def numpyro_schools(sigma, y=None):
    """Eight schools as NUTS users write it: the school plate is the only plate, the
    per-school latents inside it."""
    mu = numpyro.sample("mu", ndist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", ndist.HalfCauchy(5.0))
    with numpyro.plate("school", sigma.shape[0]):
        theta_tilde = numpyro.sample("theta_tilde", ndist.Normal(0.0, 1.0))
        numpyro.sample("y", ndist.Normal(mu + tau * theta_tilde, sigma), obs=y)


def pyro_schools(sigma, y=None):
    mu = pyro.sample("mu", pdist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", pdist.HalfCauchy(5.0))
    with pyro.plate("school", sigma.shape[0]):
        theta_tilde = pyro.sample("theta_tilde", pdist.Normal(0.0, 1.0))
        pyro.sample("y", pdist.Normal(mu + tau * theta_tilde, sigma), obs=y)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_latents_in_the_data_plate_run_full_batch_and_match_nuts(backend):
    """Against the zoo's NUTS reference for the same posterior (40,000 draws): means within 4
    standard errors of the difference (the run's MCSE and the reference's), sds within 4 of the
    run's ``mcse_sd`` plus the 3% step-size allowance (25 steps per kept draw: the autocorrelation
    time on this posterior is a few hundred steps)."""
    import pathlib

    ref = json.loads((pathlib.Path(ppzoo.models.__file__).parent / "references" / "eight_schools.json").read_text())
    model, convert = (numpyro_schools, np.asarray) if backend == "numpyro" else (pyro_schools, torch.as_tensor)
    with pytest.warns(UserWarning, match=r"latent sites \['theta_tilde'\] lie inside the data plate 'school' \(N=8\); "
                                         "ppzoo runs it full-batch"):
        idata = ppzoo.sample(model, convert(SCHOOLS_SIGMA), y=convert(SCHOOLS_Y), num_samples=1000, thinning=25,
                             seed=1, progress_bar=False)
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "school")
    assert idata.posterior["theta_tilde"].dims == ("chain", "draw", "school")
    table = arviz_compat.summary(idata, var_names=["mu", "tau", "theta_tilde"])
    assert table["ess_bulk"].min() > 100  # so 4 MCSE is at most 0.4 sd
    for name, row in ref["params"].items():
        got = table.loc[name]
        assert abs(got["mean"] - row["mean"]) < 4 * np.hypot(got["mcse_mean"], row["mcse_mean"]), name
        assert abs(got["sd"] - row["sd"]) < 4 * got["mcse_sd"] + SD_BIAS * row["sd"], name


# -- masks and a subsample size fixed by the user ----------------------------------------------
def numpyro_masked(x, observed, y=None):
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", ndist.Normal(x @ w, 1.0).mask(observed), obs=y)


def pyro_masked(x, observed, y=None):
    w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Normal(x @ w, 1.0).mask(observed), obs=y)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_masked_rows_leave_the_potential_and_the_log_likelihood(backend):
    x, y, _, _ = _flat_problem()
    observed = np.arange(N_FLAT) % 3 != 0
    garbage = np.where(observed, y, 1e4).astype(np.float32)  # what the masked rows hold does not matter
    model, convert = (numpyro_masked, np.asarray) if backend == "numpyro" else (pyro_masked, torch.as_tensor)
    masked = make_backend(model, (convert(x), convert(observed)), {"y": convert(garbage)})
    kept = make_backend(model, (convert(x[observed]), convert(np.ones(observed.sum(), bool))), {"y": convert(y[observed])})
    assert masked.batch_args.positions == (0, 1)  # the mask is per-datum: sliced with the data
    theta = masked.asarray(np.random.default_rng(0).normal(size=(3, D_FLAT)))
    np.testing.assert_allclose(masked.to_numpy(masked.full_potential(theta)), kept.to_numpy(kept.full_potential(theta)),
                               rtol=1e-5)
    _, loglik = masked.pointwise(masked.to_numpy(theta))
    assert np.all(loglik["y"][:, ~observed] == 0) and np.all(loglik["y"][:, observed] < 0)


def numpyro_fixed_subsample(x, y=None):
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("data", x.shape[0], subsample_size=32) as idx:
        numpyro.sample("y", ndist.Normal(x[idx] @ w, 1.0), obs=y[idx])


def test_a_subsample_size_the_user_fixed_is_the_batch_size():
    x, y, _, _ = _flat_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        idata = ppzoo.sample(numpyro_fixed_subsample, x, y=y, method="sgld", step_size=1e-3, num_warmup=5,
                             num_samples=5, num_chains=1, progress_bar=False)
    attrs = arviz_compat.get_group(idata, "posterior").attrs
    assert attrs["batch_size"] == 32 and attrs["num_data"] == N_FLAT
    np.testing.assert_array_equal(np.diff(idata.sample_stats["grad_evals"].values, axis=1), 32)
    assert idata.log_likelihood["y"].shape == (1, 5, N_FLAT)  # the log-likelihood is of all the data
    with pytest.raises(ValueError, match="batch_size=10 differs from the subsample_size=32"):
        ppzoo.sample(numpyro_fixed_subsample, x, y=y, batch_size=10, step_size=1e-3, num_warmup=1, num_samples=1,
                     progress_bar=False)


def test_auto_thinning_rule_and_bad_values():
    from ppzoo.inference.sgmcmc.driver import MAX_AUTO_THINNING, resolve_thinning

    assert resolve_thinning("auto", None) == 1  # no estimate: every step
    assert resolve_thinning("auto", 37.0) == 10 and resolve_thinning("auto", 2.0) == 1  # ceil(tau / 4), at least 1
    assert resolve_thinning("auto", 1e6) == MAX_AUTO_THINNING and resolve_thinning(7, 37.0) == 7
    x, y, _, _ = _flat_problem()
    with pytest.raises(ValueError, match='thinning must be an integer >= 1 or "auto", got \'fast\''):
        ppzoo.sample(numpyro_flat, x, y=y, thinning="fast", num_warmup=1, num_samples=1, progress_bar=False)


# -- a warmup that ends badly ----------------------------------------------------------------
def test_the_late_warmup_check_finds_chains_apart_and_non_finite_draws():
    from ppzoo.inference.sgmcmc.driver import WARMUP_R_HAT, Chains, _late_warmup_problem

    def check(draws):
        chains = Chains(None, None, None, np.zeros(4), None, True, False, 0.1)
        return _late_warmup_problem(chains, draws), chains.warmup_r_hat

    rng = np.random.default_rng(0)
    mixed = rng.standard_normal((500, 4, 3))
    problem, r_hat = check(mixed)
    assert problem is None and r_hat[0] < 1.02  # 2,000 independent draws: R-hat within 1% of 1
    apart = mixed.copy()
    apart[:, 0, 1] += 2.0  # one chain two sds away in one coordinate
    problem, r_hat = check(apart)
    assert r_hat[0] > WARMUP_R_HAT and problem == f"the chains had not mixed by the end of warmup (R-hat {r_hat[0]:.3g})"
    apart[7, 2, 0] = np.nan
    assert check(apart)[0] == "a chain's late warmup draws are not finite"


def test_a_warmup_whose_chains_have_not_mixed_is_extended_and_the_steps_are_counted(monkeypatch):
    """Eight schools with a warmup of 200 steps: the late warmup's chains disagree (R-hat well
    above 1.1 on this posterior, whose autocorrelation time is hundreds of steps), so warmup runs
    the extra window and final buffer twice; every extra step, and the step size chosen again
    after each extra window, is in ``grad_evals``, compared with the same run (same set-up)
    without the remedy."""
    from ppzoo.inference.sgmcmc import driver

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # full batch, and a run this short may not converge
            return ppzoo.sample(numpyro_schools, SCHOOLS_SIGMA, y=SCHOOLS_Y, num_warmup=200, num_samples=50,
                                thinning=1, seed=0, progress_bar=False)

    idata = run()
    attrs = arviz_compat.get_group(idata, "posterior").attrs
    extra = driver.MAX_WARMUP_REMEDIES * sum(steps for steps, _ in driver.remedy_plan(200, driver._block_size(200)))
    assert attrs["extra_warmup"] == extra == 2 * (80 + 32)  # 40% and 15% of 200, in whole blocks of 4 steps
    assert attrs["warmup_remedies"].count("extend: the chains had not mixed") == driver.MAX_WARMUP_REMEDIES
    assert len(attrs["warmup_r_hat"]) == driver.MAX_WARMUP_REMEDIES + 1 and attrs["warmup_r_hat"][0] > 1.1
    monkeypatch.setattr(driver, "WARMUP_REMEDY", None)
    plain = run()
    plain_attrs = arviz_compat.get_group(plain, "posterior").attrs
    assert "extra_warmup" not in plain_attrs and len(plain_attrs["warmup_r_hat"]) == 1
    counts = arviz_compat.get_group(idata, "sample_stats")["grad_evals"].values
    plain_counts = arviz_compat.get_group(plain, "sample_stats")["grad_evals"].values
    per_step = np.unique(np.diff(counts, axis=1))
    # each remedy's window also chooses h again: 20 power iterations of 2 full gradients each
    retune = 2 * 20 * attrs["num_data"]
    assert per_step.size == 1
    assert np.all(counts[:, 0] - plain_counts[:, 0] == extra * per_step[0] + driver.MAX_WARMUP_REMEDIES * retune)
