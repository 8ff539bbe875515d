"""``ppzoo.fit`` with the guides users already have: Pyro's and NumPyro's autoguides.

The models are written as users write them (data used whole, ``obs=x``). The
exact posterior of the Gaussian location model (``theta ~ N(0, I_2)``,
``x_i ~ N(theta, I_2)``) is ``N(sum x / (N + 1), I / (N + 1))`` and its
evidence is closed-form (each coordinate ``x_{., j} ~ N(0, I + 1 1')``). With
the STL estimator the gradient of a Gaussian guide vanishes at the exact
posterior, so the fits converge to it rather than near it; tolerances are
then Monte Carlo errors of the guide's draws.
"""

import json
import math
import warnings

import numpy as np
import numpyro
import numpyro.distributions as ndist
import numpyro.optim
import pyro
import pyro.distributions as pdist
import pyro.optim
import pytest
import torch
from conftest import slow_for
from numpyro.infer import autoguide as nag
from pyro.infer import autoguide as pag

import ppzoo
from ppzoo.diagnostics import arviz_compat
from ppzoo.diagnostics.fit_convergence import FitConvergenceWarning, loss_trend

N = 40
DRAWS = 4000


def numpyro_location(x):
    theta = numpyro.sample("theta", ndist.Normal(0.0, 1.0).expand([2]).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("x", ndist.Normal(theta, 1.0).to_event(1), obs=x)


def pyro_location(x):
    theta = pyro.sample("theta", pdist.Normal(0.0, 1.0).expand([2]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", pdist.Normal(theta, 1.0).to_event(1), obs=x)


MODEL = {"numpyro": numpyro_location, "pyro": pyro_location}


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(3).normal([0.7, -0.4], 1.0, size=(N, 2)).astype(np.float32)


def exact(x):
    n = x.shape[0]
    mean, sd = x.sum(axis=0) / (n + 1), math.sqrt(1.0 / (n + 1))
    evidence = sum(
        -n / 2 * math.log(2 * math.pi) - 0.5 * math.log(1 + n) - 0.5 * (v @ v - v.sum() ** 2 / (1 + n))
        for v in x.T.astype(np.float64)
    )
    return mean, sd, evidence


def as_data(backend, x):
    return torch.as_tensor(x) if backend == "pyro" else x


def adam(backend, lr):
    return pyro.optim.Adam({"lr": lr}) if backend == "pyro" else numpyro.optim.Adam(lr)


def autoguide(backend, name, model, **options):
    return getattr(pag if backend == "pyro" else nag, name)(model, **options)


def draws_of(fit, name="theta"):
    idata = fit.to_arviz(num_samples=DRAWS)
    post = arviz_compat.get_group(idata, "posterior")
    return idata, post, np.asarray(post[name].values).reshape(DRAWS, -1)


GAUSSIAN_GUIDES = [
    (backend, name)
    for backend in ("numpyro", "pyro")
    for name in ("AutoNormal", "AutoDiagonalNormal", "AutoMultivariateNormal", "AutoLowRankMultivariateNormal")
]


@pytest.mark.parametrize(("backend", "name"), slow_for(GAUSSIAN_GUIDES, lambda case: case[0] == "numpyro"
                                                       and case[1] in ("AutoMultivariateNormal", "AutoLowRankMultivariateNormal")))
def test_gaussian_autoguides_find_the_exact_posterior(backend, name, data):
    """STL fit; the posterior in the model's site names (no auxiliary site), means within 4 Monte
    Carlo standard errors plus 0.02 sd, sds within 5% (the sd of 4,000 draws has a relative
    error of 1.1%); for AutoDiagonalNormal, PSIS k-hat below 0.5 and log p(x) within 4 of its
    standard errors plus 0.05 of the closed form."""
    mean, sd, evidence = exact(data)
    model = MODEL[backend]
    fit = ppzoo.fit(model, autoguide(backend, name, model), as_data(backend, data), estimator="stl",
                    num_particles=4, optimizer=adam(backend, 0.02), num_steps=1500, progress_bar=False, seed=1)
    idata, post, theta = draws_of(fit)
    assert set(post.data_vars) == {"theta"}
    assert np.all(np.abs(theta.mean(axis=0) - mean) < 4 * sd / math.sqrt(DRAWS) + 0.02 * sd)
    assert np.all(np.abs(theta.std(axis=0) / sd - 1) < 0.05)
    assert "log_weight" in arviz_compat.get_group(idata, "sample_stats")
    if name == "AutoDiagonalNormal":  # the importance weights of a guide with auxiliary draws (each is compiled anew)
        assert fit.psis_khat() < 0.5
        lml = fit.log_marginal_likelihood(num_samples=2000)
        assert abs(lml.total - evidence) < 4 * lml.standard_error + 0.05


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_an_autoguide_under_iwae_dreg_and_the_annealed_elbo(backend, data):
    mean, sd, _ = exact(data)
    model = MODEL[backend]
    guide = autoguide(backend, "AutoDiagonalNormal", model)
    fit = ppzoo.fit(model, guide, as_data(backend, data), objective="iwae", num_particles=8, estimator="dreg",
                    optimizer=adam(backend, 0.02), num_steps=3000, progress_bar=False, seed=2)
    _, _, theta = draws_of(fit)
    assert np.all(np.abs(theta.mean(axis=0) - mean) < 4 * sd / math.sqrt(DRAWS) + 0.02 * sd)
    assert np.all(np.abs(theta.std(axis=0) / sd - 1) < 0.05)
    annealed = ppzoo.fit(model, autoguide(backend, "AutoNormal", model), as_data(backend, data),
                         objective=ppzoo.inference.AnnealedELBO(beta=ppzoo.inference.LinearWarmup(steps=100)),
                         optimizer=adam(backend, 0.02), num_steps=300, progress_bar=False)
    assert np.all(np.isfinite(annealed.losses)) and set(draws_of(annealed)[1].data_vars) == {"theta"}


FLOWS = [("numpyro", "AutoIAFNormal"), ("numpyro", "AutoBNAFNormal"), ("pyro", "AutoIAFNormal")]


@pytest.mark.parametrize(("backend", "name"), slow_for(FLOWS, lambda case: case[0] == "numpyro"))
def test_flow_autoguides_fit_the_posterior(backend, name, data):
    """A normalising flow is not exactly Gaussian at any setting, and its reparameterised gradient
    is noisy at the optimum: means within 0.25 sd, sds within 15%."""
    mean, sd, _ = exact(data)
    model = MODEL[backend]
    fit = ppzoo.fit(model, autoguide(backend, name, model), as_data(backend, data), num_particles=4,
                    optimizer=adam(backend, 0.01), num_steps=2000, progress_bar=False, seed=0)
    _, post, theta = draws_of(fit)
    assert set(post.data_vars) == {"theta"}
    assert np.all(np.abs(theta.mean(axis=0) - mean) < 0.25 * sd)
    assert np.all(np.abs(theta.std(axis=0) / sd - 1) < 0.15)
    if name == "AutoBNAFNormal":  # STL needs the flow's inverse, which BNAF has not
        with pytest.raises(ValueError, match="normalising flow's draw .* use estimator='reparam'"):
            ppzoo.fit(model, autoguide(backend, name, model), data, estimator="stl", num_steps=2, progress_bar=False)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_autodelta_is_a_map_fit_and_has_no_density(backend, data):
    """AutoDelta's ELBO (and IWAE, its particles all equal) is ``log p(x, z)``: the fit is the MAP,
    here the posterior mean; the importance weights need a density, so PSIS and log p(x) refuse."""
    mean, sd, _ = exact(data)
    model = MODEL[backend]
    fit = ppzoo.fit(model, autoguide(backend, "AutoDelta", model), as_data(backend, data), objective="iwae",
                    num_particles=4, optimizer=adam(backend, 0.05), num_steps=1000, progress_bar=False)
    with pytest.warns(UserWarning, match=r"the guide's site\(s\) \['theta'\] are point masses"):
        idata = fit.to_arviz(num_samples=50)
    theta = np.asarray(arviz_compat.get_group(idata, "posterior")["theta"].values).reshape(50, 2)
    assert np.all(theta == theta[0]) and np.all(np.abs(theta[0] - mean) < 0.02 * sd)
    assert not arviz_compat.has_group(idata, "sample_stats")  # no importance weights
    with pytest.raises(ValueError, match=r"psis_khat needs a guide with a density, but its site\(s\) \['theta'\]"):
        fit.psis_khat()
    with pytest.raises(ValueError, match="log_marginal_likelihood needs a guide with a density"):
        fit.log_marginal_likelihood(num_samples=100)


def numpyro_counts(k):
    lam = numpyro.sample("lam", ndist.Gamma(2.0, 1.0))
    with numpyro.plate("data", k.shape[0]):
        numpyro.sample("k", ndist.Poisson(lam), obs=k)


def pyro_counts(k):
    lam = pyro.sample("lam", pdist.Gamma(2.0, 1.0))
    with pyro.plate("data", k.shape[0]):
        pyro.sample("k", pdist.Poisson(lam), obs=k)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_a_positive_site_comes_back_constrained_under_its_own_name(backend):
    """Gamma-Poisson: the posterior is Gamma(2 + sum k, 1 + N); AutoNormal's log-normal guide,
    whose draws must come back as ``lam`` (not its unconstrained value), matches its mean and sd
    within 2% and 10% at N = 200."""
    k = np.random.default_rng(0).poisson(3.0, size=200).astype(np.float32)
    shape, rate = 2.0 + k.sum(), 1.0 + k.size
    model = {"numpyro": numpyro_counts, "pyro": pyro_counts}[backend]
    fit = ppzoo.fit(model, autoguide(backend, "AutoNormal", model), as_data(backend, k), estimator="stl",
                    num_particles=4, optimizer=adam(backend, 0.02), num_steps=1500, progress_bar=False)
    _, post, lam = draws_of(fit, "lam")
    assert set(post.data_vars) == {"lam"} and np.all(lam > 0)
    assert abs(lam.mean() / (shape / rate) - 1) < 0.02 and abs(lam.std() / (math.sqrt(shape) / rate) - 1) < 0.1


def pyro_logistic(x, y=None):
    w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Bernoulli(logits=x @ w), obs=y)


def test_a_pyro_program_that_does_not_broadcast_over_particles_runs_them_under_vmap():
    """``x @ w`` fails when ``w`` has a particle dimension: one particle runs the program as written
    (no particle plate); several run the model under ``torch.func.vmap``, with no warning."""
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.standard_normal((60, 3)).astype(np.float32))
    y = torch.as_tensor((rng.random(60) < 0.5).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", FitConvergenceWarning)  # 50 steps: this test is not about convergence
        one = ppzoo.fit(pyro_logistic, pag.AutoNormal(pyro_logistic), x, y=y, num_steps=50, progress_bar=False)
        several = ppzoo.fit(pyro_logistic, pag.AutoNormal(pyro_logistic), x, y=y, objective="iwae", num_particles=4,
                            num_steps=50, progress_bar=False)
        idata = several.to_arviz(num_samples=30, draws="guide")
    assert np.all(np.isfinite(one.losses))
    assert np.all(np.isfinite(several.losses)) and idata.posterior["w"].shape == (1, 30, 3)


def numpyro_scaled(x):
    mu = numpyro.sample("mu", ndist.Normal(0.0, 1.0))
    s = numpyro.sample("s", ndist.LogNormal(0.0, 1.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("x", ndist.Normal(mu, s), obs=x)


def pyro_scaled(x):
    mu = pyro.sample("mu", pdist.Normal(0.0, 1.0))
    s = pyro.sample("s", pdist.LogNormal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", pdist.Normal(mu, s), obs=x)


SCALED = {"numpyro": numpyro_scaled, "pyro": pyro_scaled}


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_a_fit_that_blows_up_keeps_finite_parameters_and_is_marked_diverged(backend, data):
    """A learning rate of 50 sends the scale's unconstrained parameter to where the loss overflows:
    the fit stops, hands back the parameters of its last finite loss (finite), and says so."""
    model = SCALED[backend]
    with pytest.warns(RuntimeWarning, match="not finite.*the fit diverged"):
        fit = ppzoo.fit(model, autoguide(backend, "AutoNormal", model), as_data(backend, data[:, 0]),
                        optimizer=adam(backend, 50.0), num_steps=300, progress_bar=False)
    assert fit.diverged and len(fit.losses) < 300 and np.all(np.isfinite(fit.losses))
    assert all(np.all(np.isfinite(np.asarray(v))) for v in fit.params.values())
    with pytest.warns(RuntimeWarning, match="this fit diverged"):
        idata = fit.to_arviz(num_samples=30)
    assert arviz_compat.get_group(idata, "posterior").attrs["diverged"] == 1


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_bad_data_and_bad_names_are_refused_before_anything_runs(backend, data):
    model = MODEL[backend]
    bad = data.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"observed site 'x' contains NaN or infinite values \(1 of 80\)"):
        ppzoo.fit(model, autoguide(backend, "AutoNormal", model), as_data(backend, bad), num_steps=5,
                  progress_bar=False)
    guide = autoguide(backend, "AutoNormal", model)
    fit = ppzoo.fit(model, guide, as_data(backend, data), num_steps=5, progress_bar=False)
    name = sorted(fit.params)[0]
    with pytest.raises(ValueError, match=rf"'{name}x' \(did you mean '{name}'\?\)"):
        ppzoo.log_marginal_likelihood(model, guide, {name + "x": fit.params[name]}, as_data(backend, data))
    with pytest.raises(ValueError, match="num_samples must be an integer >= 30"):
        fit.psis_khat(num_samples=5)
    with pytest.warns(RuntimeWarning, match="num_samples=1 has no standard error"):
        one = fit.log_marginal_likelihood(num_samples=1)
    assert math.isnan(one.standard_error) and math.isfinite(one.total)


def test_the_loss_trend_tells_a_falling_loss_from_a_level_one():
    """On a level loss the rule's false alarms are its one-sided 2-SE test on 8 degrees of freedom,
    P(t_8 > 2) = 4.0%: over 400 seeds, at most 4.0% plus 3 binomial standard errors (1.0%) flag
    "still improving"; a loss that still falls by 0.5 nats over its last 1,000 steps is seen."""
    rng = np.random.default_rng(0)
    steps = np.arange(2000)
    alarms = np.mean([not loss_trend(10.0 + 0.5 * rng.standard_normal(2000)).levelled_off for _ in range(400)])
    assert alarms <= 0.040 + 3 * np.sqrt(0.04 * 0.96 / 400)
    level = 10.0 + 0.5 * rng.standard_normal(2000)
    falling = level + 3.0 * np.exp(-steps / 3000)  # still falls by 0.5 nats over the last 1,000 steps
    trend = loss_trend(falling)
    assert trend.levelled_off is False and trend.window == 1000
    assert trend.improvement == pytest.approx(3.0 * (np.exp(-1000 / 3000) - np.exp(-2000 / 3000)), abs=4 * trend.standard_error)
    assert loss_trend(level[:10]).levelled_off is None


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_a_fit_still_falling_warns_and_reports_it(backend, data):
    """Adam at 1e-3 for 300 steps from the prior's median moves each mean by at most 0.3 of the
    0.7 it has to go: the loss is still falling, and the fit says so."""
    model = MODEL[backend]
    with pytest.warns(FitConvergenceWarning, match="had not levelled off: its loss fell by"):
        fit = ppzoo.fit(model, autoguide(backend, "AutoNormal", model), as_data(backend, data), num_steps=300,
                        optimizer=adam(backend, 1e-3), progress_bar=False)
    assert fit.converged is False and fit.trend.improvement > 0
    attrs = arviz_compat.get_group(fit.to_arviz(num_samples=30), "posterior").attrs
    assert attrs["converged"] == 0 and "improvement" in attrs["loss_trend"]


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_the_default_fit_lowers_its_learning_rate_at_plateaus_and_stops_at_the_exact_posterior(backend, data):
    """No ``num_steps``, no optimiser, the plain ELBO: Adam from 1e-2, lowered tenfold twice, each
    time after at least 500 steps whose loss levelled off, then stopped when it levelled off again,
    well before ``MAX_STEPS``. Means within 0.1 posterior sd plus 4 Monte Carlo standard errors of
    the exact posterior, sds within 10% (what the iterates' jitter leaves at 1e-4; 4,000 draws'
    sd has a relative error of 1.1%)."""
    from ppzoo.fitting import MAX_STEPS

    model = MODEL[backend]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitConvergenceWarning)
        fit = ppzoo.fit(model, autoguide(backend, "AutoNormal", model), as_data(backend, data), progress_bar=False)
    steps, rates = zip(*fit.learning_rates)
    assert rates == pytest.approx((1e-2, 1e-3, 1e-4)) and steps[0] == 0
    assert all(b - a >= 500 for a, b in zip(steps, steps[1:])) and len(fit.losses) - steps[-1] >= 500
    assert fit.converged is True and len(fit.losses) < MAX_STEPS / 4
    mean, sd, _ = exact(data)
    idata, post, draws = draws_of(fit)
    assert np.abs(draws.mean(axis=0) - mean).max() < 0.1 * sd + 4 * sd / math.sqrt(DRAWS)
    np.testing.assert_allclose(draws.std(axis=0), sd, rtol=0.1)
    assert [tuple(r) for r in json.loads(post.attrs["learning_rates"])] == fit.learning_rates


@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: b == "numpyro"))
def test_the_users_optimiser_keeps_its_learning_rate_and_a_neural_program_starts_at_1e_3(backend, data):
    """``num_steps=None`` with the user's optimiser stops when the loss levels off at the user's
    rate, which nobody changes; a program with a neural-network module starts from Adam's 1e-3."""
    from ppzoo.models.vae import numpyro_vae, pyro_vae

    model = MODEL[backend]
    fit = ppzoo.fit(model, autoguide(backend, "AutoNormal", model), as_data(backend, data),
                    optimizer=adam(backend, 0.02), progress_bar=False)
    assert fit.learning_rates == [] and fit.converged is True and 500 <= len(fit.losses) < 3000
    vae, encoder = (numpyro_vae if backend == "numpyro" else pyro_vae)(64, 2, hidden=(8,))
    digits = np.random.default_rng(0).random((20, 64)).astype(np.float32)
    with pytest.warns(FitConvergenceWarning):
        neural = ppzoo.fit(vae, encoder, as_data(backend, digits), num_steps=30, progress_bar=False)
    assert neural.learning_rates == [(0, 1e-3)]


def test_a_fit_whose_objective_changes_with_the_step_needs_num_steps(data):
    from ppzoo.inference import AnnealedELBO, LinearWarmup

    with pytest.raises(ValueError, match="num_steps must be given when the objective changes from step to step"):
        ppzoo.fit(numpyro_location, nag.AutoNormal(numpyro_location), data,
                  objective=AnnealedELBO(LinearWarmup(100)), progress_bar=False)


@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: b == "numpyro"))
def test_the_laplace_approximation_is_the_posterior_of_an_autolaplace_fit(backend, data):
    """``AutoLaplaceApproximation`` fits the MAP; its posterior (draws, PSIS, ``log p(x)``) is the
    Gaussian with the inverse Hessian at the MAP, exact for this model: means within 0.02 sd plus
    4 Monte Carlo standard errors, sds within 5%, k-hat below 0.5 and ``log p(x)`` within 4 of its
    standard errors plus 0.05 of the closed form."""
    model = MODEL[backend]
    fit = ppzoo.fit(model, autoguide(backend, "AutoLaplaceApproximation", model), as_data(backend, data),
                    progress_bar=False)
    mean, sd, evidence = exact(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no point-mass warning: the posterior is the Gaussian
        idata, post, draws = draws_of(fit)
    assert set(post.data_vars) == {"theta"}
    assert np.abs(draws.mean(axis=0) - mean).max() < 0.02 * sd + 4 * sd / math.sqrt(DRAWS)
    np.testing.assert_allclose(draws.std(axis=0), sd, rtol=0.05)
    assert fit.psis_khat(num_samples=1000) < 0.5
    lml = fit.log_marginal_likelihood(num_samples=2000)
    assert abs(lml.total - evidence) < 4 * lml.standard_error + 0.05
