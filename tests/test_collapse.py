"""Posterior-collapse diagnostics: synthetic encoders with known answers, then real VAE fits on both PPLs."""

import arviz as az
import matplotlib
import numpy as np
import pytest
import torch
from conftest import slow_for
from ppzoo.models.vae import numpyro_vae, pyro_vae

import ppzoo
from ppzoo.data.images import binarize, load_digits, load_images
from ppzoo.diagnostics import arviz_compat
from ppzoo.diagnostics.collapse import (
    CollapseReport,
    active_units,
    collapse_report,
    kl_per_dimension,
    mutual_information,
    plot_collapse,
)

matplotlib.use("Agg")


def test_kl_per_dimension_matches_torch_distributions():
    rng = np.random.default_rng(0)
    loc, scale = rng.normal(size=(50, 3)), rng.uniform(0.2, 2.0, size=(50, 3))
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(torch.tensor(loc), torch.tensor(scale)), torch.distributions.Normal(0.0, 1.0)
    ).mean(0).numpy()
    np.testing.assert_allclose(kl_per_dimension(loc, scale), expected, rtol=1e-12)


def test_an_encoder_that_ignores_x_has_no_active_units_and_no_information():
    n, d = 400, 3
    loc, scale = np.zeros((n, d)), np.ones((n, d))
    count, variances = active_units(loc)
    assert count == 0 and np.all(variances == 0)
    np.testing.assert_allclose(kl_per_dimension(loc, scale), 0.0, atol=1e-15)
    # every component of the aggregate posterior is the same: log q(z|x) - log q(z) is 0 draw by draw
    mi, se = mutual_information(loc, scale, num_samples=5, return_standard_error=True)
    assert abs(mi) < 1e-9 and se < 1e-9


def test_an_invertible_encoder_has_every_unit_active_and_log_n_information():
    rng = np.random.default_rng(1)
    n, d = 300, 4
    loc, scale = rng.normal(size=(n, d)), np.full((n, d), 1e-3)
    assert active_units(loc)[0] == d
    # components far apart: z identifies its datum, I(x; z) = log N
    assert mutual_information(loc, scale) == pytest.approx(np.log(n), abs=1e-6)


def test_mutual_information_of_a_gaussian_channel():
    # loc ~ N(0, 1), scale s: for large N the aggregate posterior is N(0, 1 + s^2) and
    # I = d/2 log(1 + 1/s^2); the finite-N mixture is a close stand-in (bias well under the tolerance)
    rng = np.random.default_rng(2)
    n, d, s = 3000, 2, 1.0
    loc, scale = rng.normal(size=(n, d)), np.full((n, d), s)
    mi, se = mutual_information(loc, scale, num_samples=4, seed=3, return_standard_error=True)
    exact = 0.5 * d * np.log(1 + 1 / s**2)
    assert abs(mi - exact) < 4 * se + 0.02, (mi, exact, se)


def test_report_round_trips_through_a_dataset_and_plots(tmp_path):
    rng = np.random.default_rng(3)
    loc, scale = rng.normal(size=(100, 5)) * [1, 1, 0.01, 0.0, 2], np.full((100, 5), 0.5)
    report = collapse_report(loc, scale, reconstruction=-rng.uniform(10, 20, size=(3, 100)))
    assert report.active_units == 3 and report.rate == pytest.approx(report.kl.sum())
    back = CollapseReport.from_dataset(report.to_dataset())
    np.testing.assert_array_equal(back.kl, report.kl)
    assert back.active_units == 3 and back.distortion == pytest.approx(report.distortion)
    ax = plot_collapse(report)
    ax.figure.savefig(tmp_path / "collapse.png")
    assert (tmp_path / "collapse.png").stat().st_size > 5_000


