"""How much per-datum log-likelihood a run stores, and computing it later with ppzoo.log_likelihood."""

import warnings

import numpy as np
import pytest
from conftest import LINEAR_REGRESSION

import ppzoo
from ppzoo import pointwise
from ppzoo.diagnostics import arviz_compat

RUN = dict(method="sgld", step_size=1e-4, adapt=False, num_warmup=50, num_samples=40, num_chains=2, thinning=1,
           batch_size=10, progress_bar=False, seed=4)


def draws(backend, regression_data, **options):
    x, y = regression_data
    if backend == "pyro":
        import torch

        x, y = torch.as_tensor(x), torch.as_tensor(y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = ppzoo.sample(LINEAR_REGRESSION[backend], x, y=y, **RUN, **options)
    return idata, (x, y), [w for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_above_the_budget_none_is_stored_and_it_can_be_computed_later(backend, regression_data, monkeypatch):
    whole, _, _ = draws(backend, regression_data, log_likelihood=True)
    monkeypatch.setattr(pointwise, "LOG_LIKELIHOOD_BUDGET", 2 * 40 * 60 - 1)  # C * S * N is one more
    idata, (x, y), warned = draws(backend, regression_data)
    assert not arviz_compat.has_group(idata, "log_likelihood")
    assert "lp" not in arviz_compat.get_group(idata, "sample_stats").data_vars
    assert len(warned) == 1 and "ppzoo.log_likelihood(idata, model" in str(warned[0].message)
    later = ppzoo.log_likelihood(idata, LINEAR_REGRESSION[backend], x, y=y, thin=2, chunk_size=7)
    expected = arviz_compat.get_group(whole, "log_likelihood")["y"].values[:, ::2]
    got = arviz_compat.get_group(later, "log_likelihood")["y"].values
    assert got.shape == (2, 20, 60)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    lp = arviz_compat.get_group(whole, "sample_stats")["lp"].values[:, ::2]
    np.testing.assert_allclose(arviz_compat.get_group(later, "sample_stats")["lp"].values, lp, rtol=1e-4)
    # posterior and stats thinned alike, so PSIS-LOO sees matching draws
    assert arviz_compat.get_group(later, "posterior").sizes["draw"] == 20
    import arviz as az

    loo = az.loo(later)
    assert np.isfinite(float(getattr(loo, "elpd_loo", None) or loo.elpd))


@pytest.mark.parametrize("choice, stored", [("all", True), ("none", False), (False, False)])
def test_explicit_choices(choice, stored, regression_data, monkeypatch):
    monkeypatch.setattr(pointwise, "LOG_LIKELIHOOD_BUDGET", 10)  # "all" ignores the budget
    idata, _, warned = draws("numpyro", regression_data, log_likelihood=choice)
    assert arviz_compat.has_group(idata, "log_likelihood") is stored and not warned


def test_later_needs_a_posterior_of_the_model(regression_data):
    x, y = regression_data
    idata, _, _ = draws("numpyro", regression_data, log_likelihood=False)
    other = arviz_compat.from_dict({"posterior": {"mu": np.zeros((2, 5))}})
    with pytest.raises(ValueError, match=r"idata's posterior has no \['b', 'sigma', 'w'\]"):
        ppzoo.log_likelihood(other, LINEAR_REGRESSION["numpyro"], x, y=y)
    with pytest.raises(ValueError, match="thin must be an integer >= 1, got 0"):
        ppzoo.log_likelihood(idata, LINEAR_REGRESSION["numpyro"], x, y=y, thin=0)
