"""``ppzoo fit``, the one registry behind ``ppzoo list`` / ``run`` / ``fit``, and what ``summary`` and
``plot`` make of fit results and posterior predictives."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import slow_for

from ppzoo import models
from ppzoo.diagnostics import arviz_compat

PPZOO = shutil.which("ppzoo")


def run(*args, cwd):
    cmd = [PPZOO] if PPZOO else [sys.executable, "-m", "ppzoo.cli"]
    return subprocess.run(cmd + list(args), cwd=cwd, capture_output=True, text=True, timeout=900)


def _is_real_png(path):
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    return image.shape[0] > 100 and image.shape[1] > 100 and image[..., :3].std() > 0.01


def test_one_registry_holds_both_kinds_and_the_catalog_names_each_module():
    names = models.list_models()
    assert set(models.list_models(kind="sampled")) | set(models.list_models(kind="deep")) == set(names)
    assert {"linear_regression", "vae", "il_vae", "linear_vae"} <= set(names)
    rows = json.loads(models.registry.CATALOG.read_text())
    assert [row["name"] for row in rows] == names
    for row in rows:
        spec = models.get(row["name"])
        assert spec.kind == row["kind"] and row["module"] in models.registry.entry_modules()
    for name in models.list_models(kind="deep"):  # made by make_references.py: a fit with the defaults
        nll = models.get(name).reference.params["test_nll_per_datum"]
        assert np.isfinite(nll["mean"]) and 0 < nll["se"] < 0.05, name
        if name != "linear_vae":  # a Bernoulli likelihood: nats per binarised 8x8 digit (a density's can be < 0)
            assert 15 < nll["mean"] < 40, name
    with pytest.raises(ValueError, match="kind must be one of"):
        models.list_models(kind="classic")


def test_a_new_entry_module_is_found_without_editing_the_registry(tmp_path, monkeypatch):
    """``discover`` reads every module of ``ppzoo.models``: one more file is one more entry (here in a
    folder added to the package's path, so that the installed folder is left alone)."""
    import importlib

    import ppzoo.models
    from ppzoo.models import registry

    (tmp_path / "zz_new_entry_for_test.py").write_text(
        "from ppzoo.models import linear_regression as lr\n"
        "from .registry import ModelSpec\n"
        "SPEC = ModelSpec(name='zz_new_entry_for_test', description='a test entry', load_data=lr.load_data,\n"
        "                 data='diabetes', numpyro_model=lr.numpyro_model, pyro_model=lr.pyro_model)\n"
    )
    monkeypatch.setattr(ppzoo.models, "__path__", [*ppzoo.models.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_DISCOVERED", None)
    importlib.invalidate_caches()
    try:
        assert "zz_new_entry_for_test" in registry.entry_modules()
        assert "zz_new_entry_for_test" in registry.list_models(kind="sampled")
        assert registry.get("zz_new_entry_for_test").description == "a test entry"
    finally:
        sys.modules.pop("ppzoo.models.zz_new_entry_for_test", None)
    monkeypatch.undo()
    registry._DISCOVERED = None
    assert "zz_new_entry_for_test" not in registry.list_models()


def test_a_spec_must_be_one_kind():
    load = models.get("linear_regression").load_data
    with pytest.raises(ValueError, match="give numpyro_model and pyro_model .* or programs"):
        models.ModelSpec(name="both", description="", load_data=load, data="", numpyro_model=print,
                         pyro_model=print, programs=print)
    with pytest.raises(ValueError, match="give numpyro_model and pyro_model"):
        models.ModelSpec(name="half", description="", load_data=load, data="", numpyro_model=print)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_observed_and_encoder_means_are_the_fitted_networks(backend):
    """``Fit.observed_means`` of the linear VAE is its decoder's affine map at the given codes, and
    ``Fit.encoder_means`` its encoder's: checked against the fitted weights themselves."""
    from ppzoo.models import vae

    import ppzoo

    x = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    model, guide = vae.programs(backend, decoder="linear", latent_dim=2, data_dim=5, noise_scale=1.0)
    fit = ppzoo.fit(model, guide, x, num_steps=20, seed=0, progress_bar=False, refine=False)
    if backend == "numpyro":
        dec, enc = fit.params["decoder$params"], fit.params["encoder$params"]
        (w, b), (we, be) = (np.asarray(dec.weight), np.asarray(dec.bias)), (np.asarray(enc.weight), np.asarray(enc.bias))
    else:
        w, b = fit.params["decoder$$$weight"], fit.params["decoder$$$bias"]
        we, be = fit.params["encoder$$$weight"], fit.params["encoder$$$bias"]
    z = np.random.default_rng(1).normal(size=(7, 2)).astype(np.float32)
    np.testing.assert_allclose(fit.observed_means({"z": z}, x[:7])["x"], z @ w.T + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fit.encoder_means(x[:7]), x[:7] @ we.T + be, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="latents must be a non-empty dict"):
        fit.observed_means(z)


def test_fit_of_a_sampled_entry_writes_a_result_summary_reads(tmp_path):
    out = run("fit", "linear_regression", "--guide", "mvn", "--num-steps", "300", "--learning-rate", "0.05",
              "--num-draws", "200", "--no-progress", "--out", "lr.nc", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "independent draws of a fit, not chains" in out.stdout and "w[9]" in out.stdout
    result = arviz_compat.from_netcdf(tmp_path / "lr.nc")
    posterior = arviz_compat.get_group(result, "posterior")
    assert posterior["w"].shape == (1, 200, 10)
    assert posterior.attrs["zoo_entry"] == "linear_regression" and posterior.attrs["num_steps"] == 300
    summary = run("summary", "lr.nc", cwd=tmp_path)
    assert summary.returncode == 0 and "PSIS k-hat" in summary.stdout and "r_hat" not in summary.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "vae", "--guide", "mvn"], "--guide: 'vae' is a deep entry, whose guide is its own encoder"),
        (["fit", "linear_regression", "--decoder", "mlp"], "--decoder: 'linear_regression' is a sampled entry"),
        (["fit", "vae", "--constant", "2"], "--constant is the inverse_lipschitz decoder's constant"),
        (["fit", "vae", "--estimator", "dreg"], "--estimator dreg is an estimator of the IWAE bound's gradient"),
        (["fit", "beta_vae", "--objective", "iwae"], "kl_anneal anneals the ELBO's KL term"),
        (["fit", "nope"], "unknown model 'nope'; known models: beta_vae, bl_vae,"),
        (["fit", "vae", "--guide", "flow"], "invalid choice: 'flow'"),
        (["run", "vae"], "model 'vae' is a deep entry: its networks are fitted, not sampled; ppzoo fit vae fits it"),
    ],
)
def test_bad_fit_options_exit_with_one_line(tmp_path, args, message):
    out = run(*args, "--no-progress", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: True))
