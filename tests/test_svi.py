"""IWAE / STL / DReG objectives on both PPLs against closed forms and against each PPL's own ELBO.

The model is the linear-Gaussian latent model of ``conftest.py`` (one latent
``z_i`` per datum, ``log p(x)`` and the exact posterior in closed form).
Statistical checks average ``R`` independent seeds and state their
tolerance in Monte Carlo standard errors (MCSE = sd / sqrt(R)).
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pyro
import pytest
import torch
from conftest import PPCA, ppca_exact_posterior, ppca_log_evidence, slow_for
from ppzoo.inference import IWAE, AnnealedELBO
from pyro import poutine

BACKENDS = ("numpyro", "pyro")


def exact_params():
    a, b, s = ppca_exact_posterior()
    return {"A": a, "b": b, "s": s, "mu": np.array([0.5, -1.0, 0.2])}


def off_params(s_factor=1.6, b_shift=0.3):
    """A guide that is wrong in location and scale (the model's ``mu`` unchanged)."""
    p = exact_params()
    return {**p, "b": p["b"] + b_shift, "s": p["s"] * s_factor}


def _substituted(model, guide, leaves):
    model_params = {"mu"}
    return (
        poutine.substitute(model, data={k: v for k, v in leaves.items() if k in model_params}),
        poutine.substitute(guide, data={k: v for k, v in leaves.items() if k not in model_params}),
    )


def value_and_grads(backend, objective, params, x, seed):
    """``(bound, {param: d bound / d param})`` at the constrained ``params``, one random draw set."""
    model, guide = PPCA[backend]
    if backend == "numpyro":
        key = jax.random.PRNGKey(seed)
        p = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in params.items()}
        # compiled: op-by-op JAX compiles every primitive it meets, seconds per call on a small machine
        loss, grads = jax.jit(jax.value_and_grad(lambda q: objective.loss(key, q, model, guide, jnp.asarray(x))))(p)
        return -float(loss), {k: -np.asarray(g, dtype=np.float64) for k, g in grads.items()}
    leaves = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in params.items()}
    pyro.set_rng_seed(seed)
    model, guide = _substituted(model, guide, leaves)
    loss = objective(model, guide, torch.tensor(x))
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return -float(loss.detach()), {k: -g.numpy().astype(np.float64) for k, g in zip(leaves, grads)}


