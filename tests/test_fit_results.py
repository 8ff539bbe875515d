"""What a fit hands back: reweighted draws (the IWAE posterior), per-datum k-hat, a saved fit.

Statistical checks compare a mean with the exact (or NUTS) value in units of
its Monte Carlo standard error: for ``S`` resampled draws from a pool whose
importance-sampling ESS is ``E``, ``MCSE(mean) = sd * sqrt(1/S + 1/E)`` and
``MCSE(sd) = sd * sqrt((1/S + 1/E) / 2)`` (the draws' own variance plus the
pool's). Seeds are fixed.
"""

import dataclasses
import json
import pathlib
import sys

import numpy as np
import numpyro
import numpyro.distributions as dist
import pyro
import pyro.distributions as pdist
import pytest
import torch
from conftest import GAUSSIAN_LOCATION, slow_for

import ppzoo
from ppzoo.diagnostics import arviz_compat
from ppzoo.diagnostics.svi import ImportanceSamplingWarning

BACKENDS = ["numpyro", "pyro"]
REFERENCES = pathlib.Path(__file__).resolve().parent / "references"
#: tolerance of the statistical checks, in Monte Carlo standard errors
Z = 4.0


def numpyro_location_guide(x):
    m = numpyro.param("m", 0.0)
    s = numpyro.param("s", 1.0, constraint=dist.constraints.positive)
    numpyro.sample("theta", dist.Normal(m, s))


def pyro_location_guide(x):
    m = pyro.param("m", torch.tensor(0.0))
    s = pyro.param("s", torch.tensor(1.0), constraint=pdist.constraints.positive)
    pyro.sample("theta", pdist.Normal(m, s))


LOCATION_GUIDE = {"numpyro": numpyro_location_guide, "pyro": pyro_location_guide}


def numpyro_local_model(x):
    """z_i ~ N(0, 1), x_i ~ N(z_i, 1): p(z_i | x_i) = N(x_i / 2, 1/2), every latent per datum."""
    with numpyro.plate("data", x.shape[0]):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.sample("x", dist.Normal(z, 1.0), obs=x)


def numpyro_local_guide(x):
    """An amortised guide q(z_i | x_i) = N(a x_i + c, s)."""
    a, c = numpyro.param("a", 0.5), numpyro.param("c", 0.0)
    s = numpyro.param("s", 1.0, constraint=dist.constraints.positive)
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("z", dist.Normal(a * x + c, s))


@pytest.fixture(scope="module")
def location_data():
    return np.random.default_rng(1).normal(0.7, 1.0, size=20).astype(np.float32)


def exact_location_posterior(x):
    n = len(x)
    return x.sum() / (n + 1), (1.0 / (n + 1)) ** 0.5


def set_params(fit, **params):
    return dataclasses.replace(fit, params={k: np.float32(v) for k, v in params.items()})


def mcse(sd, num_samples, ess):
    """``(MCSE of the mean, MCSE of the sd)`` of ``num_samples`` draws resampled from a pool of ESS
    ``ess``."""
    spread = 1 / num_samples + 1 / ess
    return sd * np.sqrt(spread), sd * np.sqrt(spread / 2)


def iwae_fit(backend, data, guide, model=None, steps=2):
    model = model or GAUSSIAN_LOCATION[backend]
    return ppzoo.fit(
        model, guide, data, objective="iwae", num_particles=4, num_steps=steps, progress_bar=False
    )


