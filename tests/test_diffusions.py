"""``inference/sgmcmc/diffusions.py`` on its own: the Langevin step, its convention and the Tuning it reads."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from ppzoo.inference.sgmcmc.diffusions import Tuning, langevin_step, langevin_update, make_tuning
from ppzoo.inference.sgmcmc.preconditioner import Preconditioner
from ppzoo.inference.sgmcmc.schedules import Constant, PolynomialDecay

from ppzoo.backends import make_backend


def test_update_is_the_euler_step_in_h():
    rng = np.random.default_rng(0)
    x, g, xi = (rng.standard_normal((3, 4)) for _ in range(3))
    got = langevin_update(x, g, 0.01, xi, temperature=0.5)
    np.testing.assert_allclose(got, x - 0.01 * g + np.sqrt(2 * 0.01 * 0.5) * xi)
    # the same arithmetic on JAX arrays and torch tensors
    np.testing.assert_allclose(np.asarray(langevin_update(jnp.asarray(x), jnp.asarray(g), 0.01, jnp.asarray(xi), 0.5)),
                               got, rtol=1e-6)
    np.testing.assert_allclose(langevin_update(torch.tensor(x), torch.tensor(g), 0.01, torch.tensor(xi), 0.5).numpy(),
                               got, rtol=1e-12)


def test_stationary_variance_of_the_discrete_chain_is_the_known_one():
    """ULA on U = x^2 / (2 s^2): x' = (1 - h / s^2) x + sqrt(2 h) xi is AR(1) with stationary
    variance s^2 / (1 - h / (2 s^2)). A factor-2 slip in the convention (eps = 2h) moves it by far
    more than the 4 MCSE allowed."""
    s2, h, chains, steps = 2.0, 0.5, 20_000, 200
    rng = np.random.default_rng(1)
    x = np.zeros(chains)
    tuning = Tuning(h)
    for t in range(steps):
        x, _ = langevin_step(x[:, None], x[:, None] / s2, rng.standard_normal((chains, 1)), tuning, t)
        x = x[:, 0]
    expected = s2 / (1 - h / (2 * s2))
    mcse = expected * np.sqrt(2 / chains)  # sd of a sample variance of independent Gaussian draws
    assert abs(x.var() - expected) < 4 * mcse, (x.var(), expected)
    assert abs(s2 / (1 - h / s2) - expected) > 10 * mcse  # what eps = 2h would give


@pytest.mark.parametrize("dense", [False, True])
def test_step_with_a_preconditioner(dense):
    rng = np.random.default_rng(2)
    d = 3
    if dense:
        root = rng.standard_normal((d, d))
        minv = root @ root.T + np.eye(d)
    else:
        minv = rng.uniform(0.5, 2.0, d)
    pre = Preconditioner(minv)
    x, g, xi = (rng.standard_normal((2, d)) for _ in range(3))
    tuning = Tuning(0.1, pre.inverse_mass, pre.factor)
    got, h = langevin_step(x, g, xi, tuning, step=7, temperature=1.0)
    full = minv if dense else np.diag(minv)
    factor = np.linalg.cholesky(full)
    np.testing.assert_allclose(got, x - 0.1 * g @ full + np.sqrt(0.2) * xi @ factor.T, rtol=1e-10)
    assert h == 0.1


def test_step_sizes_follow_the_schedule():
    decay = PolynomialDecay(a=0.3, b=5.0, gamma=0.55)
    a, parts = decay.tuning_parts()
    tuning = Tuning(a, decay=parts)
    for t in (0, 1, 17, 1000):
        assert tuning.step_size_at(t) == pytest.approx(decay(t), rel=1e-12)
    assert Tuning(0.25).step_size_at(123) == 0.25


@pytest.mark.parametrize("name", ["numpyro", "pyro"])
def test_make_tuning_holds_numbers_and_the_backends_arrays(name, regression_data):
    from conftest import LINEAR_REGRESSION

    x, y = regression_data
    backend = make_backend(LINEAR_REGRESSION[name], (x,), {"y": y})
    plain = make_tuning(backend, 0.01)
    assert plain == Tuning(0.01) and isinstance(plain.step_size, float)
    decayed = make_tuning(backend, PolynomialDecay(0.1, 2.0, 0.5))
    assert decayed.step_size == 0.1 and decayed.decay == (2.0, 0.5)
    pre = Preconditioner(np.arange(1.0, backend.dim + 1))
    tuned = make_tuning(backend, Constant(0.02), pre)
    assert tuned.step_size == 0.02 and tuned.decay is None
    np.testing.assert_allclose(backend.to_numpy(tuned.factor) ** 2, np.arange(1.0, backend.dim + 1), rtol=1e-6)
