"""Pyro particles vectorised: in an outer ``pyro.plate``, else with the model under ``torch.func.vmap``.

A model written ``x @ w`` (``w`` of shape ``(d,)``) fails in the particle
plate, where ``w`` is ``(K, 1, d)``; under ``vmap`` it runs as written. The
checks: its terms are those of the model run on each particle's draw as
written; its loss and gradients (every estimator) are those of the same model
written to broadcast, which runs in the plate, from the same draws; a fit and
its evaluation run vectorised and compiled; a program that runs neither way
warns once per fit.
"""

import warnings

import numpy as np
import pyro
import pyro.distributions as pdist
import pytest
import torch
from ppzoo.inference import IWAE, AnnealedELBO
from pyro import poutine

import ppzoo
from ppzoo.backends import pyro_svi
from ppzoo.diagnostics.fit_convergence import FitConvergenceWarning

N, D, K = 40, 3, 5


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    x = torch.as_tensor(rng.standard_normal((N, D)), dtype=torch.float32)
    y = torch.as_tensor(rng.random(N) < 0.4, dtype=torch.float32)
    return x, y


def matmul_model(x, y):
    """Logistic regression as users write it: fails in the particle plate (``x @ w``)."""
    prior_scale = pyro.param(
        "prior_scale", torch.tensor(1.5), constraint=pdist.constraints.positive
    )
    w = pyro.sample("w", pdist.Normal(0.0, prior_scale).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Bernoulli(logits=x @ w), obs=y)


def broadcast_model(x, y):
    """The same model written to broadcast over a leftmost particle dimension."""
    prior_scale = pyro.param(
        "prior_scale", torch.tensor(1.5), constraint=pdist.constraints.positive
    )
    w = pyro.sample("w", pdist.Normal(0.0, prior_scale).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Bernoulli(logits=(x * w).sum(-1)), obs=y)


def guide(x, y):
    loc = pyro.param("loc", torch.tensor([0.3, -0.2, 0.5]))
    scale = pyro.param(
        "scale", torch.tensor([0.4, 0.7, 0.5]), constraint=pdist.constraints.positive
    )
    pyro.sample("w", pdist.Normal(loc, scale).to_event(1))


