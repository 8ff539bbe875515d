"""The gradient oracle: potentials against hand-computed log joints and the PPLs' own."""

import numpy as np
import pytest
import scipy.stats as st
from conftest import LINEAR_REGRESSION

from ppzoo.backends import detect_backend, make_backend

BACKENDS = ["numpyro", "pyro"]


def _idx(backend, idx):
    idx = np.asarray(idx)
    if backend.name == "numpyro":
        import jax.numpy as jnp

        return jnp.asarray(idx)
    import torch

    return torch.as_tensor(idx, dtype=torch.long)


def _hand_potential(theta, x, y, idx):
    """-log p(b, sigma, w) - log|J| - (N/B) sum_idx log N(y_i | x_i w + b, sigma); theta = [b, log sigma, w]."""
    b, log_sigma, w = theta[0], theta[1], theta[2:]
    sigma = np.exp(log_sigma)
    log_prior = st.norm.logpdf(w).sum() + st.norm.logpdf(b) + st.halfnorm.logpdf(sigma) + log_sigma
    lik = st.norm.logpdf(y[idx], x[idx] @ w + b, sigma).sum()
    return -log_prior - len(y) / len(idx) * lik


@pytest.mark.parametrize("name", BACKENDS)
def test_detects_each_ppl(name, regression_data):
    x, y = regression_data
    assert detect_backend(LINEAR_REGRESSION[name], (x,), {"y": y}) == name


@pytest.mark.parametrize("name", BACKENDS)
def test_potential_equals_hand_computed_log_joint(name, regression_data):
    x, y = regression_data
    backend = make_backend(LINEAR_REGRESSION[name], (x,), {"y": y})
    assert [s.name for s in backend.layout.latent] == ["b", "sigma", "w"]
    assert backend.num_data == 60 and backend.dim == 5
    rng = np.random.default_rng(1)
    theta = rng.uniform(-1, 1, (3, 5))
    idx = np.stack([rng.choice(60, 12, replace=False) for _ in range(3)])
    got = backend.to_numpy(backend.potential(backend.asarray(theta), _idx(backend, idx)))
    want = [_hand_potential(theta[c], x.astype(np.float64), y.astype(np.float64), idx[c]) for c in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    full = backend.to_numpy(backend.full_potential(backend.asarray(theta)))
    want_full = [_hand_potential(theta[c], x.astype(np.float64), y.astype(np.float64), np.arange(60)) for c in range(3)]
    np.testing.assert_allclose(full, want_full, rtol=1e-5)


def test_backends_agree_on_potential_and_gradient(regression_data):
    x, y = regression_data
    nb = make_backend(LINEAR_REGRESSION["numpyro"], (x,), {"y": y})
    pb = make_backend(LINEAR_REGRESSION["pyro"], (x,), {"y": y})
    rng = np.random.default_rng(2)
    theta = rng.uniform(-1, 1, (4, 5))
    idx = rng.integers(0, 60, (4, 7))
    for fn in ("potential", "grad"):
        a = nb.to_numpy(getattr(nb, fn)(nb.asarray(theta), _idx(nb, idx)))
        b = pb.to_numpy(getattr(pb, fn)(pb.asarray(theta), _idx(pb, idx)))
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        nb.to_numpy(nb.full_grad(nb.asarray(theta))), pb.to_numpy(pb.full_grad(pb.asarray(theta))), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("name", BACKENDS)
def test_minibatch_estimate_averages_to_full_potential_over_a_partition(name, regression_data):
    x, y = regression_data
    backend = make_backend(LINEAR_REGRESSION[name], (x,), {"y": y})
    theta = backend.asarray(np.random.default_rng(3).uniform(-1, 1, (1, 5)))
    perm = np.random.default_rng(4).permutation(60).reshape(5, 12)  # 5 minibatches of B = 12
    pots = [backend.to_numpy(backend.potential(theta, _idx(backend, part[None]))) for part in perm]
    grads = [backend.to_numpy(backend.grad(theta, _idx(backend, part[None]))) for part in perm]
    np.testing.assert_allclose(np.mean(pots, axis=0), backend.to_numpy(backend.full_potential(theta)), rtol=1e-5)
    np.testing.assert_allclose(np.mean(grads, axis=0), backend.to_numpy(backend.full_grad(theta)), rtol=1e-4, atol=1e-3)
    # a single minibatch is not the full potential (the test can fail)
    assert not np.allclose(pots[0], pots[1], rtol=1e-3)


def numpyro_constrained(y):
    import numpyro
    import numpyro.distributions as dist

    scale = numpyro.sample("scale", dist.HalfNormal(2.0))
    probs = numpyro.sample("probs", dist.Dirichlet(np.ones(3, dtype=np.float32)))
    loc = numpyro.sample("loc", dist.Uniform(-1.0, 3.0))
    with numpyro.plate("data", y.shape[0]) as idx:
        numpyro.sample("y", dist.Normal(loc + probs[0] - probs[2], scale), obs=y[idx])


def pyro_constrained(y):
    import pyro
    import pyro.distributions as dist
    import torch

    scale = pyro.sample("scale", dist.HalfNormal(2.0))
    probs = pyro.sample("probs", dist.Dirichlet(torch.ones(3)))
    loc = pyro.sample("loc", dist.Uniform(-1.0, 3.0))
    with pyro.plate("data", y.shape[0]) as idx:
        pyro.sample("y", dist.Normal(loc + probs[0] - probs[2], scale), obs=y[idx])


CONSTRAINED = {"numpyro": numpyro_constrained, "pyro": pyro_constrained}


def _ppl_potential(name, model, y, theta, backend):
    """The PPL's own full-data potential energy at unconstrained values."""
    unconstrained = {
        s.name: theta[s.offset : s.offset + s.size].reshape(s.unconstrained_shape) for s in backend.layout.latent
    }
    if name == "numpyro":
        import jax.numpy as jnp
        from numpyro.infer.util import potential_energy

        params = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in unconstrained.items()}
        return float(potential_energy(model, (jnp.asarray(y),), {}, params))
    import torch
    from pyro.infer.mcmc.util import initialize_model

    _, potential_fn, _, _ = initialize_model(model, model_args=(torch.as_tensor(y),))
    return float(potential_fn({k: torch.as_tensor(v, dtype=torch.float32) for k, v in unconstrained.items()}))


