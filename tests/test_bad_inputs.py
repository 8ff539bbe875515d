"""Every row of the bad-input table (``tests/bad_inputs.py``): the call, good but for the row's
argument, raises the row's error with the row's message, which names the argument (or the data site
it concerns); rows of ``sample``, ``fit``, ``Fit``'s methods and ``log_marginal_likelihood`` on both
PPLs, those of the kernels, schedules and the command line once. ``docs/bad_inputs.md`` is the table
as it is."""

import re
import shlex
import warnings

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as ndist
import numpyro.infer
import numpyro.optim
import ppzoo.inference
import pyro
import pyro.distributions as pdist
import pyro.infer.autoguide
import pyro.optim
import pytest
import torch
from bad_inputs import DOC, ROWS, Data, Misspelt, PerPPL, Program, WrongPPL, render
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


def numpyro_logistic(x, y=None):
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([3]).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", ndist.Bernoulli(logits=x @ w), obs=y)


def pyro_logistic(x, y=None):
    w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([3]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Bernoulli(logits=x @ w), obs=y)


# -- the programs of the rows whose argument is the model; each takes y (N,) ------------------------
def numpyro_discrete(y):
    k = numpyro.sample("k", ndist.Poisson(3.0))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", ndist.Normal(k, 1.0), obs=y)


