"""The deep zoo's VAE variants run on both PPLs, and the linear VAE finds its closed-form optimum.

Linear VAE (``benchmarks/linear_vae.py`` derives it): with the noise scale
``sigma`` fixed, the optimum has ``||w_k||^2 = max(lambda_k - sigma^2, 0)`` for
the data covariance's eigenvalues ``lambda_k``: latents with
``lambda_k <= sigma^2`` collapse. The fit's gradients are single-draw Monte Carlo
estimates, so Adam ends in a noise floor around the optimum; the tolerance
(0.15 on ``||w_k||^2``, spectrum 4, 2, 0.5 with ``sigma = 1``, 400 steps) is
2.5 times the largest deviation seen over seeds 0-2 on either backend (0.06).
"""

import numpy as np
import pytest
from conftest import slow_for
from ppzoo.models import vae

import ppzoo
from ppzoo import models
from ppzoo.data.images import load_digits


def _gaussian_data(spectrum, n, seed=0):
    rng = np.random.default_rng(seed)
    d = len(spectrum)
    basis, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (rng.normal(size=(n, d)) * np.sqrt(spectrum) @ basis.T + 0.5).astype(np.float32)


def _optimizer(backend, lr):
    if backend == "numpyro":
        import numpyro.optim

        return numpyro.optim.Adam(lr)
    import pyro.optim

    return pyro.optim.Adam({"lr": lr})


def _weight(fit, backend):
    if backend == "numpyro":
        return np.asarray(fit.params["decoder$params"].weight)
    return np.asarray(fit.params["decoder$$$weight"])


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_linear_vae_reaches_the_closed_form_optimum(backend):
    x = _gaussian_data([4.0, 2.0, 0.5], 1000)
    lam = np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1]
    model, guide = vae.programs(backend, decoder="linear", latent_dim=3, data_dim=3, noise_scale=1.0, seed=0)
    fit = ppzoo.fit(model, guide, x, num_steps=400, optimizer=_optimizer(backend, 0.05), seed=0, progress_bar=False)
    w = _weight(fit, backend)
    norms = np.sort(np.linalg.eigvalsh(w.T @ w))[::-1]
    np.testing.assert_allclose(norms, np.maximum(lam - 1.0, 0.0), atol=0.15)
    report = fit.collapse(num_samples=2)
    assert int(np.sum(report.kl < 0.01)) == int(np.sum(lam <= 1.0)) == 1


# NumPyro compiles each variant's training program (a minute for the bi-Lipschitz decoder's solver);
# the variants that differ only in their objective are covered on NumPyro by tests/test_fit.py and
# test_svi.py, and the JAX bi-Lipschitz decoder's values and gradients by tests/test_nn.py
IMAGE_VARIANTS = [(n, "pyro") for n in models.list_models(kind="deep") if n != "linear_vae"] + [("vae", "numpyro"), ("il_vae", "numpyro")]


@pytest.mark.parametrize("name, backend", slow_for(IMAGE_VARIANTS, lambda case: case[1] == "numpyro"))
def test_image_variants_train(name, backend):
    spec = models.get(name)
    x = load_digits("test")[:60]
    model, guide = spec.fit_programs(backend, latent_dim=2, hidden=(8,))
    settings = spec.fit_settings(backend, num_steps=30, batch_size=20, learning_rate=0.01)
    fit = ppzoo.fit(model, guide, x, seed=0, progress_bar=False, **settings)
    assert fit.stop_reason is None and np.all(np.isfinite(fit.losses))
    assert fit.losses[-10:].mean() < fit.losses[:10].mean(), name
    assert fit.collapse(num_samples=2).kl.shape == (2,)


def test_deep_entries_are_in_the_one_registry():
    assert set(models.list_models(kind="deep")) == {"vae", "iwae", "beta_vae", "il_vae", "bl_vae", "linear_vae"}
    with pytest.raises(ValueError, match="known models: beta_vae, bl_vae, bnn_regression"):
        models.get("nvae")
    with pytest.raises(ValueError, match="is a deep model: it is fitted"):
        models.get("vae").model("numpyro")
    with pytest.raises(ValueError, match=r"decoder 'mlp' takes no options, not \['constant'\]"):
        models.get("vae").fit_programs("pyro", constant=2.0)
    with pytest.raises(ValueError, match=r"takes the options .*got \['width'\]"):
        models.get("vae").fit_programs("pyro", width=2)
    with pytest.raises(ValueError, match="kl_anneal anneals the ELBO's KL term"):
        models.get("beta_vae").fit_settings("pyro", objective="iwae")
