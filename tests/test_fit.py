"""``ppzoo.fit``, ``log_marginal_likelihood`` and SVI fits in ArviZ, on both PPLs.

Closed forms: the Gaussian location model (theta ~ N(0, 1), x_i ~ N(theta, 1))
has the Gaussian posterior N(sum x / (N + 1), 1 / (N + 1)); the
linear-Gaussian latent model of ``conftest.py`` has ``log p(x)`` in closed form.
"""

import dataclasses

import arviz as az
import jax
import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pytest
import torch
from conftest import GAUSSIAN_LOCATION, PPCA, ppca_exact_posterior, ppca_log_evidence, slow_for
from ppzoo.inference import IWAE, AnnealedELBO, LinearWarmup

import ppzoo
from ppzoo.diagnostics import arviz_compat

BACKENDS = ("numpyro", "pyro")


def numpyro_location_guide(x):
    m = numpyro.param("m", 0.0)
    s = numpyro.param("s", 1.0, constraint=ndist.constraints.positive)
    numpyro.sample("theta", ndist.Normal(m, s))


def pyro_location_guide(x):
    m = pyro.param("m", torch.tensor(0.0))
    s = pyro.param("s", torch.tensor(1.0), constraint=pdist.constraints.positive)
    pyro.sample("theta", pdist.Normal(m, s))


LOCATION_GUIDE = {"numpyro": numpyro_location_guide, "pyro": pyro_location_guide}


def optimizer(backend, lr):
    return pyro.optim.Adam({"lr": lr}) if backend == "pyro" else numpyro.optim.Adam(lr)


@pytest.fixture(scope="module")
def location_data():
    return np.random.default_rng(1).normal(0.7, 1.0, size=50).astype(np.float32)


def exact_location_posterior(x):
    n = len(x)
    return x.sum() / (n + 1), (1.0 / (n + 1)) ** 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_finds_the_exact_posterior(backend, location_data):
    """With STL the gradient vanishes at the exact posterior, so the fit converges to it, not near it."""
    fit = ppzoo.fit(
        GAUSSIAN_LOCATION[backend], LOCATION_GUIDE[backend], location_data, objective="iwae", num_particles=4,
        estimator="stl", optimizer=optimizer(backend, 0.02), num_steps=1500, progress_bar=False,
    )
    mean, sd = exact_location_posterior(location_data)
    assert fit.backend == backend
    assert fit.losses.shape == (1500,) and np.all(np.isfinite(fit.losses))
    assert float(fit.params["m"]) == pytest.approx(mean, abs=0.01)
    assert float(fit.params["s"]) == pytest.approx(sd, abs=0.01)
    assert fit.psis_khat() < 0.5

    idata = fit.to_arviz(num_samples=400)
    assert set(arviz_compat.group_names(idata)) == {"posterior", "log_likelihood", "sample_stats", "observed_data"}
    assert idata.posterior["theta"].shape == (1, 400)
    assert idata.log_likelihood["x"].dims == ("chain", "draw", "data")
    assert idata.sample_stats["log_weight"].shape == (1, 400)
    loo = az.loo(idata)
    assert np.isfinite(float(loo.elpd if arviz_compat.DATATREE else loo.elpd_loo))
    draws = idata.posterior["theta"].values.ravel()
    assert abs(draws.mean() - mean) < 4 * sd / np.sqrt(400)  # draws come from the fitted guide


@pytest.mark.parametrize("backend", BACKENDS)
def test_khat_flags_an_underdispersed_guide(backend, location_data):
    mean, sd = exact_location_posterior(location_data)
    fit = ppzoo.fit(
        GAUSSIAN_LOCATION[backend], LOCATION_GUIDE[backend], location_data, num_steps=2, progress_bar=False
    )
    near = dataclasses.replace(fit, params={"m": np.float32(mean), "s": np.float32(sd * 1.05)})
    narrow = dataclasses.replace(fit, params={"m": np.float32(mean), "s": np.float32(sd * 0.15)})
    assert near.psis_khat(num_samples=2000) < 0.5
    assert narrow.psis_khat(num_samples=2000) > 0.7


@pytest.mark.parametrize("backend", BACKENDS)
def test_log_marginal_likelihood_matches_the_closed_form(backend, ppca_data):
    model, guide = PPCA[backend]
    a, b, s = ppca_exact_posterior()
    exact = {"A": a, "b": b, "s": s, "mu": np.array([0.5, -1.0, 0.2])}
    per_datum_exact = np.array([ppca_log_evidence(row[None]) for row in ppca_data])
    result = ppzoo.log_marginal_likelihood(model, guide, exact, ppca_data, num_samples=50, chunk_size=20)
    np.testing.assert_allclose(result.per_datum, per_datum_exact, atol=1e-3)  # exact guide: every weight is p(x)
    off = {**exact, "b": b + 0.4, "s": s * 1.5}
    result = ppzoo.log_marginal_likelihood(model, guide, off, ppca_data, num_samples=5000, chunk_size=700, seed=3)
    assert result.num_samples == 5000 and result.per_datum.shape == (len(ppca_data),)
    assert 0 < result.standard_error < 0.5
    assert abs(result.total - ppca_log_evidence(ppca_data)) < 4 * result.standard_error, result