def pyro_discrete(y):
    k = pyro.sample("k", pdist.Poisson(3.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", pdist.Normal(k, 1.0), obs=y)


def numpyro_per_datum(y):
    mu = numpyro.sample("mu", ndist.Normal(0.0, 1.0))
    with numpyro.plate("data", y.shape[0]):
        z = numpyro.sample("z", ndist.Normal(mu, 1.0))
        numpyro.sample("y", ndist.Normal(z, 1.0), obs=y)


def pyro_per_datum(y):
    mu = pyro.sample("mu", pdist.Normal(0.0, 1.0))
    with pyro.plate("data", y.shape[0]):
        z = pyro.sample("z", pdist.Normal(mu, 1.0))
        pyro.sample("y", pdist.Normal(z, 1.0), obs=y)


def numpyro_raises(y):
    numpyro.sample("mu", ndist.Normal(0.0, 1.0))
    raise ZeroDivisionError("the model's own error")


def pyro_raises(y):
    pyro.sample("mu", pdist.Normal(0.0, 1.0))
    raise ZeroDivisionError("the model's own error")


def numpyro_raises_first(y):
    raise ZeroDivisionError("the model's own error")


def numpyro_improper(y):
    mu = numpyro.sample("mu", ndist.ImproperUniform(ndist.constraints.real, (), ()))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", ndist.Normal(mu, 1.0), obs=y)


def pyro_improper(y):
    mu = pyro.sample("mu", pdist.ImproperUniform(pdist.constraints.real, (), ()))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", pdist.Normal(mu, 1.0), obs=y)


def numpyro_reads_count(y):
    mu = numpyro.sample("mu", ndist.Normal(0.0, 1.0 / y.shape[0] ** 0.5))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", ndist.Normal(mu, 1.0), obs=y)


def pyro_reads_count(y):
    mu = pyro.sample("mu", pdist.Normal(0.0, 1.0 / y.shape[0] ** 0.5))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", pdist.Normal(mu, 1.0), obs=y)


def numpyro_self_scaled(y):
    mu = numpyro.sample("mu", ndist.Normal(0.0, 1.0))
    with numpyro.handlers.scale(scale=20 / y.shape[0]), numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", ndist.Normal(mu, 1.0), obs=y)


def pyro_self_scaled(y):
    mu = pyro.sample("mu", pdist.Normal(0.0, 1.0))
    with pyro.poutine.scale(scale=20 / y.shape[0]), pyro.plate("data", y.shape[0]):
        pyro.sample("y", pdist.Normal(mu, 1.0), obs=y)


def numpyro_short_index(y):
    mu = numpyro.sample("mu", ndist.Normal(0.0, 1.0))
    with numpyro.plate("data", 20, subsample_size=None) as idx:
        numpyro.sample("obs", ndist.Normal(mu, 1.0), obs=y[idx])


def pyro_short_index(y):
    mu = pyro.sample("mu", pdist.Normal(0.0, 1.0))
    with pyro.plate("data", 20, subsample_size=None) as idx:
        pyro.sample("obs", pdist.Normal(mu, 1.0), obs=y[idx])


def numpyro_masked_nan(y):
    y = jnp.where(jnp.arange(y.shape[0]) == 3, jnp.nan, y)
    mu = numpyro.sample("mu", ndist.Normal(0.0, 1.0))
    with numpyro.plate("data", y.shape[0]), numpyro.handlers.mask(mask=~jnp.isnan(y)):
        numpyro.sample("y", ndist.Normal(mu, 1.0), obs=y)


def pyro_masked_nan(y):
    y = torch.where(torch.arange(y.shape[0]) == 3, torch.nan, y)
    mu = pyro.sample("mu", pdist.Normal(0.0, 1.0))
    with pyro.plate("data", y.shape[0]), pyro.poutine.mask(mask=~torch.isnan(y)):
        pyro.sample("y", pdist.Normal(mu, 1.0), obs=y)


def not_a_program(y):
    return y * 2


def pyro_own_subsample(y):
    """The subsampling idiom with the plate's own subsample_size (10 of 20)."""
    mu = pyro.sample("mu", pdist.Normal(0.0, 1.0))
    with pyro.plate("data", y.shape[0], subsample_size=10) as idx:
        pyro.sample("y", pdist.Normal(mu, 1.0), obs=y[idx])


def pyro_spread(y):
    mu = pyro.sample("mu", pdist.Normal(0.0, 1.0))
    sigma = pyro.sample("sigma", pdist.HalfNormal(1.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", pdist.Normal(mu, sigma), obs=y)


def numpyro_no_params_guide(x):
    numpyro.sample("theta", ndist.Normal(0.0, 1.0).expand([2]).to_event(1))


def pyro_no_params_guide(x):
    pyro.sample("theta", pdist.Normal(0.0, 1.0).expand([2]).to_event(1))


def numpyro_renamed(x, y=None):
    b = numpyro.sample("b", ndist.Normal(0.0, 1.0).expand([3]).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", ndist.Normal(x @ b, 1.0), obs=y)


def pyro_renamed(x, y=None):
    b = pyro.sample("b", pdist.Normal(0.0, 1.0).expand([3]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Normal(x @ b, 1.0), obs=y)


MODEL = {"numpyro": numpyro_location, "pyro": pyro_location}
PER_DATUM_MODELS = {
    "regression": {"numpyro": numpyro_regression, "pyro": pyro_regression},
    "logistic": {"numpyro": numpyro_logistic, "pyro": pyro_logistic},
}
PROGRAMS = {
    "discrete": {"numpyro": numpyro_discrete, "pyro": pyro_discrete},
    "per_datum": {"numpyro": numpyro_per_datum, "pyro": pyro_per_datum},
    "raises": {"numpyro": numpyro_raises, "pyro": pyro_raises},
    "raises_first": {"numpyro": numpyro_raises_first, "pyro": numpyro_raises_first},
    "improper": {"numpyro": numpyro_improper, "pyro": pyro_improper},
    "not_a_program": {None: not_a_program},
    "renamed": {"numpyro": numpyro_renamed, "pyro": pyro_renamed},
    "reads_count": {"numpyro": numpyro_reads_count, "pyro": pyro_reads_count},
    "reads_count_large": {"numpyro": numpyro_reads_count, "pyro": pyro_reads_count},
    "self_scaled": {"numpyro": numpyro_self_scaled, "pyro": pyro_self_scaled},
    "short_index": {"numpyro": numpyro_short_index, "pyro": pyro_short_index},
    "masked_nan": {"numpyro": numpyro_masked_nan, "pyro": pyro_masked_nan},
    "own_subsample": {"pyro": pyro_own_subsample},
    "conditioned_float": {"pyro": pyro.condition(pyro_spread, data={"sigma": 1.0})},
}
#: data of the programs above: N = 20, except where a row is about N
PROGRAM_DATA = {"per_datum": 1001, "reads_count_large": 1001, "short_index": 15}
OTHER = {"numpyro": "pyro", "pyro": "numpyro"}
INIT = {"numpyro": numpyro.infer, "pyro": pyro.infer.autoguide}
#: what every sample row runs unless it says otherwise: tiny, so that a row that wrongly passes costs little
SAMPLE = dict(method="sgld", num_warmup=0, num_samples=2, num_chains=1, step_size=1e-3, adapt=False,
              progress_bar=False, log_likelihood=False)


def to_ppl(backend, x):
    """NumPy data as the PPL's arrays (torch tensors for Pyro; arrays of objects or strings, which torch
    cannot hold, stay NumPy, as a user would pass them)."""
    return torch.as_tensor(x) if backend == "pyro" and isinstance(x, np.ndarray) and x.dtype.kind not in "OUS" else x


def per_ppl(backend, name):
    """The :class:`PerPPL` value ``name`` made in ``backend``'s terms."""
    ppl_optim = numpyro.optim if backend == "numpyro" else pyro.optim
    if name == "Trace_ELBO":
        return (numpyro.infer if backend == "numpyro" else pyro.infer).Trace_ELBO()
    if name == "AutoNormal class":
        return (nag if backend == "numpyro" else pag).AutoNormal
    if name == "the model":
        return MODEL[backend]
    if name == "AutoNormal of another model":
        return guide_of(backend, model=PER_DATUM_MODELS["regression"][backend])
    if name == "no params":
        return numpyro_no_params_guide if backend == "numpyro" else pyro_no_params_guide
    if name == "string learning rate":
        return numpyro.optim.Adam("0.01") if backend == "numpyro" else pyro.optim.Adam({"lr": "0.01"})
    if name == "zero learning rate":
        return numpyro.optim.Adam(0.0) if backend == "numpyro" else pyro.optim.Adam({"lr": 0.0})
    if name == "negative learning rate":
        return numpyro.optim.Adam(-0.01) if backend == "numpyro" else pyro.optim.Adam({"lr": -0.01})
    if name == "Adam class":
        return ppl_optim.Adam
    if name == "optax":
        import optax

        return optax.adam(0.01)
    raise AssertionError(f"no per-PPL value {name!r}")


def data(backend):
    return to_ppl(backend, np.random.default_rng(3).normal([0.7, -0.4], 1.0, size=(40, 2)).astype(np.float32))


def guide_of(backend, name="AutoNormal", model=None):
    return getattr(pag if backend == "pyro" else nag, name)(model or MODEL[backend])


def resolve(backend, argument, value, fits=None):
    """The row's value in this PPL's terms."""
    if isinstance(value, Misspelt):
        params = dict(fits[backend].params)
        first = next(iter(params))
        return {**{k: v for k, v in params.items() if k != first}, first + first[-1]: params[first]}
    if isinstance(value, Data):
        return to_ppl(backend, value.make(np.random.default_rng(0)))
    if isinstance(value, Program):
        return PROGRAMS[value.name][backend]
    if isinstance(value, PerPPL):
        return per_ppl(backend, value.name)
    if isinstance(value, WrongPPL):
        other = OTHER[backend]
        if argument == "backend":
            return other
        if argument == "optimizer":
            return pyro.optim.Adam({"lr": 0.01}) if other == "pyro" else numpyro.optim.Adam(0.01)
        if argument == "guide":
            return guide_of(other)
        if argument == "init_strategy":
            return INIT[other].init_to_median
    if argument == "guide" and value == "AutoDelta":
        return guide_of(backend, "AutoDelta")
    if argument == "init_strategy" and isinstance(value, str) and value.startswith("init_to_"):
        return getattr(INIT[backend], value)
    return value


class LazyFits(dict):
    """One short fit per PPL, made when a row of ``Fit``'s methods (or ``params``) first needs it."""

    def __missing__(self, backend):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitConvergenceWarning)
            fit = ppzoo.fit(MODEL[backend], guide_of(backend), data(backend), num_steps=2, progress_bar=False)
        self[backend] = fit
        return fit


@pytest.fixture(scope="module")
def fits():
    return LazyFits()


class LazyCheckpoints(dict):
    """Per PPL, the checkpoint of a two-draw run of the regression ``model(x, y=y)``, made when a
    ``resume`` row first needs it."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def __missing__(self, backend):
        x, y = regression_data(backend)
        path = str(self.folder / f"{backend}.nc")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ppzoo.sample(PER_DATUM_MODELS["regression"][backend], x, y=y, **SAMPLE, checkpoint=path)
        self[backend] = path
        return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return LazyCheckpoints(tmp_path_factory.mktemp("checkpoints"))


def regression_data(backend, logistic=False):
    """``x`` (40 x 3) and ``y`` of the regression rows, in the PPL's arrays."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -0.5, 0.25]) + rng.normal(size=40)).astype(np.float32)
    if logistic:
        y = (y > 0).astype(np.float32)
    return to_ppl(backend, x), to_ppl(backend, y)


def resume_call(row, backend, checkpoints):
    """A ``resume`` row: the checkpoint of the regression resumed with the row's program or ``y``,
    the data passed positionally, ``model(x, y)``, where the run passed ``model(x, y=y)``."""
    x, y = regression_data(backend)
    model = PER_DATUM_MODELS["regression"][backend]
    value = resolve(backend, row.argument, row.value)
    if row.argument == "model":
        model = value
    elif row.argument == "y":
        y = value
    return ppzoo.resume(checkpoints[backend], model, x, y, progress_bar=False)


def program_call(row, backend, program):
    """A row whose argument is the program itself (or ``model=`` one of ``PROGRAMS``): 20 data ``y``."""
    n = PROGRAM_DATA.get(row.value.name if isinstance(row.value, Program) else row.model, 20)
    y = to_ppl(backend, np.random.default_rng(2).normal(size=n).astype(np.float32))
    kwargs = {k: resolve(backend, k, v) for k, v in row.given}
    if row.argument != "model":
        kwargs[row.argument] = resolve(backend, row.argument, row.value)
    if row.function == "sample":
        return ppzoo.sample(program, y, **{**SAMPLE, **kwargs})
    guide = guide_of(backend, model=program)
    if row.function == "fit":
        return ppzoo.fit(program, guide, y, num_steps=2, progress_bar=False, **kwargs)
    if row.function == "log_marginal_likelihood":
        return ppzoo.log_marginal_likelihood(program, guide, {}, y, num_samples=10, **kwargs)
    raise AssertionError(f"no program call for {row.function}")


def per_datum_call(row, backend, value):
    """A row of the regression ``model(x, y=y)`` (``x`` 40 x 3), with ``x``, ``y`` or a setting replaced."""
    rng = np.random.default_rng(1)
    model = PER_DATUM_MODELS[row.model][backend]
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -0.5, 0.25]) + rng.normal(size=40)).astype(np.float32)
    if row.model == "logistic":
        y = (y > 0).astype(np.float32)
    x, y = to_ppl(backend, x), to_ppl(backend, y)
    kwargs = {k: resolve(backend, k, v) for k, v in row.given}
    x = kwargs.pop("x", x)
    if row.argument == "x":
        x = value
    elif row.argument == "y":
        y = value
    else:
        kwargs[row.argument] = value
    if row.function == "sample":
        return ppzoo.sample(model, x, y=y, **{**SAMPLE, **kwargs})
    guide = (pag if backend == "pyro" else nag).AutoNormal(model)
    if row.function == "fit":
        return ppzoo.fit(model, guide, x, y=y, num_steps=2, progress_bar=False, **kwargs)
    if row.function == "log_marginal_likelihood":
        return ppzoo.log_marginal_likelihood(model, guide, None, x, y=y, num_samples=10, **kwargs)
    raise AssertionError(f"no regression call for {row.function}")


def call(row, backend, fits, checkpoints=None):
    if row.function == "resume":
        return resume_call(row, backend, checkpoints)
    value = resolve(backend, row.argument, row.value, fits)
    if row.argument == "model":
        if not isinstance(row.value, Program):  # not a program at all
            return ppzoo.sample(value, np.zeros(20, dtype=np.float32), **SAMPLE)
        return program_call(row, backend, value)
    if row.model in PROGRAMS:
        return program_call(row, backend, PROGRAMS[row.model][backend])
    if row.model in PER_DATUM_MODELS or row.function == "sample":
        return per_datum_call(row, backend, value)
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


def cases(cli: bool):
    for row in ROWS:
        if (row.function == "cli") != cli:
            continue
        for backend in row.ppls if row.per_ppl else (None,):
            name = f"{row.function}-{row.argument}-{row.label}" + (f"-{backend}" if backend else "")
            # the rows that need a fit, on one worker where xdist's loadgroup works (it makes the fits once)
            needs_fit = row.function.startswith("Fit.") or (
                row.function == "log_marginal_likelihood" and row.model == "location" and row.argument != "model")
            marks = [pytest.mark.xdist_group("fits")] if needs_fit else []
            yield pytest.param(row, backend, id=name, marks=marks)


def names_the_argument(argument, message) -> bool:
    """The message names ``argument`` (a CLI option as itself or as the Python name it becomes)."""
    if argument.startswith("-"):
        python = argument.lstrip("-").replace("-", "_")
        return argument in message or re.search(rf"\b{python}\b", message) is not None
    return re.search(rf"\b{re.escape(argument)}\b", message) is not None


def run_cli(row, tmp_path, capsys):
    from ppzoo.cli import main

    argv = shlex.split(row.value.format(tmp=tmp_path))
    if argv[:1] == ["run"]:
        argv += ([] if "--out" in argv else ["--out", str(tmp_path / "run.nc")]) + ["--no-progress"]
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.match(r"ppzoo( \w+)?: error: ", lines[0]), err
    return lines[0]


@pytest.mark.parametrize(("row", "backend"), list(cases(cli=False)))
def test_a_bad_input_gets_a_clear_error(row, backend, fits, checkpoints):
    warns = issubclass(row.error, Warning)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitConvergenceWarning)
        expected = pytest.warns(row.error, match=row.match) if warns else pytest.raises(row.error, match=row.match)
        with expected as caught:
            if row.per_ppl:
                call(row, backend, fits, checkpoints)
            else:
                settings = {"a": 1e-3} if row.function == "PolynomialDecay" and row.argument != "a" else {}
                kernel = getattr(ppzoo.inference, row.function)
                # a model passed first, as NumPyro's kernels take one: the only positional row
                kernel(row.value) if row.argument == "model" else kernel(**settings, **{row.argument: row.value})
    message = next(str(w.message) for w in caught if re.search(row.match, str(w.message))) if warns else str(caught.value)
    # the message names the argument, or the data site it concerns
    assert names_the_argument(row.argument, message), message


@pytest.mark.parametrize(("row", "backend"), list(cases(cli=True)))
def test_a_bad_command_line_ends_with_one_line(row, backend, tmp_path, capsys):
    message = run_cli(row, tmp_path, capsys)
    assert re.search(row.match, message), message
    assert names_the_argument(row.argument, message), message


def test_the_documented_table_is_the_table():
    assert DOC.read_text() == render(), "run python tests/bad_inputs.py"


def test_the_table_has_every_kind_of_call():
    functions = {row.function for row in ROWS}
    assert len(ROWS) >= 150
    assert {"sample", "fit", "log_marginal_likelihood", "cli", "SGLD", "SGLDCV", "SVRGLD", "SARAHLD", "PSGLD", "SGHMC",
            "PolynomialDecay", "Constant"} <= functions