# -- the IWAE posterior ---------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_reweighted_draws_are_the_exact_posterior_of_a_too_wide_guide(backend, location_data):
    """A guide 3 times too wide and 0.5 sd off: its own draws are far from the posterior, the
    reweighted ones within 4 MCSE of the exact mean and sd."""
    mean, sd = exact_location_posterior(location_data)
    fit = set_params(
        iwae_fit(backend, location_data, LOCATION_GUIDE[backend]), m=mean + 0.5 * sd, s=3 * sd
    )
    num_samples = 1000
    idata = fit.to_arviz(num_samples=num_samples, seed=1)
    attrs = arviz_compat.get_group(idata, "posterior").attrs
    assert attrs["draws"] == "reweighted" and attrs["reweighting"] == "joint"
    assert attrs["pool_size"] == 10 * num_samples
    assert "resampled" in attrs["draws_note"]
    assert attrs["psis_khat"] < 0.5 and json.loads(attrs["psis"])["groups"] == 1
    theta = idata.posterior["theta"].values.ravel().astype(np.float64)
    se_mean, se_sd = mcse(sd, num_samples, attrs["importance_ess"])
    assert abs(theta.mean() - mean) < Z * se_mean, (theta.mean(), mean, se_mean)
    assert abs(theta.std() - sd) < Z * se_sd, (theta.std(), sd, se_sd)
    assert idata.sample_stats["log_weight"].shape == (1, num_samples)

    guide = fit.to_arviz(num_samples=num_samples, seed=1, draws="guide")
    attrs = arviz_compat.get_group(guide, "posterior").attrs
    assert attrs["draws"] == "guide" and "proposal" in attrs["draws_note"]
    raw = guide.posterior["theta"].values.ravel()
    assert raw.std() > 2.5 * sd  # the guide's own draws: what the reweighting corrected
    assert guide.sample_stats["log_weight"].shape == (1, num_samples)


def test_the_elbo_gives_guide_draws_and_reweights_when_asked(location_data):
    mean, sd = exact_location_posterior(location_data)
    fit = ppzoo.fit(
        GAUSSIAN_LOCATION["numpyro"],
        numpyro_location_guide,
        location_data,
        num_steps=2,
        progress_bar=False,
    )
    fit = set_params(fit, m=mean, s=2 * sd)
    attrs = arviz_compat.get_group(fit.to_arviz(num_samples=100), "posterior").attrs
    assert (
        attrs["draws"] == "guide"
        and "approximation" in attrs["draws_note"]
        and "reweighting" not in attrs
    )
    reweighted = fit.to_arviz(num_samples=1000, draws="reweighted", pool_size=5000)
    attrs = arviz_compat.get_group(reweighted, "posterior").attrs
    assert attrs["draws"] == "reweighted" and attrs["pool_size"] == 5000
    se_mean, se_sd = mcse(sd, 1000, attrs["importance_ess"])
    assert abs(reweighted.posterior["theta"].values.std() - sd) < Z * se_sd


def test_an_underdispersed_guide_warns_when_reweighted(location_data):
    mean, sd = exact_location_posterior(location_data)
    fit = set_params(
        iwae_fit("numpyro", location_data, numpyro_location_guide), m=mean, s=0.15 * sd
    )
    with pytest.warns(ImportanceSamplingWarning, match=r"PSIS k-hat \d\.\d+, .* \(above 0.7"):
        idata = fit.to_arviz(num_samples=200)
    assert arviz_compat.get_group(idata, "posterior").attrs["psis_khat"] > 0.7


@pytest.mark.parametrize(
    "options, error, message",
    [
        (
            {"draws": "posterior"},
            ValueError,
            r"draws must be one of \('reweighted', 'guide'\).*got 'posterior'",
        ),
        ({"draws": True}, ValueError, "draws must be one of"),
        ({"pool_size": 50}, ValueError, "pool_size must be an integer >= 100, got 50"),
    ],
)
def test_to_arviz_names_a_bad_draws_argument(location_data, options, error, message):
    fit = iwae_fit("numpyro", location_data, numpyro_location_guide)
    with pytest.raises(error, match=message):
        fit.to_arviz(num_samples=100, **options)


# -- per datum --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_fit():
    x = np.random.default_rng(2).normal(0.0, 1.5, size=40).astype(np.float32)
    fit = iwae_fit("numpyro", x, numpyro_local_guide, model=numpyro_local_model)
    return x, set_params(fit, a=0.3, c=0.2, s=1.5)  # exact: a = 1/2, c = 0, s = sqrt(1/2)