@pytest.mark.parametrize("name", BACKENDS)
def test_constrained_sites_round_trip_and_match_the_ppl_potential(name):
    y = np.random.default_rng(5).normal(0.5, 1.5, 40).astype(np.float32)
    model = CONSTRAINED[name]
    backend = make_backend(model, (y,), {})
    layout = {s.name: s for s in backend.layout.latent}
    assert layout["probs"].unconstrained_shape == (2,) and layout["probs"].shape == (3,)
    theta = np.random.default_rng(6).uniform(-1.5, 1.5, (3, backend.dim))
    values = backend.constrain(theta)
    assert np.all(values["scale"] > 0)
    assert np.all((values["loc"] > -1) & (values["loc"] < 3))
    np.testing.assert_allclose(values["probs"].sum(-1), 1.0, rtol=1e-5)
    back = backend.to_numpy(backend.unconstrain(values))
    np.testing.assert_allclose(back, theta, rtol=1e-4, atol=1e-4)
    ours = backend.to_numpy(backend.full_potential(backend.asarray(theta)))
    theirs = [_ppl_potential(name, model, y, theta[c], backend) for c in range(3)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


@pytest.mark.parametrize("name", BACKENDS)
def test_per_datum_log_likelihood(name, regression_data):
    x, y = regression_data
    backend = make_backend(LINEAR_REGRESSION[name], (x,), {"y": y})
    theta = np.random.default_rng(7).uniform(-1, 1, (2, 5))
    loglik = backend.log_likelihood(theta)["y"]
    assert loglik.shape == (2, 60)
    b, sigma, w = theta[:, 0], np.exp(theta[:, 1]), theta[:, 2:]
    want = st.norm.logpdf(y[None], (x @ w.T).T + b[:, None], sigma[:, None])
    np.testing.assert_allclose(loglik, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(backend.observed_data()["y"], y)


def _pyro_inplace(y):
    """A latent written into a fresh tensor in place: ``vmap`` cannot batch that write."""
    import pyro
    import pyro.distributions as dist
    import torch

    loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    scale = pyro.sample("scale", dist.HalfNormal(1.0))
    params = torch.zeros(2)
    params[0], params[1] = loc, scale
    with pyro.plate("data", y.shape[0]) as idx:
        pyro.sample("y", dist.Normal(params[0], params[1]), obs=y[idx])


@pytest.mark.parametrize(
    "entry, expected", [(name, "vmap") for name in ("logistic_regression", "eight_schools", "probabilistic_pca")]
    + [("inplace", "per-chain forward")],
)
def test_pyro_compiled_gradient_equals_eager(entry, expected):
    """The compiled chain-batched gradient (or its per-chain fallback) equals the eager per-chain one."""
    import torch

    from ppzoo import models

    if entry == "inplace":
        y = np.random.default_rng(8).normal(0.5, 1.5, 30).astype(np.float32)
        model, args, kwargs = _pyro_inplace, (y,), {}
    else:
        spec = models.get(entry)
        args, kwargs = spec.load_data()
        model = spec.pyro_model
    from ppzoo.backends.pyro_backend import PyroBackend

    compiled = PyroBackend(model, args, kwargs)
    eager = PyroBackend(model, args, kwargs, jit_compile=False)
    rng = np.random.default_rng(9)
    theta = torch.as_tensor(rng.uniform(-1, 1, (3, compiled.dim)), dtype=torch.float32)
    idx = torch.as_tensor(rng.integers(0, compiled.num_data, (3, 5)))
    for _ in range(3):  # the first calls trace and profile the graph; later ones run it
        value, grad = compiled._value_and_grad(compiled._potential_single, theta, idx)
    assert set(compiled.compiled_as.values()) == {expected}
    want_value, want_grad = eager._value_and_grad(eager._potential_single, theta, idx)
    np.testing.assert_allclose(value.numpy(), want_value.numpy(), rtol=1e-5)
    np.testing.assert_allclose(grad.numpy(), want_grad.numpy(), rtol=1e-4, atol=1e-4 * float(want_grad.abs().max()))


def _hand_hessian(theta, x, y):
    """The Hessian of ``_hand_potential`` on all the data at ``theta = [b, log sigma, w]``, worked
    out by hand: with ``z_i = (1, x_i)``, ``beta = (b, w)`` and ``r_i = y_i - z_i . beta``,
    ``d2U/dbeta2 = I + sum z z' / sigma^2``, ``d2U/dbeta ds = 2 sum z r / sigma^2`` and
    ``d2U/ds2 = 2 sum r^2 / sigma^2 + 2 sigma^2`` (the half-normal prior's ``sigma^2 / 2``)."""
    b, s, w = theta[0], theta[1], theta[2:]
    sigma2 = np.exp(2 * s)
    z = np.concatenate([np.ones((len(y), 1)), x], axis=1)
    r = y - x @ w - b
    h_beta = np.eye(z.shape[1]) + z.T @ z / sigma2
    h_cross = 2 * z.T @ r / sigma2
    h_s = 2 * np.sum(r**2) / sigma2 + 2 * sigma2
    order = [0, *range(2, len(theta))]  # theta's positions of (b, w)
    h = np.empty((len(theta), len(theta)))
    h[np.ix_(order, order)] = h_beta
    h[order, 1] = h[1, order] = h_cross
    h[1, 1] = h_s
    return h


@pytest.mark.parametrize("name, jit_compile", [("numpyro", True), ("pyro", True), ("pyro", False)])
def test_full_hessian_vector_products_equal_the_hand_computed_hessian(name, jit_compile):
    """``full_hvp`` over more data than one chunk (4,096), compiled and eager, against the Hessian
    worked out by hand, at three points with three directions."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5000, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -0.5, 0.25]) + 0.3 + 0.5 * rng.standard_normal(5000)).astype(np.float32)
    backend = make_backend(LINEAR_REGRESSION[name], (x,), {"y": y}, jit_compile=jit_compile)
    theta = rng.uniform(-1, 1, (3, 5)) * [0.5, 0.3, 1, 1, 1] + [0.3, np.log(0.5), 1, -0.5, 0.25]
    v = rng.standard_normal((3, 5))
    for _ in range(2):  # the first call compiles and checks the graphs, the second runs them
        got = np.asarray(backend.to_numpy(backend.full_hvp(backend.asarray(theta), backend.asarray(v))))
    want = np.stack([_hand_hessian(theta[c], x.astype(np.float64), y.astype(np.float64)) @ v[c] for c in range(3)])
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())
    if name == "pyro":
        assert set(backend.compiled_as.values()) == ({"vmap"} if jit_compile else set())


def test_full_gradient_over_several_chunks_agrees_across_backends_and_with_eager():
    """The full-data gradient summed over chunks (5,000 data, chunks of 4,096 shared by the chains)
    is the same compiled and eager on Pyro and on NumPyro, at chains in different places."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5000, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -0.5, 0.25]) + 0.3 + 0.5 * rng.standard_normal(5000)).astype(np.float32)
    theta = rng.uniform(-1, 1, (4, 5))
    grads = {}
    for name, jit_compile in (("numpyro", True), ("pyro", True), ("pyro", False)):
        backend = make_backend(LINEAR_REGRESSION[name], (x,), {"y": y}, jit_compile=jit_compile)
        for _ in range(2):  # the first call compiles and checks the graphs, the second runs them
            grads[name, jit_compile] = np.asarray(backend.to_numpy(backend.full_grad(backend.asarray(theta))))
        if name == "pyro" and jit_compile:
            assert set(backend.compiled_as.values()) == {"vmap"}
    scale = np.abs(grads["numpyro", True]).max()
    assert not np.allclose(grads["numpyro", True][0], grads["numpyro", True][1], atol=1e-3 * scale)  # chains differ
    for key in (("pyro", True), ("pyro", False)):
        np.testing.assert_allclose(grads[key], grads["numpyro", True], rtol=1e-4, atol=1e-5 * scale)


def _grouped_model(x, g, levels, y=None):
    import numpyro
    import numpyro.distributions as dist

    num_groups = len(np.unique(np.asarray(levels)))  # reads an argument's values in Python (NumPy)
    a = numpyro.sample("a", dist.Normal(0.0, 1.0).expand([num_groups]).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(a[g] + x, 1.0), obs=y)


def test_numpyro_data_are_compiled_as_arguments_unless_the_program_reads_them():
    """Closed-over arrays would be compile-time constants (compile time and a copy of the data per
    executable, both growing with N); a program that reads its data's values keeps them so, and
    both ways give the same potential and gradient."""
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(300), dtype=jnp.float32)
    g = jnp.asarray(rng.integers(0, 3, 300))
    y = jnp.asarray(rng.standard_normal(300), dtype=jnp.float32)
    levels = jnp.asarray([0, 1, 2, 2])
    reading = make_backend(_grouped_model, (x, g, levels), {"y": y})
    assert not reading._data_as_arguments

    import numpyro
    import numpyro.distributions as dist

    def model(x, g, levels, y=None):
        a = numpyro.sample("a", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("y", dist.Normal(a[g] + x, 1.0), obs=y)

    plain = make_backend(model, (x, g, levels), {"y": y})
    assert plain._data_as_arguments and len(plain._data_leaves()) == 4
    theta = jnp.asarray(rng.standard_normal((2, 3)), dtype=jnp.float32)
    idx = jnp.asarray(rng.integers(0, 300, (2, 40)))
    for method, operands in (("potential", (theta, idx)), ("grad", (theta, idx)), ("full_grad", (theta,)),
                             ("full_potential", (theta,))):
        np.testing.assert_allclose(getattr(plain, method)(*operands), getattr(reading, method)(*operands),
                                   rtol=1e-5, atol=1e-4, err_msg=method)