def test_bad_encoder_arrays_name_the_argument():
    with pytest.raises(ValueError, match="scale must have the shape of loc"):
        kl_per_dimension(np.zeros((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="scale finite and > 0"):
        kl_per_dimension(np.zeros((3, 2)), np.zeros((3, 2)))


@pytest.fixture(scope="module")
def digits():
    return load_digits("train")[:600]


def _fit(backend, decoder, x, **options):
    make = numpyro_vae if backend == "numpyro" else pyro_vae
    model, guide = make(64, 4, decoder, hidden=(64, 64), seed=0, **options)
    return ppzoo.fit(
        model, guide, x, num_steps=300, batch_size=100, seed=0, progress_bar=False,
        step_kwargs=lambda t: {"binarize_step": t},
    )


@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: b == "numpyro"))
def test_inverse_lipschitz_decoder_keeps_every_latent_active_where_the_plain_one_collapses(backend, digits):
    plain = _fit(backend, "mlp", digits).collapse()
    il = _fit(backend, "inverse_lipschitz", digits, constant=1.0).collapse()
    assert il.active_units == 4, il
    assert plain.active_units < 4, plain
    assert il.kl.min() > 0.05 and il.rate > 3 * plain.rate, (il.kl, plain.kl)
    assert il.mutual_information > plain.mutual_information


def test_collapse_group_is_stored_in_the_fits_inference_data(tmp_path, digits):
    fit = _fit("pyro", "inverse_lipschitz", digits[:200], constant=1.0)
    idata = fit.to_arviz(num_samples=20, collapse=True)
    assert arviz_compat.has_group(idata, "collapse")
    assert int(idata.collapse["active_units"]) == fit.collapse().active_units
    path = tmp_path / "fit.nc"
    arviz_compat.to_netcdf(idata, path)
    back = az.from_netcdf(str(path))
    np.testing.assert_allclose(back.collapse["kl"].values, idata.collapse["kl"].values)
    plot_collapse(back).figure.savefig(tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 5_000


def test_binarisation_is_shared_within_a_step_and_fresh_across_steps():
    import pyro.poutine as poutine

    x = torch.tensor(load_digits("test")[:50])
    model, guide = pyro_vae(64, 2, hidden=(8,))
    obs = []
    for step in (3, 3, 4):
        tr = poutine.trace(guide).get_trace(x, binarize_step=step)
        mtr = poutine.trace(poutine.replay(model, trace=tr)).get_trace(x, binarize_step=step)
        obs.append(mtr.nodes["x"]["value"])
    assert torch.equal(obs[0], obs[1]) and not torch.equal(obs[0], obs[2])
    assert set(torch.unique(obs[0]).tolist()) <= {0.0, 1.0}
    # the binarised pixels follow the grey levels
    assert abs(float(obs[0].mean()) - float(x.mean())) < 0.05


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_images_outside_the_unit_interval_are_refused(backend):
    make = numpyro_vae if backend == "numpyro" else pyro_vae
    model, guide = make(64, 2, hidden=(8,))
    with pytest.raises(ValueError, match=r"x must hold grey levels or binary pixels in \[0, 1\]"):
        ppzoo.fit(model, guide, load_digits("test") * 16, num_steps=2, progress_bar=False)


def test_bad_vae_settings_name_the_argument():
    with pytest.raises(ValueError, match="decoder must be one of"):
        pyro_vae(64, 2, "convolutional")
    with pytest.raises(ValueError, match="constant must be a finite number >= 0"):
        numpyro_vae(64, 2, "inverse_lipschitz", constant=-1.0)
    with pytest.raises(ValueError, match=r"latent_dim \(70\) must be <= output_dim \(64\)"):
        pyro_vae(64, 70, "inverse_lipschitz")


def test_image_loaders_read_idx_and_npz_and_refuse_bad_files(tmp_path):
    images = (np.arange(3 * 4 * 5) % 256).astype(np.uint8).reshape(3, 4, 5)
    idx = tmp_path / "t10k-images-idx3-ubyte"
    idx.write_bytes(bytes([0, 0, 8, 3]) + np.array([3, 4, 5], dtype=">u4").tobytes() + images.tobytes())
    np.testing.assert_allclose(load_images(idx), images.reshape(3, 20) / 255.0, rtol=1e-6)
    np.savez(tmp_path / "m.npz", x_train=images, x_test=images[:1])
    assert load_images(tmp_path / "m.npz", key="x_test").shape == (1, 20)
    with pytest.raises(ValueError, match="pass key="):
        load_images(tmp_path / "m.npz")
    (tmp_path / "bad").write_bytes(b"not an idx file")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        load_images(tmp_path / "bad")
    with pytest.raises(ValueError, match="is not a readable file"):
        load_images(tmp_path / "missing")
    assert set(np.unique(binarize(load_digits("test")))) == {0.0, 1.0}