def test_khat_is_per_datum_for_an_amortised_model(local_fit):
    x, fit = local_fit
    khat = fit.psis_khat(num_samples=200)
    assert khat.dims == ("data",) and khat.shape == (len(x),) and khat.name == "khat"
    assert np.all(np.isfinite(khat.values)) and float(khat.max()) < 0.7
    joint = fit.psis_khat(num_samples=200, per_datum=False)
    assert (
        isinstance(joint, float) and joint > 0.7
    )  # 40 ratios multiplied: the tail of their product


def test_per_datum_reweighting_gives_each_datum_its_exact_posterior(local_fit):
    x, fit = local_fit
    num_samples = 1000
    idata = fit.to_arviz(num_samples=num_samples, seed=2)
    attrs = arviz_compat.get_group(idata, "posterior").attrs
    summary = json.loads(attrs["psis"])
    assert attrs["reweighting"] == "per_datum" and summary["groups"] == len(x)
    assert (
        summary["share_above_0.7"] == 0.0
        and summary["khat_q50"] <= summary["khat_q90"] <= summary["khat_max"]
    )
    z = idata.posterior["z"].values[0].astype(np.float64)  # (S, N)
    sd = 0.5**0.5
    se_mean, se_sd = mcse(sd, num_samples, summary["ess_min"])
    assert np.all(np.abs(z.mean(axis=0) - x / 2) < Z * se_mean), (
        np.abs(z.mean(axis=0) - x / 2).max() / se_mean
    )
    assert np.all(np.abs(z.std(axis=0) - sd) < Z * se_sd), np.abs(z.std(axis=0) - sd).max() / se_sd
    # each datum's log-likelihood is that of its own resampled z_i
    loglik = idata.log_likelihood["x"].values[0]
    np.testing.assert_allclose(
        loglik, -0.5 * (x - z) ** 2 - 0.5 * np.log(2 * np.pi), rtol=1e-4, atol=1e-4
    )


def test_per_datum_khat_needs_per_datum_latents(location_data):
    fit = iwae_fit("numpyro", location_data, numpyro_location_guide)
    assert isinstance(fit.psis_khat(num_samples=100), float)
    with pytest.raises(
        ValueError,
        match=r"per_datum=True needs a model whose latents are all per datum; \['theta'\]",
    ):
        fit.psis_khat(num_samples=100, per_datum=True)


def test_ppzoo_summary_prints_the_khat_distribution(local_fit, tmp_path, capsys):
    from ppzoo.cli import main

    _, fit = local_fit
    arviz_compat.to_netcdf(fit.to_arviz(num_samples=100), tmp_path / "fit.nc")
    assert main(["summary", str(tmp_path / "fit.nc")]) == 0
    out = capsys.readouterr().out
    assert "draws (reweighted)" in out
    assert "PSIS k-hat per datum over 40 data: median" in out and "% above 0.7" in out
    assert "convergence (1 chains)" not in out  # chain diagnostics say nothing of guide draws


