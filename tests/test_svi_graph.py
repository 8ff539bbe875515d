"""Pyro fits whose steps run as one compiled graph (``ppzoo/backends/pyro_svi_graph.py``).

A compiled fit must be the eager fit: the graph replays the eager step's own
ops, random draws included, so the losses and parameters of
``jit_compile=True`` and ``jit_compile=False`` agree to float rounding, step
by step. Where a graph cannot hold the step the fit stays eager and says why.
"""

import re

import numpy as np
import pyro
import pyro.distributions as pdist
import pytest
import torch
from conftest import GAUSSIAN_LOCATION, PPCA
from ppzoo.inference import AnnealedELBO, LinearWarmup

import ppzoo
from ppzoo.backends.pyro_svi_graph import compile_step


def location_guide(x, shift=0):
    m = pyro.param("m", torch.tensor(0.0))
    s = pyro.param("s", torch.tensor(1.0), constraint=pdist.constraints.positive)
    pyro.sample("theta", pdist.Normal(m, s))


def tiny_vae():
    """A VAE with torch.nn encoder and decoder registered by pyro.module (fresh weights per call, same seed)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        encoder = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4))
        decoder = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))

    def model(x):
        pyro.module("decoder", decoder)
        scale = pyro.param("noise", torch.tensor(1.0), constraint=pdist.constraints.positive)
        with pyro.plate("data", x.shape[0]) as idx:
            z = pyro.sample("z", pdist.Normal(x.new_zeros(2), 1.0).to_event(1))
            pyro.sample("x", pdist.Normal(decoder(z), scale).to_event(1), obs=x[idx])

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", x.shape[0]) as idx:
            h = encoder(x[idx])
            pyro.sample("z", pdist.Normal(h[..., :2], torch.nn.functional.softplus(h[..., 2:])).to_event(1))

    return model, guide


def fit_both(make, data, **kwargs):
    """``(compiled, eager)`` fits from the same starting point and seed."""
    fits = []
    for jit_compile in (True, False):
        model, guide = make()
        fits.append(ppzoo.fit(model, guide, data, jit_compile=jit_compile, progress_bar=False, seed=3, **kwargs))
    return fits


def assert_same_fit(compiled, eager):
    assert compiled.losses.shape == eager.losses.shape
    np.testing.assert_allclose(compiled.losses, eager.losses, rtol=1e-5)
    assert set(compiled.params) == set(eager.params)
    for name in eager.params:
        np.testing.assert_allclose(compiled.params[name], eager.params[name], rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize(
    ("case", "make", "data", "kwargs"),
    [
        # DReG: two model replays, detached draws; a positive-constrained guide parameter; minibatches
        ("ppca-dreg-minibatch", lambda: PPCA["pyro"], "ppca", {"objective": "iwae", "num_particles": 5,
                                                                 "estimator": "dreg", "batch_size": 4}),
        # the annealing weight changes every step: a graph input, not a constant frozen at step 1
        ("location-annealed", lambda: (GAUSSIAN_LOCATION["pyro"], location_guide), "location",
         {"objective": AnnealedELBO(beta=LinearWarmup(steps=25), num_particles=2), "batch_size": 10}),
        # torch.nn weights registered with pyro.module are parameters too
        ("nn-modules-iwae", tiny_vae, "ppca", {"objective": "iwae", "num_particles": 4, "estimator": "stl"}),
    ],
)
def test_compiled_pyro_fit_is_the_eager_fit(case, make, data, kwargs, ppca_data):
    data = ppca_data if data == "ppca" else np.random.default_rng(1).normal(0.7, 1.0, size=50).astype(np.float32)
    compiled, eager = fit_both(make, data, num_steps=40, **kwargs)
    assert compiled.compiled_as == "graph", compiled.compiled_as
    assert eager.compiled_as == "eager (jit_compile=False)"
    assert_same_fit(compiled, eager)
    assert compiled.losses[-1] != compiled.losses[1]  # the parameters moved: the graph read their new values


def branchy_model(x):
    theta = pyro.sample("theta", pdist.Normal(0.0, 1.0))
    if theta > 0:  # Python control flow on a draw: a graph would freeze the branch taken while tracing
        theta = 2.0 * theta
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", pdist.Normal(theta, 1.0), obs=x)


def private_stream_model(x):
    """Noise from a generator of its own, reseeded each call: a graph would replay it from torch's global one."""
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(7))
    theta = pyro.sample("theta", pdist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", pdist.Normal(theta + 0.1 * noise, 1.0), obs=x)


def location_with_shift(x, shift=0):
    theta = pyro.sample("theta", pdist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", pdist.Normal(theta + shift, 1.0), obs=x)


@pytest.mark.parametrize(
    ("model", "kwargs", "reason"),
    [
        (branchy_model, {}, "control flow reads a value"),
        (private_stream_model, {}, "did not reproduce the eager one"),
        (location_with_shift, {"step_kwargs": lambda t: {"shift": 0.01 * t}}, r"step_kwargs gives non-tensor values for \['shift'\]"),
        (location_with_shift, {"num_steps": 19}, "fewer than 20 steps"),
    ],
)
def test_pyro_fit_stays_eager_where_a_graph_cannot_hold_the_step(model, kwargs, reason):
    data = np.random.default_rng(1).normal(0.7, 1.0, size=30).astype(np.float32)
    kwargs = {"num_steps": 30, **kwargs}
    compiled, eager = fit_both(lambda: (model, location_guide), data, **kwargs)
    assert compiled.compiled_as.startswith("eager (")
    assert re.search(reason, compiled.compiled_as), compiled.compiled_as
    assert_same_fit(compiled, eager)


def test_tensor_step_kwargs_are_graph_inputs():
    """A tensor from step_kwargs is read afresh each step, as eagerly."""
    data = np.random.default_rng(1).normal(0.7, 1.0, size=30).astype(np.float32)
    step_kwargs = lambda t: {"shift": torch.tensor(0.01 * t)}  # noqa: E731
    compiled, eager = fit_both(lambda: (location_with_shift, location_guide), data, num_steps=30, step_kwargs=step_kwargs)
    assert compiled.compiled_as == "graph"
    assert_same_fit(compiled, eager)


def test_compile_step_gradients_unused_leaves_and_changed_inputs():
    torch.manual_seed(0)
    w, b, unused = (torch.randn(3, requires_grad=True) for _ in range(3))

    def loss_fn(inputs):
        noise = torch.randn(3)  # a draw inside the step: a graph op, fresh at every call
        return ((inputs["x"] * w + b + noise) ** 2).sum() * inputs["scale"]

    inputs = {"x": torch.randn(5, 3), "scale": torch.tensor(2.0), "name": "a constant"}
    step, why = compile_step(loss_fn, [w, b, unused], inputs)
    assert why is None
    for _ in range(2):  # twice from the same random state: the graph's draws are fresh, not baked in
        new = dict(inputs, x=torch.randn(5, 3), scale=torch.tensor(0.5))
        state = torch.get_rng_state()
        expected = loss_fn(new)
        grads = torch.autograd.grad(expected, [w, b])
        torch.set_rng_state(state)
        loss, (gw, gb, gu) = step(new)
        torch.testing.assert_close(loss, expected.detach())
        torch.testing.assert_close(gw, grads[0])
        torch.testing.assert_close(gb, grads[1])
        assert gu is None
    assert step(dict(inputs, x=torch.randn(4, 3))) is None  # another shape
    assert step(dict(inputs, name="another constant")) is None
    assert step({**inputs, "extra": torch.ones(())}) is None  # another structure


def test_compile_step_reports_a_loss_without_parameters():
    w = torch.randn(2, requires_grad=True)
    step, why = compile_step(lambda inputs: inputs["x"].sum(), [w], {"x": torch.ones(2, requires_grad=False)})
    assert step is None and "does not depend on the parameters" in why