def elbo_value_and_grads(backend, params, x, seed):
    """The PPL's own ``Trace_ELBO``, same seed and parameters."""
    model, guide = PPCA[backend]
    if backend == "numpyro":
        key = jax.random.PRNGKey(seed)
        p = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in params.items()}
        elbo = numpyro.infer.Trace_ELBO()
        loss, grads = jax.jit(jax.value_and_grad(lambda q: elbo.loss(key, q, model, guide, jnp.asarray(x))))(p)
        return -float(loss), {k: -np.asarray(g, dtype=np.float64) for k, g in grads.items()}
    leaves = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in params.items()}
    pyro.set_rng_seed(seed)
    loss = pyro.infer.Trace_ELBO().differentiable_loss(*_substituted(model, guide, leaves), torch.tensor(x))
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return -float(loss.detach()), {k: -g.numpy().astype(np.float64) for k, g in zip(leaves, grads)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_iwae_with_one_particle_is_the_elbo(backend, ppca_data):
    """K = 1, reparameterised: the value and every gradient of the PPL's own Trace_ELBO."""
    params = off_params()
    value, grads = value_and_grads(backend, IWAE(1, estimator="reparam"), params, ppca_data, seed=4)
    ref_value, ref_grads = elbo_value_and_grads(backend, params, ppca_data, seed=4)
    assert value == pytest.approx(ref_value, rel=1e-5)
    for name in params:
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("estimator", ["stl", "dreg"])
def test_stl_and_dreg_with_one_particle(backend, estimator, ppca_data):
    """K = 1: STL and DReG have the ELBO's value and model gradient; their guide gradients drop
    the score term, so they differ from the ELBO's, and DReG (``w~ = 1``) is STL exactly."""
    params = off_params()
    ref_value, ref_grads = elbo_value_and_grads(backend, params, ppca_data, seed=4)
    value, grads = value_and_grads(backend, IWAE(1, estimator=estimator), params, ppca_data, seed=4)
    assert value == pytest.approx(ref_value, rel=1e-5)
    np.testing.assert_allclose(grads["mu"], ref_grads["mu"], rtol=1e-4, atol=1e-4)
    assert np.abs(grads["b"] - ref_grads["b"]).max() > 1e-3  # the score term is gone
    _, stl = value_and_grads(backend, IWAE(1, estimator="stl"), params, ppca_data, seed=4)
    for name in params:
        np.testing.assert_allclose(grads[name], stl[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("backend", slow_for(BACKENDS, lambda b: b == "numpyro"))
def test_exact_guide_gives_log_evidence_and_zero_stl_dreg_guide_gradients(backend, ppca_data):
    log_px = ppca_log_evidence(ppca_data)
    for k in (1, 5, 50):
        for estimator in ("stl", "dreg"):
            value, grads = value_and_grads(backend, IWAE(k, estimator=estimator), exact_params(), ppca_data, seed=k)
            assert value == pytest.approx(log_px, abs=2e-3), (k, estimator)
            for name in ("A", "b", "s"):
                np.testing.assert_allclose(grads[name], 0.0, atol=2e-3, err_msg=f"{estimator} K={k} {name}")
    # the plain reparameterised guide gradient is not zero there (its score term is pure noise)
    _, grads = value_and_grads(backend, IWAE(5, estimator="reparam"), exact_params(), ppca_data, seed=1)
    assert np.abs(grads["b"]).max() > 0.05


def _repeat(backend, objective, params, x, reps, seed0=100):
    """Bounds ``(R,)`` and gradients ``{param: (R, ...)}`` at seeds ``seed0 .. seed0 + R - 1``."""
    if backend == "numpyro":  # one compiled, vmapped evaluation of all seeds
        model, guide = PPCA["numpyro"]
        p = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in params.items()}
        keys = jnp.stack([jax.random.PRNGKey(seed0 + r) for r in range(reps)])
        vg = jax.jit(jax.vmap(lambda key: jax.value_and_grad(lambda q: objective.loss(key, q, model, guide, jnp.asarray(x)))(p)))
        loss, grads = vg(keys)
        return -np.asarray(loss, dtype=np.float64), {k: -np.asarray(g, dtype=np.float64) for k, g in grads.items()}
    values, grads = [], []
    for r in range(reps):
        v, g = value_and_grads(backend, objective, params, x, seed=seed0 + r)
        values.append(v)
        grads.append(g)
    return np.array(values), {k: np.stack([g[k] for g in grads]) for k in grads[0]}


@pytest.mark.parametrize("backend", BACKENDS)
def test_iwae_bound_increases_with_k_towards_log_evidence(backend, ppca_data):
    log_px = ppca_log_evidence(ppca_data)
    reps = 100
    means, ses = [], []
    for k in (1, 5, 50):
        values, _ = _repeat(backend, IWAE(k), off_params(1.6, 0.6), ppca_data, reps)
        means.append(values.mean())
        ses.append(values.std(ddof=1) / np.sqrt(reps))
    means, ses = np.array(means), np.array(ses)
    # each step up in K raises the expected bound by more than 4 combined MCSE, and all stay below log p(x)
    assert means[1] - means[0] > 4 * np.hypot(ses[0], ses[1]), (means, ses)
    assert means[2] - means[1] > 4 * np.hypot(ses[1], ses[2]), (means, ses)
    assert log_px - means[2] > 4 * ses[2], (means, ses, log_px)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stl_and_dreg_agree_with_reparam_for_model_parameters(backend, ppca_data):
    reps = 40
    _, ref = _repeat(backend, IWAE(10, "reparam"), off_params(), ppca_data, reps)
    for estimator in ("stl", "dreg"):
        _, grads = _repeat(backend, IWAE(10, estimator), off_params(), ppca_data, reps)
        diff = grads["mu"] - ref["mu"]  # same seeds: paired
        mcse = np.maximum(ref["mu"].std(axis=0, ddof=1) / np.sqrt(reps), 1e-6)
        assert np.all(np.abs(diff.mean(axis=0)) < 3 * mcse), (estimator, diff.mean(axis=0), mcse)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dreg_guide_gradient_is_unbiased_and_stl_is_not(backend, ppca_data):
    """Paired (same draws), K = 5: DReG's guide gradient has the mean of the plain IWAE gradient
    (Tucker et al. 2019: the weights enter squared); STL's does not. With ``w~`` in place of
    ``w~^2`` DReG's surrogate is STL's, so the STL check shows the test sees that change."""
    reps = 400 if backend == "numpyro" else 150
    _, ref = _repeat(backend, IWAE(5, "reparam"), off_params(), ppca_data, reps)
    z = {}
    for estimator in ("dreg", "stl"):
        _, grads = _repeat(backend, IWAE(5, estimator), off_params(), ppca_data, reps)
        diff = np.concatenate([(grads[k] - ref[k]).reshape(reps, -1) for k in ("A", "b", "s")], axis=1)
        z[estimator] = np.abs(diff.mean(axis=0)) / (diff.std(axis=0, ddof=1) / np.sqrt(reps))
    assert z["dreg"].max() < 4.0, z["dreg"]  # 10 components: each within 4 MCSE
    assert z["stl"].max() > 10.0, z["stl"]


def _snr(grads):
    return np.abs(grads.mean(axis=0)) / grads.std(axis=0, ddof=1)


@pytest.mark.slow
def test_dreg_guide_snr_does_not_decay_with_k_as_reparam_does(ppca_data):
    """Rainforth et al. (2018): the reparameterised IWAE guide gradient's SNR falls like 1/sqrt(K); DReG's does not."""
    model, guide = PPCA["numpyro"]
    x = jnp.asarray(ppca_data)
    params = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in off_params(1.3, 0.2).items()}
    reps = 400
    keys = jax.random.split(jax.random.PRNGKey(0), reps)
    snr = {}
    for estimator in ("reparam", "dreg"):
        for k in (5, 500):
            objective = IWAE(k, estimator)
            grad = jax.jit(jax.vmap(lambda key, obj=objective: jax.grad(lambda p: obj.loss(key, p, model, guide, x))(params)))
            g = np.asarray(grad(keys)["b"], dtype=np.float64)
            snr[estimator, k] = _snr(g).mean()
    assert snr["reparam", 500] < 0.5 * snr["reparam", 5], snr
    assert snr["dreg", 500] > snr["dreg", 5], snr
    assert snr["dreg", 500] > 3 * snr["reparam", 500], snr


def test_annealed_elbo_weights_the_kl_term(ppca_data):
    """beta = 1 is the ELBO; the beta-weighted value is linear in beta, through the reconstruction at 0."""
    params = off_params()
    elbo, _ = elbo_value_and_grads("numpyro", params, ppca_data, seed=2)
    values = {beta: value_and_grads("numpyro", AnnealedELBO(beta), params, ppca_data, seed=2)[0] for beta in (0.0, 0.5, 1.0)}
    assert values[1.0] == pytest.approx(elbo, rel=1e-5)
    assert values[0.5] == pytest.approx(0.5 * (values[0.0] + values[1.0]), rel=1e-5)
    # the schedule is read at annealing_step
    schedule = AnnealedELBO(beta=lambda t: t / 10.0)
    model, guide = PPCA["numpyro"]
    p = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in params.items()}
    at5 = -float(schedule.loss(jax.random.PRNGKey(2), p, model, guide, jnp.asarray(ppca_data), annealing_step=5))
    assert at5 == pytest.approx(values[0.5], rel=1e-5)


def test_same_bound_on_both_backends(ppca_data):
    """Same model, guide and parameters: the expected bound agrees across PPLs within 4 MCSE."""
    reps = 60
    stats = {}
    for backend in BACKENDS:
        values, _ = _repeat(backend, IWAE(5), off_params(), ppca_data, reps, seed0=7)
        stats[backend] = values.mean(), values.std(ddof=1) / np.sqrt(reps)
    (m1, s1), (m2, s2) = stats.values()
    assert abs(m1 - m2) < 4 * np.hypot(s1, s2), stats
    for k in (1, 5):  # and exactly at the exact posterior, where the bound is deterministic
        v = [value_and_grads(b, IWAE(k), exact_params(), ppca_data, seed=0)[0] for b in BACKENDS]
        assert v[0] == pytest.approx(v[1], abs=1e-3)
