"""Prior and posterior predictive checks through each PPL's own Predictive (ppzoo.predict, ppzoo.prior_predictive).

Monte Carlo tolerances: a mean of ``S`` independent draws with variance ``v`` has standard error
``sqrt(v / S)``; a sample variance of ``S`` independent normal draws with variance ``v`` has
standard error ``v sqrt(2 / (S - 1))``. The checks allow 4 standard errors (fixed seeds).
"""

import warnings

import arviz as az
import numpy as np
import numpyro
import numpyro.distributions as nd
import pyro
import pyro.distributions as pd
import pytest
from conftest import GAUSSIAN_LOCATION, LINEAR_REGRESSION, slow_for
from scipy import stats

import ppzoo
from ppzoo.diagnostics import arviz_compat

PPLS = ["numpyro", "pyro"]
TOLERANCE = 4.0  # standard errors


def numpyro_conjugate(x):
    """z ~ N(0, 1), x_i ~ N(z, 1)."""
    z = numpyro.sample("z", nd.Normal(0.0, 1.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("x", nd.Normal(z, 1.0), obs=x)


def pyro_conjugate(x):
    z = pyro.sample("z", pd.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", pd.Normal(z, 1.0), obs=x)


def numpyro_renamed(x):
    """The conjugate model with its latent named ``mu``: not the model of a posterior over ``z``."""
    mu = numpyro.sample("mu", nd.Normal(0.0, 1.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("x", nd.Normal(mu, 1.0), obs=x)


def numpyro_subsampled(x, y=None):
    """A regression in the subsampling idiom, with a deterministic site inside the plate."""
    w = numpyro.sample("w", nd.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("data", x.shape[0], subsample_size=5) as idx:
        mu = numpyro.deterministic("mu", x[idx] @ w)
        numpyro.sample("y", nd.Normal(mu, 1.0), obs=None if y is None else y[idx])


def pyro_subsampled(x, y=None):
    w = pyro.sample("w", pd.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0], subsample_size=5) as idx:
        mu = pyro.deterministic("mu", (x[idx] * w.unsqueeze(-2)).sum(-1))
        pyro.sample("y", pd.Normal(mu, 1.0), obs=None if y is None else y[idx])


CONJUGATE = {"numpyro": numpyro_conjugate, "pyro": pyro_conjugate}
SUBSAMPLED = {"numpyro": numpyro_subsampled, "pyro": pyro_subsampled}


def loo_pit(result, name):
    """``az.loo_pit`` of observed site ``name``: ``(N,)`` (ArviZ 1.x: arviz-stats' ``var_names``)."""
    if arviz_compat.DATATREE:
        return np.asarray(az.loo_pit(result, var_names=[name])[name])
    return np.asarray(az.loo_pit(result, y=name))


def exact_result(ppl, data, num_chains=2, num_draws=2000, seed=1):
    """A result of the conjugate model holding draws of its exact posterior N(m, s^2), with the
    per-datum log-likelihood (so az.loo_pit works) and the observed data."""
    n = data.shape[0]
    s2 = 1.0 / (1.0 + n)
    m = data.sum() * s2
    z = np.random.default_rng(seed).normal(m, np.sqrt(s2), (num_chains, num_draws))
    loglik = stats.norm.logpdf(data[None, None, :], z[..., None], 1.0)
    result = arviz_compat.from_dict(
        {"posterior": {"z": z}, "log_likelihood": {"x": loglik}, "observed_data": {"x": data}},
        dims={"x": ["data"]}, attrs={"backend": ppl},
    )
    return result, m, s2


@pytest.fixture(scope="module")
def conjugate_data():
    return np.random.default_rng(0).normal(0.7, 1.0, 40).astype(np.float32)


@pytest.mark.parametrize("ppl", PPLS)
def test_posterior_predictive_matches_the_exact_predictive(ppl, conjugate_data):
    result, m, s2 = exact_result(ppl, conjugate_data)
    out = ppzoo.predict(result, CONJUGATE[ppl], conjugate_data, seed=2)
    assert out is result and arviz_compat.has_group(result, "posterior_predictive")
    draws = result.posterior_predictive["x"]
    assert draws.dims == ("chain", "draw", "data") and draws.shape == (2, 2000, 40)
    values = np.asarray(draws.values, dtype=np.float64).reshape(-1, 40)
    num = values.shape[0]
    # the mean over data of one draw is z + mean(eps): variance s^2 + 1/N, independent across draws
    mean_se = np.sqrt((s2 + 1.0 / 40) / num)
    assert abs(values.mean() - m) < TOLERANCE * mean_se
    # one datum's draws are independent N(m, 1 + s^2)
    var = 1.0 + s2
    assert abs(values[:, 0].var(ddof=1) - var) < TOLERANCE * var * np.sqrt(2.0 / (num - 1))


@pytest.mark.parametrize("ppl", PPLS)
def test_prior_predictive_matches_the_closed_form(ppl, conjugate_data):
    prior = ppzoo.prior_predictive(CONJUGATE[ppl], conjugate_data, num_samples=4000, seed=3)
    assert set(arviz_compat.group_names(prior)) == {"prior", "prior_predictive", "observed_data"}
    z = np.asarray(prior.prior["z"].values, dtype=np.float64).ravel()
    x = prior.prior_predictive["x"]
    assert x.dims == ("chain", "draw", "data") and x.shape == (1, 4000, 40)
    np.testing.assert_allclose(prior.observed_data["x"].values, conjugate_data)
    x0 = np.asarray(x.values, dtype=np.float64)[0, :, 0]
    num = z.size
    # z ~ N(0, 1); x_i ~ N(0, 2)
    assert abs(z.mean()) < TOLERANCE * np.sqrt(1.0 / num)
    assert abs(x0.mean()) < TOLERANCE * np.sqrt(2.0 / num)
    assert abs(x0.var(ddof=1) - 2.0) < TOLERANCE * 2.0 * np.sqrt(2.0 / (num - 1))


def regression_result(ppl, x, y, num_chains=2, num_draws=30, seed=4):
    """A linear-regression result (w, b, sigma) of made-up draws, with its observed data."""
    rng = np.random.default_rng(seed)
    posterior = {"w": rng.normal(0.0, 1.0, (num_chains, num_draws, x.shape[1])),
                 "b": rng.normal(0.0, 1.0, (num_chains, num_draws)),
                 "sigma": rng.uniform(0.5, 1.0, (num_chains, num_draws))}
    return arviz_compat.from_dict({"posterior": posterior, "observed_data": {"y": y}},
                                  dims={"y": ["data"], "w": ["w_dim_0"]}, attrs={"backend": ppl})


@pytest.mark.parametrize("ppl", PPLS)
def test_predictions_at_new_data(ppl, regression_data):
    x, y = regression_data
    result = regression_result(ppl, x, y)
    x_new = np.random.default_rng(5).standard_normal((7, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "the model could not run vectorised", RuntimeWarning)
        ppzoo.predict(result, LINEAR_REGRESSION[ppl], x_new, chunk_size=25)
    pred = result.predictions["y"]
    assert pred.dims == ("chain", "draw", "data") and pred.shape == (2, 30, 7)
    assert not arviz_compat.has_group(result, "posterior_predictive")
    const = result.predictions_constant_data["x"]
    assert const.dims == ("data", "x_dim_0")
    np.testing.assert_array_equal(const.values, x_new)
    # at the observed data (y given, the observed values), the posterior predictive instead
    ppzoo.predict(result, LINEAR_REGRESSION[ppl], x, y=y)
    assert result.posterior_predictive["y"].shape == (2, 30, 60)
    assert result.posterior_predictive["y"].dims == ("chain", "draw") + result.observed_data["y"].dims


@pytest.mark.parametrize("ppl", PPLS)
def test_new_data_keyword(ppl, regression_data):
    x, y = regression_data
    result = regression_result(ppl, x, y)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "the model could not run vectorised", RuntimeWarning)
        ppzoo.predict(result, LINEAR_REGRESSION[ppl], x, new_data=False)  # y left None, same x
        assert result.posterior_predictive["y"].shape == (2, 30, 60)
        ppzoo.predict(result, LINEAR_REGRESSION[ppl], x, y=y, new_data=True)
        assert result.predictions["y"].shape == (2, 30, 60)
        with pytest.raises(ValueError, match=r"new_data=False, but .*'y'"):
            ppzoo.predict(result, LINEAR_REGRESSION[ppl], x[:9], new_data=False)


@pytest.mark.parametrize("ppl", slow_for(PPLS, lambda p: p == "numpyro"))
def test_subsampling_idiom_predicts_every_row_with_deterministic_sites(ppl):
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((20, 2)).astype(np.float32), rng.standard_normal(20).astype(np.float32)
    result = regression_result(ppl, x, y)
    x_new = rng.standard_normal((23, 2)).astype(np.float32)
    ppzoo.predict(result, SUBSAMPLED[ppl], x_new, chunk_size=25)
    w = np.asarray(result.posterior["w"].values)
    for name in ("y", "mu"):
        assert result.predictions[name].dims == ("chain", "draw", "data")
        assert result.predictions[name].shape == (2, 30, 23)
    # the deterministic site, every row, in order, in every chunk
    np.testing.assert_allclose(result.predictions["mu"].values, np.einsum("mi,cdi->cdm", x_new, w), rtol=1e-4, atol=1e-5)
    prior = ppzoo.prior_predictive(SUBSAMPLED[ppl], x, y, num_samples=10)
    assert prior.prior["mu"].shape == (1, 10, 20) and prior.prior_predictive["y"].shape == (1, 10, 20)


@pytest.mark.parametrize("ppl", PPLS)
def test_loo_pit_is_uniform_for_a_well_specified_model(ppl):
    data = np.random.default_rng(8).normal(0.3, 1.0, 60).astype(np.float32)
    result, _, _ = exact_result(ppl, data, num_chains=2, num_draws=1000, seed=9)
    ppzoo.predict(result, CONJUGATE[ppl], data, seed=10)
    pit = loo_pit(result, "x")
    assert pit.shape == (60,) and np.all((pit >= 0) & (pit <= 1))
    # KS test of uniformity at level 0.01 (fixed seeds: deterministic outcome)
    assert stats.kstest(pit, "uniform").pvalue > 0.01


@pytest.mark.parametrize("ppl", PPLS)
def test_plot_ppc_runs(ppl, conjugate_data):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result, _, _ = exact_result(ppl, conjugate_data, num_draws=50)
    ppzoo.predict(result, CONJUGATE[ppl], conjugate_data)
    try:
        if arviz_compat.DATATREE:
            az.plot_ppc_dist(result, backend="matplotlib")
        else:
            az.plot_ppc(result, num_pp_samples=20)
    finally:
        plt.close("all")


# NumPyro's compilation of the sampler and of SVI takes about 10 s
@pytest.mark.parametrize("ppl", slow_for(PPLS, lambda p: p == "numpyro"))
def test_sgmcmc_result(ppl):
    rng = np.random.default_rng(12)
    data = rng.normal(0.5, 1.0, 30).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short run: the convergence report warns
        result = ppzoo.sample(GAUSSIAN_LOCATION[ppl], data, num_warmup=200, num_samples=40, num_chains=2, seed=1,
                              progress_bar=False)
    ppzoo.predict(result, GAUSSIAN_LOCATION[ppl], data)
    pp = result.posterior_predictive["x"]
    assert pp.dims == ("chain", "draw") + result.observed_data["x"].dims and pp.shape == (2, 40, 30)
    assert loo_pit(result, "x").shape == (30,)


@pytest.mark.parametrize("ppl", slow_for(PPLS, lambda p: p == "numpyro"))
def test_fit_result(ppl):
    if ppl == "numpyro":
        from numpyro.infer.autoguide import AutoNormal
    else:
        from pyro.infer.autoguide import AutoNormal
    rng = np.random.default_rng(13)
    data = rng.normal(0.5, 1.0, 30).astype(np.float32)
    model = CONJUGATE[ppl]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short fit: the convergence check warns
        fit = ppzoo.fit(model, AutoNormal(model), data, num_steps=200, progress_bar=False, seed=0)
    direct = ppzoo.predict(fit, num_samples=50)
    assert direct.posterior_predictive["x"].shape == (1, 50, 30)
    converted = ppzoo.predict(fit.to_arviz(num_samples=40), model, data[:11])
    assert converted.predictions["x"].shape == (1, 40, 11)
    assert converted.predictions["x"].dims == ("chain", "draw", "data")


# -- bad input -------------------------------------------------------------------
def test_bad_results(conjugate_data):
    result, _, _ = exact_result("numpyro", conjugate_data, num_draws=10)
    with pytest.raises(TypeError, match="result must be an ArviZ result"):
        ppzoo.predict({"z": 1.0}, numpyro_conjugate, conjugate_data)
    prior = ppzoo.prior_predictive(numpyro_conjugate, conjugate_data, num_samples=5)
    with pytest.raises(ValueError, match="result has no posterior group"):
        ppzoo.predict(prior, numpyro_conjugate, conjugate_data)
    with pytest.raises(TypeError, match="model must be"):
        ppzoo.predict(result)
    with pytest.raises(ValueError, match=r"latent site\(s\) \['mu'\] are not in the result's posterior"):
        ppzoo.predict(result, numpyro_renamed, conjugate_data)
    with pytest.raises(ValueError, match="made by numpyro, but model is a pyro program"):
        ppzoo.predict(result, pyro_conjugate, conjugate_data)
    with pytest.raises(ValueError, match=r"observed_data holds \['x'\]"):
        ppzoo.predict(result, LINEAR_REGRESSION["numpyro"], conjugate_data[:, None])


def test_bad_options(conjugate_data):
    result, _, _ = exact_result("numpyro", conjugate_data, num_draws=10)
    for kwargs, error, pattern in [
        ({"chunk_size": 0}, ValueError, "chunk_size must be an integer >= 1"),
        ({"seed": -1}, ValueError, "seed must be an integer"),
        ({"memory_budget": 0}, ValueError, "memory_budget must be a number of bytes"),
        ({"new_data": "yes"}, TypeError, "new_data must be True, False or None"),
    ]:
        with pytest.raises(error, match=pattern):
            ppzoo.predict(result, numpyro_conjugate, conjugate_data, **kwargs)
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        ppzoo.prior_predictive(numpyro_conjugate, conjugate_data, num_samples=0)
    with pytest.raises(TypeError, match="num_samples must be an integer >= 1"):
        ppzoo.prior_predictive(numpyro_conjugate, conjugate_data, num_samples=2.5)
    with pytest.raises(ValueError, match="no observed site"):
        ppzoo.prior_predictive(LINEAR_REGRESSION["numpyro"], conjugate_data[:, None])


def test_local_latents_cannot_move_to_new_data():
    def model(x):
        z = numpyro.sample("z", nd.Normal(0.0, 1.0).expand([x.shape[0]]).to_event(1))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("x", nd.Normal(z, 1.0), obs=x)

    data = np.zeros(6, np.float32)
    result = arviz_compat.from_dict({"posterior": {"z": np.zeros((1, 4, 6))}, "observed_data": {"x": data}})
    with pytest.raises(ValueError, match=r"latent site 'z' has shape \(9,\) at these arguments"):
        ppzoo.predict(result, model, np.zeros(9, np.float32))


@pytest.mark.slow
def test_the_readme_example():
    """The README's "Posterior predictive checks" example, as written there but with a short run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ppzoo.data import load_breast_cancer

    def model(x, y=None):
        w = numpyro.sample("w", nd.Normal(0, 1).expand([x.shape[1]]).to_event(1))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("y", nd.Bernoulli(logits=x @ w), obs=y)

    x, y = load_breast_cancer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short run: the convergence report warns
        idata = ppzoo.sample(model, x, y=y, num_warmup=200, num_samples=50, num_chains=2, progress_bar=False)
    idata = ppzoo.predict(idata, model, x, y=y)
    assert idata.posterior_predictive["y"].shape == (2, 50, x.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant importance ratios on this data set (see the README)
        assert loo_pit(idata, "y").shape == (x.shape[0],)
    idata = ppzoo.predict(idata, model, x[:10])
    assert idata.predictions["y"].shape == (2, 50, 10)
    np.testing.assert_array_equal(idata.predictions_constant_data["x"].values, x[:10])
    prior = ppzoo.prior_predictive(model, x, y=y, num_samples=500)
    assert prior.prior["w"].shape == (1, 500, x.shape[1]) and prior.prior_predictive["y"].shape == (1, 500, x.shape[0])
    try:
        az.plot_ppc_dist(idata, backend="matplotlib") if arviz_compat.DATATREE else az.plot_ppc(idata)
    finally:
        plt.close("all")


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_a_fit_with_learned_parameters_predicts_with_its_fitted_values(backend):
    """The linear VAE's posterior predictive given the fit: ``x_n ~ N(W z_n + b, 1)`` at the
    guide's draws of ``z_n``, so its mean over draws is ``W E_q[z_n] + b`` (the fitted weights,
    not the initial ones) within 4 Monte Carlo standard errors (``sqrt((1 + |W|^2 var z) / S)``,
    bounded here by ``sqrt((1 + max row |W|^2 max var) / S)``). An ArviZ result of the same fit
    holds no weights, and is refused."""
    from ppzoo.models import vae

    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    model, guide = vae.programs(backend, decoder="linear", latent_dim=2, data_dim=4, noise_scale=1.0)
    fit = ppzoo.fit(model, guide, x, num_steps=200, seed=0, progress_bar=False, refine=False)
    draws = 400
    result = ppzoo.predict(fit, num_samples=draws, seed=1)
    predicted = np.asarray(arviz_compat.get_group(result, "posterior_predictive")["x"]).reshape(draws, 30, 4)
    z = np.asarray(arviz_compat.get_group(result, "posterior")["z"]).reshape(draws, 30, 2)
    if backend == "numpyro":
        w, b = np.asarray(fit.params["decoder$params"].weight), np.asarray(fit.params["decoder$params"].bias)
    else:
        w, b = fit.params["decoder$$$weight"], fit.params["decoder$$$bias"]
    expected = z.mean(0) @ w.T + b
    se = np.sqrt((1.0 + (w**2).sum(1).max() * z.var(0).max()) / draws)
    assert np.abs(predicted.mean(0) - expected).max() < 4 * se
    with pytest.raises(ValueError, match="learned parameters .*pass the Fit itself"):
        ppzoo.predict(fit.to_arviz(num_samples=20), model, x)
