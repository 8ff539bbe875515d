"""``inference/sgmcmc/gradients.py`` on its own, on both backends: each estimator is exactly unbiased.

With ``B = 1`` the expectation over the minibatch is the average over the ``N``
single-datum batches, computed exactly here by giving each datum its own
"chain" (no Monte Carlo): every estimator must average to ``grad U(theta)``.
"""

import numpy as np
import pytest
from conftest import LINEAR_REGRESSION
from ppzoo.inference.sgmcmc.gradients import anchored_gradient, minibatch_gradient, sarah_gradient

from ppzoo.backends import make_backend


@pytest.fixture(scope="module", params=["numpyro", "pyro"])
def oracle(request, regression_data):
    x, y = regression_data
    backend = make_backend(LINEAR_REGRESSION[request.param], (x,), {"y": y})
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (3, backend.dim))  # theta, an anchor, a previous position
    return backend, points


def _every_datum(backend, point):
    """``point`` repeated once per datum ``(N, D)`` and the single-datum batches ``(N, 1)``."""
    n = backend.num_data
    idx = np.arange(n)[:, None]
    as_index = backend.asarray(idx).long() if backend.name == "pyro" else backend.asarray(idx).astype(int)
    return backend.asarray(np.repeat(point[None], n, axis=0)), as_index


def _mean(backend, value):
    return backend.to_numpy(value).astype(np.float64).mean(axis=0)


def test_minibatch_gradient_averages_to_the_full_gradient(oracle):
    backend, (theta, _, _) = oracle
    full = backend.to_numpy(backend.full_grad(backend.asarray(theta[None])))[0]
    thetas, idx = _every_datum(backend, theta)
    np.testing.assert_allclose(_mean(backend, minibatch_gradient(backend, thetas, idx)), full, rtol=2e-4, atol=2e-3)


def test_anchored_gradient_is_unbiased_and_exact_at_the_anchor(oracle):
    backend, (theta, anchor, _) = oracle
    full = lambda p: backend.to_numpy(backend.full_grad(backend.asarray(p[None])))[0]  # noqa: E731
    thetas, idx = _every_datum(backend, theta)
    anchors, _ = _every_datum(backend, anchor)
    anchor_grad = backend.asarray(np.repeat(full(anchor)[None], backend.num_data, axis=0))
    v = anchored_gradient(backend, thetas, idx, anchors, anchor_grad)
    np.testing.assert_allclose(_mean(backend, v), full(theta), rtol=2e-4, atol=2e-3)
    # at the anchor itself every minibatch gives the full gradient: no variance left
    at_anchor = backend.to_numpy(anchored_gradient(backend, anchors, idx, anchors, anchor_grad))
    np.testing.assert_allclose(at_anchor, np.repeat(full(anchor)[None], backend.num_data, axis=0), rtol=1e-5, atol=1e-4)


def test_sarah_gradient_is_unbiased_given_an_exact_previous_estimate(oracle):
    backend, (theta, _, previous) = oracle
    full = lambda p: backend.to_numpy(backend.full_grad(backend.asarray(p[None])))[0]  # noqa: E731
    thetas, idx = _every_datum(backend, theta)
    previous_positions, _ = _every_datum(backend, previous)
    estimate = backend.asarray(np.repeat(full(previous)[None], backend.num_data, axis=0))
    v = sarah_gradient(backend, thetas, previous_positions, estimate, idx)
    np.testing.assert_allclose(_mean(backend, v), full(theta), rtol=2e-4, atol=2e-3)
    # the recursion carries an error in v_{k-1} forward unchanged
    shifted = sarah_gradient(backend, thetas, previous_positions, estimate + 1.0, idx)
    np.testing.assert_allclose(_mean(backend, shifted) - _mean(backend, v), 1.0, atol=1e-4)
