"""Every zoo entry, on both backends, against its stored reference posterior.

Each sampled entry is run as ``ppzoo run NAME --backend B`` runs it with no
other flags (the entry's ``ModelSpec.sampler_defaults``, 4 chains, seed 0,
warmup adaptation), on both backends: the run's own convergence report must
be clean (no ``ConvergenceWarning``), posterior means must lie within
``tolerance[0]`` reference posterior sds of the reference means and sds
within a factor ``1 +- tolerance[1]`` of the reference sds. The tolerances
include the run's own Monte Carlo error: with ``S`` effective draws a mean is
off by about ``sd / sqrt(S)`` (0.1 sd at S = 100) and an sd by about a
fraction ``1 / sqrt(2 S)`` of itself (0.07 at S = 100), plus the step-size
bias of Langevin dynamics.

What is compared is what ``ModelSpec.summarize`` reports: the parameters,
or the quantities a user reads where the entry names them
(``ModelSpec.derived``: the neural network's regression function at fixed
inputs, probabilistic PCA's ``W W'``, whose loadings are identified only up
to the entry's constraints).
"""

import dataclasses
import warnings

import numpy as np
import pytest
from conftest import slow_for
from ppzoo.models import bnn_regression, probabilistic_pca

from ppzoo import cli, models
from ppzoo.diagnostics import arviz_compat
from ppzoo.diagnostics.convergence import ConvergenceWarning

ENTRIES = models.list_models(kind="sampled")


def test_every_entry_has_a_reference_and_a_description():
    assert len(ENTRIES) >= 5
    for name in ENTRIES:
        spec = models.get(name)
        assert spec.name == name and spec.description
        params = spec.reference.params
        assert params and all({"mean", "sd"} <= set(v) for v in params.values()), name


@pytest.mark.slow
def test_the_catalog_that_ppzoo_list_reads_is_up_to_date():
    import json

    from ppzoo.models import registry

    assert json.loads(registry.CATALOG.read_text()) == registry.catalog(), (
        "models/references/catalog.json is out of date: python models/references/make_catalog.py"
    )


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="known models: beta_vae, bl_vae, bnn_regression, eight_schools, "):
        models.get("no_such_model")


def test_an_entry_without_a_reference_file_fails():
    spec = dataclasses.replace(models.get("eight_schools"), name="no_such_entry")
    with pytest.raises(FileNotFoundError, match="make_references.py no_such_entry"):
        _ = spec.reference