def loss_and_grads(objective, model, data, seed=0):
    """The loss and its gradients with respect to the unconstrained parameters, one set of draws."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    with poutine.trace(param_only=True) as capture:
        loss = objective(model, guide, *data)
    leaves = {name: site["value"].unconstrained() for name, site in capture.trace.nodes.items()}
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return loss.detach(), dict(zip(leaves, grads))


OBJECTIVES = {
    "elbo": lambda: AnnealedELBO(1.0, K),
    "elbo-stl": lambda: AnnealedELBO(1.0, K, estimator="stl"),
    "iwae": lambda: IWAE(K, "reparam"),
    "iwae-stl": lambda: IWAE(K, "stl"),
    "iwae-dreg": lambda: IWAE(K, "dreg"),
}


@pytest.mark.parametrize("name", OBJECTIVES)
def test_vmap_gives_the_plate_paths_loss_and_gradients_from_the_same_draws(name, data):
    """``x @ w`` runs under vmap, the broadcasting twin in the plate; the guide draws the same
    particles in both, so loss and gradients (guide and model parameters) must agree."""
    objective = OBJECTIVES[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning about particles run one at a time
        loss_vmap, grads_vmap = loss_and_grads(objective, matmul_model, data)
        loss_plate, grads_plate = loss_and_grads(objective, broadcast_model, data)
    assert objective._particle_ways.way_of((matmul_model, guide)) == "vmap"
    assert objective._particle_ways.way_of((broadcast_model, guide)) == "plate"
    assert set(grads_vmap) == {"prior_scale", "loc", "scale"}
    torch.testing.assert_close(loss_vmap, loss_plate, rtol=1e-5, atol=1e-5)
    for param, grad in grads_plate.items():
        assert grad.abs().max() > 1e-3, param  # the comparison is not of zeros
        torch.testing.assert_close(grads_vmap[param], grad, rtol=1e-4, atol=1e-5)


def test_vmap_terms_are_each_particles_model_run_as_written(data):
    """Per particle ``k``: ``log p(y_i | w_k)`` per datum and ``log p(w_k)``, from the model run
    unvectorised on the guide's ``k``-th draw, and ``log q(w_k)``."""
    x, y = data
    pyro.clear_param_store()
    pyro.set_rng_seed(1)
    ranks = pyro_svi.probe(matmul_model, guide, (x, y), {}).batch_ranks
    with torch.no_grad():
        run = pyro_svi.log_density_terms(
            matmul_model,
            guide,
            (x, y),
            {},
            num_particles=K,
            max_plate_nesting=1,
            way="vmap",
            batch_ranks=ranks,
            per_site=True,
        )
    draws = run.guide_trace.nodes["w"]["value"]
    assert draws.shape == (K, 1, D)
    assert run.terms.obs_local.shape == (K, N) and run.terms.prior_global.shape == (K,)
    for k in range(K):
        w = draws[k, 0]
        trace = poutine.trace(poutine.condition(matmul_model, data={"w": w})).get_trace(x, y)
        torch.testing.assert_close(
            run.terms.obs_local[k], trace.nodes["y"]["fn"].log_prob(y), rtol=1e-6, atol=1e-6
        )
        torch.testing.assert_close(
            run.terms.prior_global[k], trace.nodes["w"]["fn"].log_prob(w), rtol=1e-6, atol=1e-6
        )
        q = pdist.Normal(pyro.param("loc"), pyro.param("scale")).to_event(1).log_prob(w)
        torch.testing.assert_close(run.terms.guide_global[k], q.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(run.loglik["y"][1], run.terms.obs_local)
    assert run.observed["y"] is y


def cross_model(x, y):
    """Written for a ``(K, d)`` draw: ``w.unsqueeze(-2)`` of the plate's ``(K, 1, d)`` draw makes a
    ``(K, 1, N)`` mean, which the data plate broadcasts to ``(K, K, N)``: every particle against
    every other. Unvectorised it is the ordinary regression."""
    w = pyro.sample("w", pdist.Normal(0.0, 1.5).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Bernoulli(logits=(x * w.unsqueeze(-2)).sum(-1)), obs=y)


def test_a_program_that_broadcasts_particles_against_each_other_is_not_run_in_the_plate(data):
    """In the plate each particle would be scored on the sum over all particles' likelihoods (and
    ``K x K x N`` memory); it runs under vmap instead, and each particle's terms are its own."""
    x, y = data
    pyro.clear_param_store()
    ranks = pyro_svi.probe(cross_model, guide, (x, y), {}).batch_ranks
    options = dict(num_particles=K, max_plate_nesting=1)
    with torch.no_grad():
        with pytest.raises(pyro_svi.NotVectorisable, match="against each other"):
            pyro_svi.log_density_terms(cross_model, guide, (x, y), {}, way="plate", **options)
        pyro.set_rng_seed(2)
        ways = pyro_svi.ParticleWays()
        run = ways.run(cross_model, guide, (x, y), {}, batch_ranks=lambda: ranks, **options)
        pyro.set_rng_seed(2)
        looped = pyro_svi.looped_terms(cross_model, guide, (x, y), {}, **options)
    assert ways.way_of((cross_model, guide)) == "vmap"
    assert run.terms.obs_local.shape == (K, N)
    assert run.terms.obs_local.sum(-1).std() > 1.0  # the particles' likelihoods differ
    torch.testing.assert_close(run.terms.obs_local, looped.obs_local, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("objective, estimator", [("elbo", "reparam"), ("iwae", "dreg")])
def test_a_matmul_fit_runs_vectorised_and_compiled(objective, estimator, data):
    """An autoguide fit of ``x @ w`` with K particles: no warning, the compiled step kept, and the
    evaluation (``to_arviz``) vectorised too, its per-datum log-likelihood that of each draw."""
    x, y = data

    def model(x, y):
        w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", pdist.Bernoulli(logits=x @ w), obs=y)

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter(
            "ignore", FitConvergenceWarning
        )  # 30 steps: this test is not about convergence
        fit = ppzoo.fit(
            model,
            pyro.infer.autoguide.AutoMultivariateNormal(model),
            x,
            y,
            objective=objective,
            estimator=estimator,
            num_particles=K,
            num_steps=30,
            progress_bar=False,
        )
        idata = fit.to_arviz(num_samples=20, chunk_size=10, draws="guide")
    assert fit.compiled_as == "graph" and np.all(np.isfinite(fit.losses))
    w = idata.posterior["w"].values[0]  # (20, D)
    assert np.unique(w[:, 0]).size == 20  # the particles differ
    logits = w @ x.numpy().T
    expected = y.numpy() * logits - np.logaddexp(0.0, logits)
    np.testing.assert_allclose(idata.log_likelihood["y"].values[0], expected, rtol=1e-4, atol=1e-5)


def test_evaluation_draws_the_same_the_first_time_as_later(data):
    """The first evaluation tries the plate before vmap; the failed try's draws are put back, so the
    first ``to_arviz(seed=0)`` equals the second."""
    x, y = data

    def model(x, y):
        w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", pdist.Bernoulli(logits=x @ w), obs=y)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitConvergenceWarning)
        fit = ppzoo.fit(
            model, pyro.infer.autoguide.AutoNormal(model), x, y, num_steps=10, progress_bar=False
        )
    first = fit.to_arviz(num_samples=12, chunk_size=6).posterior["w"].values
    second = fit.to_arviz(num_samples=12, chunk_size=6).posterior["w"].values
    np.testing.assert_array_equal(first, second)


def make_reading_model():
    """A new program each call (the warning is once per program): ``x @ w`` fails in the plate and
    a Python read of a draw's value fails under vmap, so its particles run one at a time."""

    def model(x, y):
        w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
        with pyro.plate("data", x.shape[0]) as idx:
            logits = x[idx] @ w
            if float(w.abs().max()) > 20.0:  # a guard written on a draw's value
                logits = logits.clamp(-20.0, 20.0)
            pyro.sample("y", pdist.Bernoulli(logits=logits), obs=y[idx])

    return model


@pytest.mark.parametrize("batch_size", [None, 10])
def test_a_program_vectorised_neither_way_warns_once_per_fit(batch_size, data):
    """Fit (30 steps, the compiled-step trial included) and evaluate in 3 chunks: one warning."""
    x, y = data
    model = make_reading_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = ppzoo.fit(
            model,
            pyro.infer.autoguide.AutoNormal(model),
            x,
            y,
            objective="iwae",
            num_particles=K,
            num_steps=30,
            batch_size=batch_size,
            progress_bar=False,
        )
        idata = fit.to_arviz(num_samples=30, chunk_size=10, draws="guide")
    looped = [w for w in caught if "could not be vectorised" in str(w.message)]
    assert len(looped) == 1, [str(w.message) for w in looped]
    assert "one at a time" in str(looped[0].message)
    assert np.all(np.isfinite(fit.losses)) and idata.posterior["w"].shape == (1, 30, D)
