"""Compiled Pyro graphs never change the answer: Python control flow on a parameter runs eagerly.

A traced graph keeps the branch the model took where it was traced; per-chain
traces then give every chain its own posterior (the issue: a pooled mean of
-1.50 against an exact -0.586). The backend's guard (ppzoo/backends/pyro_guard.py)
finds such a model before its first draw (a probe of parameter reads) or at a
scheduled comparison with eager, and runs eagerly with one RuntimeWarning.
"""

import functools
import warnings

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy import integrate, stats

import ppzoo
from ppzoo.backends import make_backend
from ppzoo.backends.pyro_backend import PyroBackend

SLOPE = 10.0  # the factor's slope on w > 0
Y = np.random.default_rng(0).normal(0.3, 1.0, 20).astype(np.float32)
GUARD_WARNING = "value-dependent Python control flow in the model"


def factor_branch(y):
    """A factor on one side of 0, by a Python ``if`` on the parameter."""
    w = pyro.sample("w", dist.Normal(0.0, 1.0))
    if w > 0:
        pyro.factor("f", -SLOPE * w)
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(w, 1.0), obs=y)


def plate_branch(y):
    """A tensor-valued condition inside the data plate, reduced to a Python bool."""
    w = pyro.sample("w", dist.Normal(0.0, 1.0))
    with pyro.plate("data", y.shape[0]):
        loc = w.expand(y.shape)
        if (loc > 0).all():
            loc = 0.5 * loc
        pyro.sample("y", dist.Normal(loc, 1.0), obs=y)


def factor_where(y):
    """``factor_branch`` with ``torch.where``: one graph holds both branches."""
    w = pyro.sample("w", dist.Normal(0.0, 1.0))
    pyro.factor("f", torch.where(w > 0, -SLOPE * w, torch.zeros(())))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(w, 1.0), obs=y)


def _log_density(model, w):
    y = Y.astype(np.float64)
    prior = stats.norm.logpdf(w)
    if model is plate_branch:
        return prior + stats.norm.logpdf(y, 0.5 * w if w > 0 else w, 1.0).sum()
    return prior + stats.norm.logpdf(y, w, 1.0).sum() - (SLOPE * w if w > 0 else 0.0)


def exact_mean(model):
    """The posterior mean of w by quadrature, split at the kink."""
    peak = max(_log_density(model, w) for w in np.linspace(-3, 3, 601))
    mass = [integrate.quad(lambda w: np.exp(_log_density(model, w) - peak), *ab)[0] for ab in ((-6, 0), (0, 6))]
    moment = [integrate.quad(lambda w: w * np.exp(_log_density(model, w) - peak), *ab)[0] for ab in ((-6, 0), (0, 6))]
    return sum(moment) / sum(mass)


#: per model: full-batch SGLD with a fixed step small enough that its discretisation bias stays well
#: below the test's resolution (the plate model's posterior is wider for w > 0: a longer step)
STEP = {"factor_branch": 0.005, "plate_branch": 0.01, "factor_where": 0.005}
pytestmark = [
    pytest.mark.xdist_group("compiled_guard"),  # one worker, so that the runs below are shared
    # detecting the PPL runs the programs outside Pyro's handlers once, where pyro.factor says so
    pytest.mark.filterwarnings("ignore:trying to observe a value outside of inference:RuntimeWarning"),
]


@functools.cache
def run(name, probe=True, check=True, jit_compile=True, num_samples=1000):
    """``(posterior of w (chain, draw), ESS, MCSE, the guard's warnings)`` of a 4-chain run of a model
    of this file, the guard's parts switched as asked."""
    model = globals()[name]
    settings = dict(method="sgld", step_size=STEP[name], batch_size=len(Y), num_chains=4, num_warmup=200,
                    num_samples=num_samples, thinning=1, seed=0, progress_bar=False, log_likelihood=False)
    saved = PyroBackend.probe_control_flow, PyroBackend.check_compiled
    PyroBackend.probe_control_flow, PyroBackend.check_compiled = probe, check
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            idata = ppzoo.sample(model, torch.as_tensor(Y), backend="pyro", jit_compile=jit_compile, **settings)
    finally:
        PyroBackend.probe_control_flow, PyroBackend.check_compiled = saved
    ess, mcse = (float(f(idata, var_names=["w"])["w"]) for f in (az.ess, az.mcse))
    warned = [str(w.message) for w in caught if GUARD_WARNING in str(w.message)]
    return np.asarray(idata.posterior["w"]), ess, mcse, warned


@pytest.mark.parametrize(
    "name, guard", [("factor_branch", "probe"), ("plate_branch", "probe"), ("factor_branch", "schedule")]
)
def test_control_flow_on_a_parameter_gives_the_exact_posterior_mean(name, guard):
    """The probe of parameter reads finds the model before tracing; without it, the scheduled
    comparison with eager finds it. Either way the pooled mean is the exact one."""
    w, ess, mcse, warned = run(name, probe=guard == "probe")
    # the run resolves the mean: chains left on different branches have a large MCSE and fail here
    assert ess > 150 and mcse < 0.03, (ess, mcse)
    exact = exact_mean(globals()[name])
    assert abs(w.mean() - exact) < 4 * mcse, (w.mean(), exact, mcse)
    assert len(warned) == 1, warned
    assert "running eagerly; pass jit_compile=False to skip the compiled graph" in warned[0]
    if guard == "probe":  # names the line that reads the parameter
        assert f"{__file__}:" in warned[0] and "(__bool__)" in warned[0], warned[0]
    else:
        assert "disagreed with an eager run" in warned[0], warned[0]


def test_guarded_run_is_the_eager_run():
    """Found before the first draw, the guarded run draws exactly what jit_compile=False draws."""
    guarded, *_, warned = run("factor_branch")
    eager, *_, eager_warned = run("factor_branch", jit_compile=False)
    assert len(warned) == 1 and not eager_warned
    np.testing.assert_array_equal(guarded, eager)


def test_torch_where_keeps_the_compiled_graph():
    w, _, mcse, warned = run("factor_where")
    assert not warned
    assert abs(w.mean() - exact_mean(factor_branch)) < max(4 * mcse, 0.01)
    backend = make_backend(factor_where, (torch.as_tensor(Y),), backend="pyro")
    backend.grad(torch.zeros((4, 1)), torch.arange(len(Y)).expand(4, -1))
    assert set(backend.compiled_as.values()) == {"vmap"} and backend.eager_reason is None


def test_jit_compile_false_runs_eagerly_and_agrees():
    compiled, *_ = run("factor_where", num_samples=200)
    eager, *_, warned = run("factor_where", jit_compile=False, num_samples=200)
    assert not warned
    np.testing.assert_allclose(eager, compiled, rtol=1e-3, atol=1e-4)


def test_jit_compile_is_checked():
    with pytest.raises(TypeError, match="jit_compile"):
        ppzoo.sample(factor_where, torch.as_tensor(Y), jit_compile="yes")