# -- the Poisson GLM against NUTS ------------------------------------------------------------
@pytest.mark.slow
def test_iwae_dreg_poisson_glm_matches_nuts():
    """IWAE, K = 20, DReG, AutoMultivariateNormal, 2,000 steps: the guide ends up to 11 times too
    wide (measured: w[2]'s sd 11x NUTS's, its mean 7 sd off); the reweighted draws are within 0.1
    posterior sd of NUTS's means and 10% of its sds (measured: 0.03 sd and 3%), more than 5 Monte
    Carlo    standard errors of 4,000 draws from a pool of ESS over 2,900 (0.02 sd and 1.4%)."""
    from numpyro.infer.autoguide import AutoMultivariateNormal

    sys.path.insert(0, str(REFERENCES.parents[1] / "benchmarks"))
    from programs import poisson_regression as program

    reference = json.loads((REFERENCES / "poisson_regression.json").read_text())["params"]
    (x,), data = program.data()
    fit = ppzoo.fit(
        program.model,
        AutoMultivariateNormal(program.model),
        x,
        objective="iwae",
        num_particles=20,
        estimator="dreg",
        num_steps=2000,
        progress_bar=False,
        **data,
    )
    coordinates = lambda idata: {  # noqa: E731
        "b0": idata.posterior["b0"].values.ravel(),
        **{f"w[{i}]": idata.posterior["w"].values[0, :, i] for i in range(4)},
    }
    guide = coordinates(fit.to_arviz(num_samples=4000, draws="guide"))
    assert (
        max(v.std() / reference[k]["sd"] for k, v in guide.items()) > 2
    )  # the case reweighting is for
    idata = fit.to_arviz(num_samples=4000)
    attrs = arviz_compat.get_group(idata, "posterior").attrs
    assert attrs["draws"] == "reweighted" and attrs["psis_khat"] < 0.7
    for name, values in coordinates(idata).items():
        ref = reference[name]
        assert abs(values.mean() - ref["mean"]) < 0.1 * ref["sd"], (name, values.mean(), ref)
        assert abs(values.std() / ref["sd"] - 1) < 0.1, (name, values.std(), ref)


# -- saving and loading ------------------------------------------------------------------------
class Encoder(torch.nn.Module):
    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Linear(1, 2)

    def forward(self, x):
        out = self.net(x[..., None])
        return out[..., 0], torch.nn.functional.softplus(out[..., 1]) + 1e-3