def _random_draws(spec, seed=0, chains=2, draws=3):
    """Draws ``(chain, draw, ...)`` of every latent site from the NumPyro program's prior."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import Predictive

    args, kwargs = spec.load_data()
    args = [jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
    kwargs = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    prior = Predictive(spec.numpyro_model, num_samples=chains * draws)(jax.random.PRNGKey(seed), *args, **kwargs)
    observed = {"y", "x"}
    return {k: np.asarray(v).reshape((chains, draws) + v.shape[1:]) for k, v in prior.items() if k not in observed}


def test_bnn_parameters_are_identifiable_and_its_quantities_are_f_and_sigma():
    """Positive slopes and ordered kinks: every prior draw has them, and the compared quantities are
    the regression function at the fixed inputs and the noise scale."""
    spec = models.get("bnn_regression")
    draws = _random_draws(spec, draws=50)
    assert np.all(draws["a"] > 0) and np.all(np.diff(draws["c"], axis=-1) > 0)
    got = spec.quantities(draws)
    assert set(got) == {"f", "sigma"} and got["f"].shape == (2, 50, len(bnn_regression.X_STAR))


def test_bnn_predict_is_the_network_forward_pass():
    """``f(x) = sum_h w2_h tanh(a_h (x - c_h)) + b2`` is ``tanh(x W1 + b1) . w2 + b2`` with ``W1 = a``, ``b1 = -a c``."""
    draws = {"a": np.array([1.0, 2.0]), "c": np.array([-0.5, 0.25]), "w2": np.array([3.0, 1.0]), "b2": np.array(-1.0)}
    x = np.array([[0.0], [1.0], [-2.0]])
    w1, b1 = draws["a"][None, :], -draws["a"] * draws["c"]
    expected = np.tanh(x @ w1 + b1) @ draws["w2"] + draws["b2"]
    np.testing.assert_allclose(bnn_regression.predict(draws, x), expected)
    with pytest.raises(ValueError, match="x_star"):
        bnn_regression.predict(draws, np.zeros(3))


def test_ppca_loadings_are_lower_trapezoidal_and_give_w_wt():
    spec = models.get("probabilistic_pca")
    draws = _random_draws(spec)
    dim = draws["mu"].shape[-1]
    w = probabilistic_pca.loadings(draws, dim)
    assert w.shape == (2, 3, dim, probabilistic_pca.COMPONENTS)
    assert np.all(np.triu(w[0, 0], 1) == 0) and np.all(np.diagonal(w, axis1=-2, axis2=-1) >= 0)
    wwt = spec.quantities(draws)["WWt"]
    np.testing.assert_allclose(wwt, w @ np.swapaxes(w, -1, -2))
    # W W' is what the likelihood sees: rotating the loadings changes nothing
    angle = 0.7
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    np.testing.assert_allclose((w @ rot) @ np.swapaxes(w @ rot, -1, -2), wwt, atol=1e-12)


def test_quantities_accept_inference_data_datasets_and_dicts():
    import arviz as az

    spec = models.get("gaussian_mixture")
    draws = _random_draws(spec)
    # each ArviZ line's own from_dict, as its users call it
    idata = az.from_dict({"posterior": draws}) if arviz_compat.DATATREE else az.from_dict(posterior=draws)
    for posterior in (draws, idata, idata.posterior):
        got = spec.quantities(posterior)
        assert set(got) == set(draws) and all(got[k].shape == draws[k].shape for k in draws)
    assert list(spec.summarize(draws, kind="stats").index)[0] == "locs[0]"


def test_quantities_reject_bad_posteriors():
    spec = models.get("probabilistic_pca")
    with pytest.raises(TypeError, match="posterior must be"):
        spec.quantities([1.0, 2.0])
    with pytest.raises(ValueError, match="posterior is empty"):
        spec.quantities({})
    with pytest.raises(ValueError, match=r"posterior\['sigma'\].*\(chain, draw\)"):
        spec.quantities({"sigma": np.ones(3)})
    with pytest.raises(ValueError, match="disagree"):
        spec.quantities({"sigma": np.ones((2, 3)), "mu": np.ones((2, 4, 4))})
    broken = dataclasses.replace(spec, derived=lambda draws: {"x": np.ones(5)})
    with pytest.raises(ValueError, match="leading \\(chain, draw\\) dims"):
        broken.quantities({"sigma": np.ones((2, 3))})
    broken = dataclasses.replace(spec, derived=lambda draws: None)
    with pytest.raises(TypeError, match="derived of entry 'probabilistic_pca'"):
        broken.quantities({"sigma": np.ones((2, 3))})


#: the cases of the default run (each about as costly as a case of the old default run); every
#: case runs under `pytest -m slow`
QUICK = {("logistic_regression", "numpyro")}
def _entry_cases():
    """Every (entry, backend): QUICK in the default run, the rest under `pytest -m slow`."""
    return slow_for([(n, b) for n in ENTRIES for b in ("numpyro", "pyro")], lambda case: case not in QUICK)


@pytest.mark.parametrize("name, backend", _entry_cases())
def test_entry_matches_its_reference(name, backend, tmp_path, monkeypatch):
    """``ppzoo run NAME --backend B`` with the entry's own defaults (what a user gets with no flags:
    4 chains, seed 0, warmup adaptation) ends cleanly, with no ``ConvergenceWarning``, and its draws
    match the entry's reference within ``spec.tolerance``."""
    spec = models.get(name)
    reference = spec.reference.params  # an entry without a reference fails here, before sampling
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run.nc"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # the run's own report must be clean
        code = cli.main(["run", name, "--backend", backend, "--no-progress", "--no-predictive", "--out", str(out)])
    assert code == 0, f"ppzoo run {name} --backend {backend} exited with status {code}"
    idata = arviz_compat.from_netcdf(str(out))
    summary = spec.summarize(idata, kind="stats")
    assert set(summary.index) == set(reference), "the run and the reference name different quantities"
    mean_tol, sd_tol = spec.tolerance
    ref_mean = np.array([reference[k]["mean"] for k in summary.index])
    ref_sd = np.array([reference[k]["sd"] for k in summary.index])
    z = np.abs(summary["mean"].to_numpy() - ref_mean) / ref_sd
    ratio = summary["sd"].to_numpy() / ref_sd
    worst = summary.index[int(np.argmax(z))]
    assert z.max() < mean_tol, f"{name} ({backend}): {worst} is {z.max():.2f} sd off"
    assert np.all(np.abs(ratio - 1) < sd_tol), f"{name} ({backend}): sd ratios {dict(zip(summary.index, ratio.round(2)))}"
