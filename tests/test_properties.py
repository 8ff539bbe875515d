"""Property tests of the front doors: whatever data or program they are given, ``ppzoo.sample`` and
``ppzoo.fit`` either succeed with finite results of the right shape, or raise an error that names
the argument or site at fault: a ``ValueError`` / ``TypeError`` from ppzoo's checks, or the
program's own error, re-raised with the program, its PPL and the statement it raised at. Never a
bare internal error (``IndexError``, ``AssertionError``, ``OverflowError`` from deep inside), never
a silently wrong result (data of the wrong length accepted), and never "neither a Pyro nor a NumPyro
program" for a program that merely raised.

Examples are drawn with a fixed seed (``derandomize=True``) and kept few and tiny (no warmup, a few
draws, a given step size, no adaptation): the file runs in well under 30 s.
"""

import re
import warnings

import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpyro.infer import autoguide as nag
from pyro.infer import autoguide as pag

import ppzoo
from ppzoo.diagnostics import arviz_compat

SAMPLE = dict(method="sgld", num_warmup=0, num_samples=3, step_size=1e-3, adapt=False, progress_bar=False,
              log_likelihood=False, thinning=1)


def quick(max_examples):
    return settings(derandomize=True, deadline=None, max_examples=max_examples, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def numpyro_regression(x, y=None):
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", ndist.Normal(x @ w, 1.0), obs=y)


def pyro_regression(x, y=None):
    w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Normal(x @ w, 1.0), obs=y)


REGRESSION = {"numpyro": numpyro_regression, "pyro": pyro_regression}
DTYPES = ["float32", "float64", "float16", "int32", "int64", "bool", "object"]