def test_fit_of_a_deep_entry_reports_collapse_and_draws_image_grids(tmp_path, backend):
    out = run("fit", "il_vae", "--backend", backend, "--num-steps", "30", "--latent-dim", "2", "--constant", "2",
              "--kl-anneal", "10", "--num-draws", "40", "--no-progress", "--out", "vae.nc", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "latent dimensions active" in out.stdout and "KL to the prior per latent dimension" in out.stdout
    assert "not tabulated" in out.stdout and "PSIS k-hat per datum over 1,500 data" in out.stdout
    result = arviz_compat.from_netcdf(tmp_path / "vae.nc")
    images = arviz_compat.get_group(result, "images")
    assert images["reconstruction"].shape == images["sample"].shape == images["data"].shape == (16, 8, 8)
    pixels = images["reconstruction"].values
    assert np.all((pixels >= 0) & (pixels <= 1)) and pixels.std() > 0  # Bernoulli means, not draws
    assert arviz_compat.get_group(result, "collapse")["kl"].shape == (2,)
    summary = run("summary", "vae.nc", cwd=tmp_path)
    assert summary.returncode == 0 and "latent dimensions active" in summary.stdout
    for kind in ("images", "collapse"):
        drawn = run("plot", "vae.nc", "--kind", kind, "--out", f"{kind}.png", cwd=tmp_path)
        assert drawn.returncode == 0, drawn.stderr
        assert _is_real_png(tmp_path / f"{kind}.png")


def test_run_adds_the_posterior_predictive_and_plot_draws_the_check(tmp_path):
    common = ["run", "eight_schools", "--num-samples", "40", "--num-warmup", "100", "--thinning", "1", "--num-chains", "2",
              "--no-progress"]
    out = run(*common, "--out", "with.nc", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = arviz_compat.from_netcdf(tmp_path / "with.nc")
    predictive = arviz_compat.get_group(result, "posterior_predictive")
    observed = arviz_compat.get_group(result, "observed_data")
    assert predictive["y"].shape == (2, 40, 8) and observed["y"].shape == (8,)
    drawn = run("plot", "with.nc", "--kind", "ppc", "--out", "ppc.png", cwd=tmp_path)
    assert drawn.returncode == 0, drawn.stderr
    assert _is_real_png(tmp_path / "ppc.png")
    out = run(*common, "--no-predictive", "--out", "without.nc", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert not arviz_compat.has_group(arviz_compat.from_netcdf(tmp_path / "without.nc"), "posterior_predictive")
    refused = run("plot", "without.nc", "--kind", "ppc", "--out", "x.png", cwd=tmp_path)
    assert refused.returncode == 2 and "has no posterior_predictive and observed_data groups" in refused.stderr
    refused = run("plot", "without.nc", "--kind", "images", "--out", "x.png", cwd=tmp_path)
    assert refused.returncode == 2 and "has no images group" in refused.stderr


def test_a_failing_predictive_leaves_the_run_written(tmp_path, monkeypatch, capsys):
    """The draws are what a run is for: ``ppzoo run`` writes them, and says why the predictive is
    missing, when ``ppzoo.predict`` fails."""
    import ppzoo
    from ppzoo import cli

    def broken(*args, **kwargs):
        raise MemoryError("no room for the predictive")

    monkeypatch.setattr(ppzoo, "predict", broken)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", "eight_schools", "--num-samples", "20", "--num-warmup", "50", "--thinning", "1",
                     "--num-chains", "2", "--no-progress", "--out", "run.nc"])
    assert code == 0
    assert "the posterior predictive was not added (MemoryError: no room for the predictive)" in capsys.readouterr().err
    result = arviz_compat.from_netcdf(tmp_path / "run.nc")
    assert arviz_compat.get_group(result, "posterior")["mu"].shape == (2, 20)
    assert not arviz_compat.has_group(result, "posterior_predictive")


def test_run_puts_command_line_step_options_into_an_entrys_kernel(monkeypatch, tmp_path):
    """bnn_regression's sampler default is a kernel object (SGHMC with its friction): --step-size and
    --batch-size go into it rather than beside it, and its own settings stay."""
    from ppzoo.inference import SGHMC

    import ppzoo
    from ppzoo import cli

    seen = {}

    def fake_sample(model, *args, **kwargs):
        seen.update(kwargs)
        raise ValueError("stopped by the test")

    monkeypatch.setattr(ppzoo, "sample", fake_sample)
    code = cli.main(["run", "bnn_regression", "--step-size", "1e-4", "--batch-size", "32", "--no-progress",
                     "--out", str(tmp_path / "run.nc")])
    assert code != 0 and isinstance(seen["method"], SGHMC)
    assert (seen["method"].step_size, seen["method"].batch_size, seen["method"].friction) == (1e-4, 32, 0.02)
    assert "step_size" not in seen and "batch_size" not in seen
