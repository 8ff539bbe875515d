"""The README's examples of ``ppzoo.fit``, on both PPLs, as written there but with small sizes.

Each example runs end to end (fit, convergence report, PSIS, ArviZ result,
``log p(x)``, collapse diagnostics) on the README's data: scikit-learn's
digits and breast-cancer sets.
"""

import numpy as np
import numpyro
import numpyro.distributions as dist
import pyro
import pyro.distributions as pdist
import pytest
import torch
from conftest import slow_for
from ppzoo.models.vae import numpyro_vae, pyro_vae

import ppzoo
from ppzoo.data import load_breast_cancer
from ppzoo.data.images import load_digits
from ppzoo.diagnostics import arviz_compat
from ppzoo.diagnostics.fit_convergence import FitConvergenceWarning

VAE = {"numpyro": numpyro_vae, "pyro": pyro_vae}
SMALL = {"hidden": (16,)}  # the README's networks are (256, 256)


@pytest.fixture(scope="module")
def digits():
    return load_digits("train")[:200]


@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: b == "numpyro"))
def test_the_one_call_iwae_example(backend, digits):
    model, guide = VAE[backend](64, latent_dim=8, **SMALL)
    fit = ppzoo.fit(model, guide, digits, objective="iwae", num_particles=5, estimator="dreg", num_steps=30,
                    batch_size=50, progress_bar=False)
    assert fit.losses.shape == (30,) and np.all(np.isfinite(fit.losses)) and fit.trend is not None
    khat = fit.psis_khat(num_samples=30)  # one per datum: the VAE's latents are all per datum
    assert khat.dims == ("data",) and khat.shape == (200,) and np.all(np.isfinite(khat.values))
    idata = fit.to_arviz(num_samples=30)
    assert arviz_compat.get_group(idata, "sample_stats")["log_weight"].shape == (1, 30)
    lml = ppzoo.log_marginal_likelihood(model, guide, fit.params, digits, num_samples=10)
    assert np.isfinite(lml.total) and lml.per_datum.shape == (200,)


def numpyro_logistic(x, y=None):
    w = numpyro.sample("w", dist.Normal(0, 1).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=x @ w), obs=y)


def pyro_logistic(x, y=None):
    w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Bernoulli(logits=x @ w), obs=y)


@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: b == "numpyro"))
def test_the_autoguide_example(backend):
    x, y = load_breast_cancer()
    if backend == "numpyro":
        from numpyro.infer.autoguide import AutoMultivariateNormal

        model, data = numpyro_logistic, (x, y)
    else:
        from pyro.infer.autoguide import AutoMultivariateNormal

        model, data = pyro_logistic, (torch.as_tensor(x), torch.as_tensor(y))
    with pytest.warns(FitConvergenceWarning):  # 100 steps where the README runs until the loss levels off
        fit = ppzoo.fit(model, AutoMultivariateNormal(model), data[0], y=data[1], num_steps=100, progress_bar=False)
    assert fit.learning_rates == [(0, 1e-2)] and fit.converged is False
    w = arviz_compat.get_group(fit.to_arviz(num_samples=40), "posterior")["w"]
    assert w.shape == (1, 40, 30) and np.all(np.isfinite(w.values))


@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: b == "numpyro"))
def test_the_collapse_example(backend, digits):
    model, guide = VAE[backend](64, latent_dim=8, decoder="inverse_lipschitz", constant=1.0, **SMALL)
    fit = ppzoo.fit(model, guide, digits, num_steps=20, batch_size=50, step_kwargs=lambda t: {"binarize_step": t},
                    progress_bar=False)
    assert 0 <= fit.collapse().active_units <= 8
