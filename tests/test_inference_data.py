"""Every run converts to a usable ArviZ result of the installed line (DataTree or InferenceData)."""

import arviz as az
import numpy as np
import pytest
import xarray as xr
from conftest import LINEAR_REGRESSION

import ppzoo
from ppzoo.diagnostics import arviz_compat


def elpd_loo(loo):
    """The PSIS-LOO estimate of ``az.loo``'s result: ``elpd`` under ArviZ 1.x, ``elpd_loo`` under 0.23."""
    return float(loo.elpd) if arviz_compat.DATATREE else float(loo.elpd_loo)


@pytest.fixture(scope="module", params=["numpyro", "pyro"])
def idata(request, regression_data):
    x, y = regression_data
    return ppzoo.sample(
        LINEAR_REGRESSION[request.param], x, y=y, num_warmup=2000, num_samples=200, thinning=5,
        num_chains=2, seed=3, progress_bar=False,
    )


def test_result_is_the_installed_lines_object(idata):
    if arviz_compat.DATATREE:
        assert isinstance(idata, xr.DataTree) and int(az.__version__.split(".")[0]) >= 1
    else:
        assert isinstance(idata, az.InferenceData) and az.__version__.startswith("0.")


def test_groups_dims_and_shapes(idata, regression_data):
    x, y = regression_data
    assert set(arviz_compat.group_names(idata)) == {"posterior", "sample_stats", "log_likelihood", "observed_data"}
    post = idata.posterior
    assert post["w"].dims == ("chain", "draw", "w_dim_0") and post["w"].shape == (2, 200, 3)
    assert post["sigma"].shape == (2, 200) and float(post["sigma"].min()) > 0
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "data")
    assert idata.log_likelihood["y"].shape == (2, 200, 60)
    np.testing.assert_array_equal(idata.observed_data["y"].values, y)
    assert idata.observed_data["y"].dims == ("data",)
    stats = idata.sample_stats
    assert set(stats.data_vars) == {"step_size", "grad_evals", "diverging", "full_gradient", "lp"}
    assert stats["diverging"].dtype == bool and not stats["diverging"].any()
    assert np.all(np.diff(stats["grad_evals"].values, axis=1) > 0)
    for group in arviz_compat.group_names(idata):
        attrs = arviz_compat.get_group(idata, group).attrs
        assert attrs["inference_library"] == "ppzoo" and attrs["method"] == "sgld-cv" and attrs["data_plate"] == "data"


def test_lp_is_the_log_density_the_sampler_targets(idata, regression_data):
    """``lp`` = log prior + log|J| + the summed log-likelihood, recomputed here with SciPy."""
    from scipy import stats as sps

    x, y = regression_data
    post = idata.posterior
    w, b, sigma = (post[name].values.astype(np.float64) for name in ("w", "b", "sigma"))
    mean = np.einsum("nd,csd->csn", x, w) + b[..., None]
    loglik = sps.norm.logpdf(y, mean, sigma[..., None])
    log_prior = sps.norm.logpdf(w).sum(-1) + sps.norm.logpdf(b) + sps.halfnorm.logpdf(sigma)
    # sigma = exp(u): the unconstrained-space density gains log|d sigma / d u| = log sigma
    expected = log_prior + np.log(sigma) + loglik.sum(-1)
    np.testing.assert_allclose(idata.sample_stats["lp"].values, expected, rtol=2e-5, atol=2e-3)
    np.testing.assert_allclose(idata.log_likelihood["y"].values, loglik, rtol=2e-5, atol=2e-4)


def test_arviz_summary_loo_compare_and_ess_work_on_the_result(idata):
    summary = az.summary(idata, var_names=["w", "b", "sigma"])
    assert list(summary.index) == ["w[0]", "w[1]", "w[2]", "b", "sigma"]
    assert np.isfinite(summary[["mean", "sd", "ess_bulk", "r_hat"]].values.astype(float)).all()
    # the data were made with w = (1, -0.5, 0.25), b = 0.3
    assert abs(float(summary.loc["w[0]", "mean"]) - 1.0) < 0.3
    loo = az.loo(idata)
    assert np.isfinite(elpd_loo(loo)) and loo.n_data_points == 60
    ranked = az.compare({"run": idata, "same run": idata})
    assert list(ranked.index) == ["run", "same run"] or list(ranked.index) == ["same run", "run"]
    assert np.allclose(ranked["elpd_diff"].astype(float), 0.0)
    ess = az.ess(idata, var_names=["w"])
    assert ess["w"].shape == (3,) and np.all(np.asarray(ess["w"]) > 10)


def test_the_same_summary_columns_under_both_lines(idata):
    table = arviz_compat.summary(idata, var_names=["w", "sigma"])
    assert list(table.columns) == [
        "mean", "sd", "hdi94_lb", "hdi94_ub", "ess_bulk", "ess_tail", "r_hat", "mcse_mean", "mcse_sd"
    ]
    draws = idata.posterior["sigma"].values.ravel()
    assert table.loc["sigma", "mean"] == pytest.approx(draws.mean(), rel=1e-6)
    # a 94% interval holds about 94% of the draws (HDI: the narrowest such interval)
    inside = np.mean((draws >= table.loc["sigma", "hdi94_lb"]) & (draws <= table.loc["sigma", "hdi94_ub"]))
    assert 0.93 <= inside <= 0.95


def test_netcdf_round_trip(idata, tmp_path):
    path = tmp_path / "run.nc"
    arviz_compat.to_netcdf(idata, path)
    for back in (az.from_netcdf(str(path)), arviz_compat.from_netcdf(path)):
        np.testing.assert_array_equal(back.posterior["w"].values, idata.posterior["w"].values)
        np.testing.assert_array_equal(back.log_likelihood["y"].values, idata.log_likelihood["y"].values)
        assert back.sample_stats["diverging"].dtype == bool
        assert back.posterior.attrs["backend"] == idata.posterior.attrs["backend"]


def test_same_seed_same_draws(regression_data):
    x, y = regression_data
    kw = dict(step_size=1e-4, num_warmup=10, num_samples=20, num_chains=2, progress_bar=False, log_likelihood=False)
    a = ppzoo.sample(LINEAR_REGRESSION["numpyro"], x, y=y, seed=5, **kw).posterior["w"].values
    b = ppzoo.sample(LINEAR_REGRESSION["numpyro"], x, y=y, seed=5, **kw).posterior["w"].values
    c = ppzoo.sample(LINEAR_REGRESSION["numpyro"], x, y=y, seed=6, **kw).posterior["w"].values
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # each chain draws its own minibatches: chains started alike still differ
    assert not np.allclose(a[0], a[1])
