"""Every run converts to a usable arviz.InferenceData."""

import arviz as az
import numpy as np
import pytest
from conftest import LINEAR_REGRESSION

import ppzoo


@pytest.fixture(scope="module", params=["numpyro", "pyro"])
def idata(request, regression_data):
    x, y = regression_data
    return ppzoo.sample(
        LINEAR_REGRESSION[request.param], x, y=y, num_warmup=2000, num_samples=200, thinning=5,
        num_chains=2, seed=3, progress_bar=False,
    )


def test_groups_dims_and_shapes(idata, regression_data):
    x, y = regression_data
    assert set(idata.groups()) >= {"posterior", "sample_stats", "log_likelihood", "observed_data"}
    post = idata.posterior
    assert post["w"].dims == ("chain", "draw", "w_dim_0") and post["w"].shape == (2, 200, 3)
    assert post["sigma"].shape == (2, 200) and float(post["sigma"].min()) > 0
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "data")
    assert idata.log_likelihood["y"].shape == (2, 200, 60)
    np.testing.assert_array_equal(idata.observed_data["y"].values, y)
    stats = idata.sample_stats
    assert set(stats.data_vars) >= {"step_size", "grad_evals", "diverging"}
    assert stats["diverging"].dtype == bool and not stats["diverging"].any()
    assert np.all(np.diff(stats["grad_evals"].values, axis=1) > 0)
    assert post.attrs["inference_library"] == "ppzoo" and post.attrs["method"] == "sgld"


def test_summary_and_loo(idata):
    summary = az.summary(idata, var_names=["w", "b", "sigma"])
    assert list(summary.index) == ["w[0]", "w[1]", "w[2]", "b", "sigma"]
    assert np.isfinite(summary[["mean", "sd", "ess_bulk", "r_hat"]].values).all()
    # the data were made with w = (1, -0.5, 0.25), b = 0.3
    assert abs(summary.loc["w[0]", "mean"] - 1.0) < 0.3
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo) and loo.n_data_points == 60


def test_netcdf_round_trip(idata, tmp_path):
    path = tmp_path / "run.nc"
    idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    np.testing.assert_array_equal(back.posterior["w"].values, idata.posterior["w"].values)
    np.testing.assert_array_equal(back.log_likelihood["y"].values, idata.log_likelihood["y"].values)
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