def test_log_marginal_likelihood_agrees_across_backends(ppca_data):
    a, b, s = ppca_exact_posterior()
    off = {"A": a, "b": b - 0.3, "s": s * 1.4, "mu": np.array([0.5, -1.0, 0.2])}
    results = [
        ppzoo.log_marginal_likelihood(*PPCA[backend], off, ppca_data, num_samples=3000, chunk_size=1000)
        for backend in BACKENDS
    ]
    assert abs(results[0].total - results[1].total) < 4 * np.hypot(results[0].standard_error, results[1].standard_error)


@pytest.mark.parametrize("backend", BACKENDS)
def test_minibatch_fit_and_annealing_schedule_run(backend, location_data):
    objective = AnnealedELBO(beta=LinearWarmup(steps=100), num_particles=2)
    fit = ppzoo.fit(
        GAUSSIAN_LOCATION[backend], LOCATION_GUIDE[backend], location_data, objective=objective, batch_size=10,
        optimizer=optimizer(backend, 0.02), num_steps=600, progress_bar=False, seed=5,
    )
    mean, sd = exact_location_posterior(location_data)
    assert fit.losses.shape == (600,)
    assert float(fit.params["m"]) == pytest.approx(mean, abs=0.15)  # minibatch noise: a loose check that it moved


def test_objectives_are_losses_of_the_ppls_own_svi(location_data):
    mean, sd = exact_location_posterior(location_data)
    # NumPyro's SVI
    svi = numpyro.infer.SVI(
        GAUSSIAN_LOCATION["numpyro"], numpyro_location_guide, numpyro.optim.Adam(0.02), loss=IWAE(5, "dreg")
    )
    result = svi.run(jax.random.PRNGKey(0), 1500, jax.numpy.asarray(location_data), progress_bar=False)
    assert float(result.params["m"]) == pytest.approx(mean, abs=0.02)
    assert float(result.params["s"]) == pytest.approx(sd, abs=0.02)
    # Pyro's SVI
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    svi = pyro.infer.SVI(GAUSSIAN_LOCATION["pyro"], pyro_location_guide, pyro.optim.Adam({"lr": 0.02}), loss=IWAE(5, "dreg"))
    x = torch.tensor(location_data)
    losses = [svi.step(x) for _ in range(1500)]
    assert np.isfinite(losses).all()
    assert float(pyro.param("m").detach()) == pytest.approx(mean, abs=0.02)
    assert float(pyro.param("s").detach()) == pytest.approx(sd, abs=0.02)
    assert isinstance(svi.evaluate_loss(x), float)
    pyro.clear_param_store()


def test_pyro_annealing_counts_its_own_steps(location_data):
    pyro.clear_param_store()
    objective = AnnealedELBO(beta=LinearWarmup(steps=10))
    svi = pyro.infer.SVI(GAUSSIAN_LOCATION["pyro"], pyro_location_guide, pyro.optim.Adam({"lr": 0.01}), loss=objective)
    for _ in range(3):
        svi.step(torch.tensor(location_data))
    svi.evaluate_loss(torch.tensor(location_data))  # no gradient: not a step
    assert objective.step == 3
    pyro.clear_param_store()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_diverging_fit_keeps_its_last_finite_parameters(backend, location_data):
    with pytest.warns(RuntimeWarning, match="not finite"):
        fit = ppzoo.fit(
            GAUSSIAN_LOCATION[backend], LOCATION_GUIDE[backend], location_data * 1e30,
            optimizer=optimizer(backend, 1e30), num_steps=200, progress_bar=False,
        )
    assert fit.stop_reason and "not finite" in fit.stop_reason
    assert len(fit.losses) < 200 and np.all(np.isfinite(fit.losses))
    assert all(np.all(np.isfinite(v)) for v in fit.params.values())


def numpyro_guide_missing_theta(x):
    numpyro.param("m", 0.0)


def numpyro_guide_with_extra_site(x):
    numpyro.sample("theta", ndist.Normal(numpyro.param("m", 0.0), 1.0))
    numpyro.sample("phi", ndist.Normal(0.0, 1.0))


def pyro_coin(x):
    c = pyro.sample("c", pdist.Bernoulli(0.5))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", pdist.Normal(c, 1.0), obs=x)