@st.composite
def regression_data(draw):
    """``x`` ``(N, k)`` and ``y`` ``(M,)`` of drawn dtypes, ``M`` usually ``N``, maybe a NaN / inf
    somewhere in either; and what is wrong with them (``None``: nothing)."""
    n = draw(st.sampled_from([1, 5, 12, 2, 0]))
    k = draw(st.sampled_from([1, 3]))
    m = draw(st.sampled_from([n] * 5 + [0, 1, n + 3]))
    x_dtype = draw(st.sampled_from(["float32"] * 3 + DTYPES))
    y_dtype = draw(st.sampled_from(["float32"] * 3 + DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.normal(size=(n, k)).astype(x_dtype)
    y = rng.normal(size=m).astype(y_dtype)
    bad = draw(st.sampled_from([None] * 4 + ["x", "y"]))
    if bad is not None:
        target = x if bad == "x" else y
        if target.size and target.dtype.kind == "f":
            target.flat[draw(st.integers(0, target.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        else:
            bad = None
    return x, y, bad


def problems(x, y, nonfinite) -> set:
    """The arguments a call must refuse (empty: it may succeed)."""
    found = set()
    if x.dtype == object or x.shape[0] == 0 or nonfinite == "x":
        found.add("x")
    if y.dtype == object or y.shape[0] == 0 or y.shape[0] != x.shape[0] or nonfinite == "y":
        found.add("y")
    return found


def check_outcome(call, ppl, x, y, nonfinite):
    """Run ``call``; a refusal must name what is wrong; a success needs good data (a silently
    accepted bad input fails here). Returns the result of a success, else ``None``."""
    wrong = problems(x, y, nonfinite)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = call()
    except Exception as err:  # noqa: BLE001 - what it is, is the property
        message = str(err)
        assert "neither a Pyro nor a NumPyro program" not in message, message
        named = {a for a in ("x", "y") if re.search(rf"\b{a}\b", message)}
        assert named, message
        if re.match(rf"model '{ppl}_regression' \({ppl}\) raised {type(err).__name__} ", message):
            # the program's own error (torch does not multiply integers by floats), re-raised with where
            # it was and the argument that caused it
            return None
        assert isinstance(err, (ValueError, TypeError)), repr(err)  # ppzoo's own check
        assert not wrong or named & wrong, (wrong, message)
        return None
    assert not wrong, f"accepted bad {wrong}: x {x.dtype} {x.shape}, y {y.dtype} {y.shape}"
    return result


@quick(10)
@given(regression_data(), st.sampled_from([1, 2]))
def test_sample_on_any_data_succeeds_or_names_the_argument(drawn, num_chains):
    x, y, nonfinite = drawn
    idata = check_outcome(
        lambda: ppzoo.sample(numpyro_regression, x, y=y, num_chains=num_chains, **SAMPLE), "numpyro", x, y, nonfinite
    )
    if idata is not None:
        w = np.asarray(arviz_compat.get_group(idata, "posterior")["w"])
        assert w.shape == (num_chains, 3, x.shape[1]) and np.all(np.isfinite(w))


@quick(4)
@given(regression_data())
def test_pyro_sample_on_any_data_succeeds_or_names_the_argument(drawn):
    x, y, nonfinite = drawn
    idata = check_outcome(lambda: ppzoo.sample(pyro_regression, x, y=y, num_chains=2, **SAMPLE), "pyro", x, y, nonfinite)
    if idata is not None:
        w = np.asarray(arviz_compat.get_group(idata, "posterior")["w"])
        assert w.shape == (2, 3, x.shape[1]) and np.all(np.isfinite(w))


@quick(5)
@given(regression_data(), st.sampled_from(["numpyro", "pyro", "pyro"]))
def test_fit_on_any_data_succeeds_or_names_the_argument(drawn, ppl):
    x, y, nonfinite = drawn
    model = REGRESSION[ppl]
    guide = (pag if ppl == "pyro" else nag).AutoNormal(model)
    fit = check_outcome(lambda: ppzoo.fit(model, guide, x, y=y, num_steps=3, progress_bar=False), ppl, x, y, nonfinite)
    if fit is not None:
        assert all(np.all(np.isfinite(np.asarray(v))) for v in fit.params.values())


@quick(10)
@given(
    st.sampled_from(["numpyro", "pyro"]),
    st.sampled_from(["x", "y"]),
    st.sampled_from([np.nan, np.inf, -np.inf]),
    st.integers(1, 12),
    st.integers(0, 10**6),
    st.booleans(),
)
def test_a_nan_or_inf_anywhere_is_named(ppl, where, value, n, position, fitting):
    """One non-finite value anywhere in a covariate or an observation: refused, naming it, with the count."""
    rng = np.random.default_rng(position)
    x, y = rng.normal(size=(n, 2)).astype(np.float32), rng.normal(size=n).astype(np.float32)
    target = x if where == "x" else y
    target.flat[position % target.size] = value
    model = REGRESSION[ppl]
    with pytest.raises(ValueError) as caught:
        if fitting:
            ppzoo.fit(model, (pag if ppl == "pyro" else nag).AutoNormal(model), x, y=y, num_steps=2, progress_bar=False)
        else:
            ppzoo.sample(model, x, y=y, num_chains=1, **SAMPLE)
    named = (rf"x contains NaN or infinite values \(1 of {x.size}\)" if where == "x"
             else rf"observed site 'y' contains NaN or infinite values \(1 of {n}\)")
    assert re.search(named, str(caught.value)), str(caught.value)


class Odd(Exception):
    """An exception whose constructor takes other arguments than a message."""

    def __init__(self, code, detail):
        super().__init__(code, detail)


EXCEPTIONS = [ValueError, TypeError, KeyError, IndexError, ZeroDivisionError, RuntimeError, AssertionError,
              OverflowError, NotImplementedError, LookupError, Odd]
#: where the program raises: before any statement, after the latent 'mu', inside the plate, after 'y'
PLACES = ["first", "after mu", "in plate", "last"]


def raising_program(ppl, exception, place, text):
    """A regression on ``y`` written in ``ppl`` that raises ``exception`` at ``place``."""
    lib, dist = (numpyro, ndist) if ppl == "numpyro" else (pyro, pdist)

    def boom():
        raise exception(1, text) if exception is Odd else exception(text)

    def program(y):
        if place == "first":
            boom()
        mu = lib.sample("mu", dist.Normal(0.0, 1.0))
        if place == "after mu":
            boom()
        with lib.plate("data", y.shape[0]):
            if place == "in plate":
                boom()
            lib.sample("y", dist.Normal(mu, 1.0), obs=y)
        if place == "last":
            boom()

    program.__name__ = program.__qualname__ = f"{ppl}_raising"
    return program


@quick(30)
@given(
    st.sampled_from(["numpyro", "pyro"]),
    st.sampled_from(EXCEPTIONS),
    st.sampled_from(PLACES),
    st.text(alphabet="abcdefgh xyz\n", max_size=12),
    st.sampled_from(["sample", "fit"]),
)
def test_a_program_that_raises_is_named_with_where_it_raised(ppl, exception, place, text, function):
    program = raising_program(ppl, exception, place, text)
    y = np.linspace(-1.0, 1.0, 8).astype(np.float32)
    with pytest.raises(Exception) as caught:  # noqa: B017 - which exception is the property
        if function == "sample":
            ppzoo.sample(program, y, num_chains=1, **SAMPLE)
        else:
            ppzoo.fit(program, (pag if ppl == "pyro" else nag).AutoNormal(program), y, num_steps=2, progress_bar=False)
    err, message = caught.value, str(caught.value)
    assert "neither a Pyro nor a NumPyro program" not in message, message
    # the program's own class (or a ValueError for one that takes other arguments), and where
    assert type(err) is (ValueError if exception is Odd else exception), repr(err)
    where = ("before any Pyro or NumPyro statement" if place == "first"
             else rf"\({ppl}\) raised {exception.__name__} (at|after) its statement '(mu|data|y)'")
    assert re.search(rf"model '{ppl}_raising' ", message) and re.search(where, message), message


@pytest.mark.parametrize("ppl", ["numpyro", "pyro"])
def test_one_datum_is_enough(ppl):
    """N = 1: a posterior of the right shape, not an error (fits of N = 1 are drawn above)."""
    x = np.array([[0.5, -1.0]], dtype=np.float32)
    y = np.array([0.3], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = ppzoo.sample(REGRESSION[ppl], x, y=y, num_chains=2, **SAMPLE)
    w = np.asarray(arviz_compat.get_group(idata, "posterior")["w"])
    assert w.shape == (2, 3, 2) and np.all(np.isfinite(w))


def test_torch_tensors_of_any_float_dtype_are_taken():
    """A float16 or float64 tensor passed to a Pyro program is taken in the default dtype, as NumPy arrays are."""
    x = torch.randn(6, 2, dtype=torch.float64)
    y = torch.randn(6, dtype=torch.float16)
    idata = ppzoo.sample(pyro_regression, x, y=y, num_chains=1, **SAMPLE)
    assert np.all(np.isfinite(np.asarray(arviz_compat.get_group(idata, "posterior")["w"])))