def pyro_local_model(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", pdist.Normal(0.0, 1.0))
        pyro.sample("x", pdist.Normal(z, 1.0), obs=x)


def pyro_programs(seed):
    encoder = Encoder(seed)

    def guide(x):
        pyro.module("encoder", encoder)
        shift = pyro.param("shift", torch.tensor(0.0))
        loc, scale = encoder(x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", pdist.Normal(loc + shift, scale))

    return pyro_local_model, guide


@pytest.mark.parametrize("backend", slow_for(BACKENDS, lambda b: b == "numpyro"))
def test_a_saved_fit_loads_and_draws_the_same(backend, tmp_path):
    """NumPyro: AutoNormal; Pyro: an amortised guide with a ``pyro.module`` network. The loaded fit,
    given programs whose network starts from other weights, draws exactly what the fit drew."""
    x = np.random.default_rng(3).normal(0.0, 1.5, size=25).astype(np.float32)
    if backend == "numpyro":
        from numpyro.infer.autoguide import AutoNormal

        programs = lambda seed: (numpyro_local_model, AutoNormal(numpyro_local_model))  # noqa: E731
    else:
        programs = pyro_programs
    fit = ppzoo.fit(
        *programs(0),
        x,
        objective="iwae",
        num_particles=3,
        estimator="dreg",
        num_steps=100,
        progress_bar=False,
    )
    fit.save(tmp_path / "fit.npz")
    loaded = ppzoo.load_fit(tmp_path / "fit.npz", *programs(1), x)
    assert loaded.backend == backend and repr(loaded.objective) == repr(fit.objective)
    np.testing.assert_array_equal(loaded.losses, fit.losses)
    for f in dataclasses.fields(fit):
        if not f.name.startswith("_") and f.name not in {
            "model",
            "guide",
            "params",
            "losses",
            "objective",
        }:
            assert getattr(loaded, f.name) == getattr(fit, f.name), f.name
    assert sorted(loaded.params) == sorted(fit.params)
    for name in fit.params:
        np.testing.assert_array_equal(np.asarray(loaded.params[name]), np.asarray(fit.params[name]))
    before, after = fit.to_arviz(num_samples=40, seed=5), loaded.to_arviz(num_samples=40, seed=5)
    np.testing.assert_array_equal(after.posterior["z"].values, before.posterior["z"].values)
    np.testing.assert_array_equal(
        after.sample_stats["log_weight"].values, before.sample_stats["log_weight"].values
    )


@pytest.mark.slow
def test_an_equinox_vae_round_trips(tmp_path):
    """NumPyro parameters that are pytrees (``eqx_module`` weights), rebuilt on the programs'
    structure."""
    from ppzoo.models.vae import numpyro_vae

    x = (np.random.default_rng(4).uniform(size=(30, 6)) > 0.5).astype(np.float32)
    fit = ppzoo.fit(
        *numpyro_vae(6, latent_dim=2, hidden=(4,)),
        x,
        objective="iwae",
        num_particles=2,
        num_steps=10,
        progress_bar=False,
    )
    fit.save(tmp_path / "vae.npz")
    loaded = ppzoo.load_fit(
        tmp_path / "vae.npz", *numpyro_vae(6, latent_dim=2, hidden=(4,), seed=7), x
    )
    np.testing.assert_array_equal(
        loaded.to_arviz(num_samples=30, seed=1).posterior["z"].values,
        fit.to_arviz(num_samples=30, seed=1).posterior["z"].values,
    )


def test_load_fit_names_what_is_wrong(location_data, tmp_path):
    fit = iwae_fit("numpyro", location_data, numpyro_location_guide)
    fit.save(tmp_path / "fit.npz")
    (tmp_path / "notes.txt").write_text("not a fit")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    model = GAUSSIAN_LOCATION["numpyro"]
    with pytest.raises(ValueError, match="notes.txt: not a fit saved by Fit.save"):
        ppzoo.load_fit(tmp_path / "notes.txt", model, numpyro_location_guide, location_data)
    with pytest.raises(ValueError, match="other.npz: not a fit saved by Fit.save"):
        ppzoo.load_fit(tmp_path / "other.npz", model, numpyro_location_guide, location_data)
    with pytest.raises(ValueError, match="missing.npz: no such file"):
        ppzoo.load_fit(tmp_path / "missing.npz", model, numpyro_location_guide, location_data)
    with pytest.raises(ValueError, match="holds a numpyro fit, but the model is a pyro program"):
        ppzoo.load_fit(
            tmp_path / "fit.npz",
            GAUSSIAN_LOCATION["pyro"],
            pyro_location_guide,
            torch.as_tensor(location_data),
        )

    def renamed_guide(x):
        loc = numpyro.param("loc", 0.0)
        s = numpyro.param("s", 1.0, constraint=dist.constraints.positive)
        numpyro.sample("theta", dist.Normal(loc, s))

    with pytest.raises(
        ValueError,
        match=r"saved but not declared by the programs: \['m'\]; declared by the "
        r"programs but not saved: \['loc'\]",
    ):
        ppzoo.load_fit(tmp_path / "fit.npz", model, renamed_guide, location_data)
    with pytest.warns(UserWarning, match="the data given to load_fit differ"):
        ppzoo.load_fit(tmp_path / "fit.npz", model, numpyro_location_guide, location_data + 1)


def test_a_pyro_constraint_that_changed_is_refused(location_data, tmp_path):
    data = torch.as_tensor(location_data)
    fit = iwae_fit("pyro", data, pyro_location_guide)
    fit.save(tmp_path / "fit.npz")

    def guide(x):
        m = pyro.param("m", torch.tensor(0.0))
        s = pyro.param("s", torch.tensor(1.0), constraint=pdist.constraints.greater_than(0.01))
        pyro.sample("theta", pdist.Normal(m, s))

    with pytest.raises(
        ValueError,
        match=r"constraints differ from the saved fit's: 's': saved "
        r"GreaterThan\(lower_bound=0.0\), the programs declare GreaterThan\(lower_bound=0.01\)",
    ):
        ppzoo.load_fit(tmp_path / "fit.npz", GAUSSIAN_LOCATION["pyro"], guide, data)