def pyro_coin_guide(x):
    pyro.sample("c", pdist.Bernoulli(pyro.param("p", torch.tensor(0.5), constraint=pdist.constraints.unit_interval)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"objective": "iwae", "num_particles": 0}, "num_particles must be an integer >= 1, got 0"),
        ({"objective": "iwae", "num_particles": 2.5}, "num_particles must be an integer"),
        ({"objective": "iwae", "estimator": "score"}, r"estimator must be one of \('reparam', 'stl', 'dreg'\)"),
        ({"objective": "elbo", "estimator": "dreg"}, "use IWAE for 'dreg'"),
        ({"objective": "kl"}, "objective must be 'elbo', 'iwae'"),
        ({"num_steps": 0}, "num_steps must be an integer >= 1, got 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": 51}, "batch_size must be at most N=50"),
        ({"backend": "stan"}, "backend must be one of"),
        ({"jit_compile": 1}, "jit_compile must be True or False"),
        ({"callback": "print"}, "callback must be a function"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, match, location_data):
    with pytest.raises((ValueError, TypeError), match=match):
        ppzoo.fit(GAUSSIAN_LOCATION["numpyro"], numpyro_location_guide, location_data, progress_bar=False, **kwargs)


@pytest.mark.parametrize(
    ("guide", "match"),
    [
        (numpyro_guide_missing_theta, r"guide has no sample site for the model's latent site\(s\) \['theta'\]"),
        (numpyro_guide_with_extra_site, r"guide samples site\(s\) \['phi'\] that the model does not have"),
    ],
)
def test_guide_must_match_the_model(guide, match, location_data):
    with pytest.raises(ValueError, match=match):
        ppzoo.fit(GAUSSIAN_LOCATION["numpyro"], guide, location_data, num_steps=2, progress_bar=False)


@pytest.mark.parametrize("estimator", ["stl", "dreg"])
def test_non_reparameterisable_guide_site_is_named(estimator, location_data):
    with pytest.raises(ValueError, match=r"guide site 'c' \(Bernoulli\) is not reparameterisable"):
        IWAE(3, estimator)(pyro_coin, pyro_coin_guide, torch.tensor(location_data))


def test_annealing_schedule_on_numpyro_needs_the_step(location_data):
    objective = AnnealedELBO(beta=LinearWarmup(10))
    params = {"m": jax.numpy.array(0.0), "s": jax.numpy.array(1.0)}
    with pytest.raises(ValueError, match="needs annealing_step="):
        objective.loss(jax.random.PRNGKey(0), params, GAUSSIAN_LOCATION["numpyro"], numpyro_location_guide, location_data)


def test_log_marginal_likelihood_checks_its_counts(ppca_data):
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1, got 0"):
        ppzoo.log_marginal_likelihood(*PPCA["numpyro"], None, ppca_data, num_samples=0)
    with pytest.raises(TypeError, match="chunk_size must be an integer"):
        ppzoo.log_marginal_likelihood(*PPCA["numpyro"], None, ppca_data, chunk_size=1.5)


@pytest.mark.parametrize("backend", slow_for(BACKENDS, lambda b: b == "numpyro"))
def test_to_arviz_names_per_datum_latents_and_round_trips(backend, ppca_data, tmp_path):
    fit = ppzoo.fit(*PPCA[backend], ppca_data, objective="iwae", num_particles=3, num_steps=3, progress_bar=False)
    idata = fit.to_arviz(num_samples=40)
    assert idata.posterior["z"].dims == ("chain", "draw", "data", "z_dim_0")
    assert idata.posterior["z"].shape == (1, 40, len(ppca_data), 2)
    assert idata.log_likelihood["x"].dims == ("chain", "draw", "data")
    assert idata.observed_data["x"].dims == ("data", "x_dim_0")
    np.testing.assert_allclose(idata.observed_data["x"].values, ppca_data)
    assert idata.posterior.attrs["backend"] == backend
    assert fit.psis_khat(num_samples=40, per_datum=True).shape == (len(ppca_data),)
    arviz_compat.to_netcdf(idata, tmp_path / "fit.nc")
    again = az.from_netcdf(str(tmp_path / "fit.nc"))
    np.testing.assert_allclose(again.sample_stats["log_weight"].values, idata.sample_stats["log_weight"].values)


@pytest.mark.parametrize("backend", BACKENDS)
def test_callback_sees_every_step_and_its_loss(backend, location_data):
    seen = []
    fit = ppzoo.fit(
        GAUSSIAN_LOCATION[backend], LOCATION_GUIDE[backend], location_data, num_steps=60, progress_bar=False,
        callback=lambda t, loss: seen.append((t, loss)),
    )
    assert [t for t, _ in seen] == list(range(60))
    np.testing.assert_allclose([loss for _, loss in seen], fit.losses)
