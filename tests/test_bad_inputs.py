"""Every row of the bad-input table (``tests/bad_inputs.py``) on both PPLs: the call, good but for the
row's argument, raises the row's error with the row's message; and ``docs/bad_inputs.md`` is the
table as it is."""

import re
import warnings

import numpy as np
import numpyro
import numpyro.distributions as ndist
import numpyro.optim
import pyro
import pyro.distributions as pdist
import pyro.optim
import pytest
import torch
from bad_inputs import DOC, ROWS, Data, Misspelt, WrongPPL, render
from numpyro.infer import autoguide as nag
from pyro.infer import autoguide as pag

import ppzoo
from ppzoo.diagnostics.fit_convergence import FitConvergenceWarning


def numpyro_location(x):
    theta = numpyro.sample("theta", ndist.Normal(0.0, 1.0).expand([2]).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("x", ndist.Normal(theta, 1.0).to_event(1), obs=x)


def pyro_location(x):
    theta = pyro.sample("theta", pdist.Normal(0.0, 1.0).expand([2]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", pdist.Normal(theta, 1.0).to_event(1), obs=x)


def numpyro_regression(x, y=None):
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([3]).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", ndist.Normal(x @ w, 1.0), obs=y)


def pyro_regression(x, y=None):
    w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([3]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Normal(x @ w, 1.0), obs=y)


MODEL = {"numpyro": numpyro_location, "pyro": pyro_location}
REGRESSION = {"numpyro": numpyro_regression, "pyro": pyro_regression}
OTHER = {"numpyro": "pyro", "pyro": "numpyro"}


def to_ppl(backend, x):
    return torch.as_tensor(x) if backend == "pyro" else x


def data(backend):
    return to_ppl(backend, np.random.default_rng(3).normal([0.7, -0.4], 1.0, size=(40, 2)).astype(np.float32))


def guide_of(backend, name="AutoNormal"):
    return getattr(pag if backend == "pyro" else nag, name)(MODEL[backend])


def resolve(backend, argument, value, fits=None):
    """The row's value in this PPL's terms."""
    if isinstance(value, Misspelt):
        params = dict(fits[backend].params)
        first = next(iter(params))
        return {**{k: v for k, v in params.items() if k != first}, first + first[-1]: params[first]}
    if isinstance(value, Data):
        return to_ppl(backend, value.make(np.random.default_rng(0)))
    if isinstance(value, WrongPPL):
        other = OTHER[backend]
        if argument == "backend":
            return other
        if argument == "optimizer":
            return pyro.optim.Adam({"lr": 0.01}) if other == "pyro" else numpyro.optim.Adam(0.01)
        if argument == "guide":
            return guide_of(other)
    if argument == "guide" and value == "AutoDelta":
        return guide_of(backend, "AutoDelta")
    return value


@pytest.fixture(scope="module")
def fits():
    """One short fit per PPL, for the rows of ``Fit``'s methods."""
    out = {}
    for backend in MODEL:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitConvergenceWarning)
            out[backend] = ppzoo.fit(MODEL[backend], guide_of(backend), data(backend), num_steps=2, progress_bar=False)
    return out


def regression_call(row, backend, value):
    """A row about the regression's per-datum arguments: ``x`` 40 x 3, ``y`` replaced."""
    rng = np.random.default_rng(1)
    model = REGRESSION[backend]
    x = to_ppl(backend, rng.normal(size=(40, 3)).astype(np.float32))
    guide = (pag if backend == "pyro" else nag).AutoNormal(model)
    if row.function == "fit":
        return ppzoo.fit(model, guide, x, y=value, num_steps=2, progress_bar=False)
    if row.function == "log_marginal_likelihood":
        return ppzoo.log_marginal_likelihood(model, guide, None, x, y=value, num_samples=10)
    raise AssertionError(f"no regression call for {row.function}")


def call(row, backend, fits):
    value = resolve(backend, row.argument, row.value, fits)
    if row.model == "regression":
        return regression_call(row, backend, value)
    model = MODEL[backend]
    if row.function == "fit":
        kwargs = {"num_steps": 2, "progress_bar": False}
        guide, x = guide_of(backend), data(backend)
        if row.argument == "guide":
            guide = value
        elif row.argument == "x":
            x = value
        else:
            kwargs[row.argument] = value
        return ppzoo.fit(model, guide, x, **kwargs)
    if row.function.startswith("Fit."):
        return getattr(fits[backend], row.function[4:])(**{row.argument: value})
    if row.function == "log_marginal_likelihood":
        guide, x = guide_of(backend), data(backend)
        params, kwargs = dict(fits[backend].params), {"num_samples": 10}
        if row.argument == "guide":
            guide = value
            params = {}
        elif row.argument == "x":
            x = value
        elif row.argument == "params":
            params = value
        else:
            kwargs[row.argument] = value
        return ppzoo.log_marginal_likelihood(model, guide, params, x, **kwargs)
    raise AssertionError(f"no call for {row.function}")


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
@pytest.mark.parametrize("row", ROWS, ids=[f"{r.function}-{r.argument}-{r.label}" for r in ROWS])
def test_a_bad_input_gets_a_clear_error(row, backend, fits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitConvergenceWarning)
        with pytest.raises(row.error, match=row.match) as caught:
            call(row, backend, fits)
    # the message names the argument, or the data site it concerns
    assert re.search(rf"\b{row.argument}\b", str(caught.value)), str(caught.value)


def test_the_documented_table_is_the_table():
    assert DOC.read_text() == render(), "run python tests/bad_inputs.py"
