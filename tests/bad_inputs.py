"""The bad-input table: one row per (function, argument, bad value), the error it must raise and a
fragment of its message. ``tests/test_bad_inputs.py`` runs every row, those of ``sample``, ``fit``,
``Fit``'s methods and ``log_marginal_likelihood`` on both PPLs, those of the kernels' constructors,
the step-size schedules and the command line once; ``python tests/bad_inputs.py`` renders the table
to ``docs/bad_inputs.md`` (a test checks that the file is up to date).

A row's ``value`` replaces one argument of a call that is otherwise good (``given`` sets others):

* ``fit``, ``Fit.*``, ``log_marginal_likelihood``: the Gaussian location model of
  ``tests/test_autoguides.py`` with 40 data (``x``, 40 x 2) and an ``AutoNormal`` guide;
* ``sample``: a linear regression as users write it for NUTS (``model(x, y=y)``, ``x`` 40 x 3, no
  indexing), run with ``method="sgld"``, ``step_size=1e-3``, no warmup and two draws (no row gets
  that far: each fails before any step);
* rows with ``model="regression"`` use that regression for ``fit`` and ``log_marginal_likelihood``
  too; ``model="logistic"`` is the regression with Bernoulli labels; rows whose argument is
  ``model`` replace the program itself (:class:`Program`: a program with a discrete latent, one
  that raises, one with an improper prior, ...), given 20 data ``y``;
* the kernels (``SGLD``, ``SGLDCV``, ``SVRGLD``, ``SARAHLD``, ``PSGLD``, ``SGHMC``) and schedules
  (``PolynomialDecay``, ``Constant``) of ``ppzoo.inference`` are constructed with the one setting
  (``PolynomialDecay`` with ``a=1e-3`` besides), or, for ``model``, given it positionally;
* ``cli``: ``ppzoo.cli.main`` in process, on the command line in ``value`` (``{tmp}`` is a fresh
  folder; ``run`` gets ``--out {tmp}/run.nc --no-progress`` unless the row sets ``--out``); it must
  end with status 2 and one line ``ppzoo...: error: ...`` on stderr that matches the row.

Special values: ``DATA_*`` / :class:`Data` builders make data of the right PPL (NumPy for NumPyro,
torch for Pyro) from NumPy; ``WRONG_PPL`` is the other PPL's version of the argument.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass

import numpy as np
from ppzoo.inference import SGLD

from ppzoo.diagnostics.convergence import ConvergenceWarning

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"

#: functions whose rows run on both PPLs; the others (kernels, schedules, the CLI) run once
PPL_FUNCTIONS = ("sample", "fit", "log_marginal_likelihood")
KERNELS = ("SGLD", "SGLDCV", "SVRGLD", "SARAHLD", "PSGLD", "SGHMC", "PolynomialDecay", "Constant")


@dataclass(frozen=True)
class Row:
    function: str  # "sample", "fit", "Fit.to_arviz", ..., "log_marginal_likelihood", "SGLD", ..., "cli"
    argument: str
    value: object  # the bad value, or a Data / WrongPPL / Program marker; for "cli" the command line
    error: type  # for "cli": SystemExit (exit status 2)
    match: str  # a fragment of the message (a regular expression)
    shown: str | None = None  # how the value is written in the docs, when repr is not readable
    model: str = "location"  # the program called: "location" (x only), "regression" or "logistic" (x, y=y)
    given: tuple = ()  # other arguments of the call, as (name, value) pairs
    ppls: tuple = ("numpyro", "pyro")  # the PPLs a per-PPL row runs on

    @property
    def label(self) -> str:
        if self.shown is not None:
            text = self.shown
        elif isinstance(self.value, (Data, Program, PerPPL)):
            text = self.value.shown
        else:
            text = repr(self.value)
        if self.given:
            text += " with " + ", ".join(f"{k}={_shown(v)}" for k, v in self.given)
        return text

    @property
    def per_ppl(self) -> bool:
        return self.function in PPL_FUNCTIONS or self.function.startswith("Fit.") or self.function == "resume"


def _shown(value) -> str:
    return value.shown if isinstance(value, (Data, Program, PerPPL)) else repr(value)


@dataclass(frozen=True)
class Data:
    """An array made from NumPy by ``make(rng)`` (converted to a torch tensor for Pyro)."""

    make: object
    shown: str


@dataclass(frozen=True)
class Program:
    """A model written in the PPL the row runs on (``tests/test_bad_inputs.py`` has each one)."""

    name: str
    shown: str


class WrongPPL:
    """The other PPL's version of the argument (its optimiser, its guide, its init strategy)."""


@dataclass(frozen=True)
class PerPPL:
    """A value made in the PPL the row runs on (``tests/test_bad_inputs.py`` makes each one by name):
    an optimiser, a guide, an objective."""

    name: str
    shown: str


WRONG_PPL = WrongPPL()


class Misspelt:
    """The fit's own parameters, with one name misspelt (its last letter doubled)."""


MISSPELT = Misspelt()


def _with(shape, where, value, dtype=np.float32):
    def make(rng):
        x = rng.normal(size=shape).astype(dtype)
        x[where] = value
        return x

    return make


NAN_DATA = Data(_with((40, 2), (3, 1), np.nan), "x with one NaN")
INF_DATA = Data(_with((40, 2), (0, 0), np.inf), "x with one inf")

SEED_RANGE = r"seed must be an integer in \[0, 2\*\*63 - 1\]"
NO_ROWS = r"x has no rows \(shape \(0, {}\)\): there must be at least one datum"
FINITE = "must be a finite number"

# -- fit ----------------------------------------------------------------------------------------
_COMMON = [
    # (argument, value, error, match, shown)
    ("num_steps", 0, ValueError, "num_steps must be an integer >= 1, got 0", None),
    ("num_steps", -5, ValueError, "num_steps must be an integer >= 1, got -5", None),
    ("num_steps", 2.5, TypeError, "num_steps must be an integer >= 1, got 2.5", None),
    ("num_steps", "100", TypeError, "num_steps must be an integer >= 1, got '100'", None),
    ("num_steps", True, TypeError, "num_steps must be an integer >= 1, got True", None),
    ("num_particles", 0, ValueError, "num_particles must be an integer >= 1, got 0", None),
    ("num_particles", 1.5, TypeError, "num_particles must be an integer >= 1, got 1.5", None),
    ("objective", "elbow", ValueError, "objective must be 'elbo', 'iwae' or an objective object", None),
    ("objective", 3, ValueError, "objective must be 'elbo', 'iwae' or an objective object", None),
    ("estimator", "score", ValueError, "estimator must be one of", None),
    ("estimator", "dreg", ValueError, "dreg.*IWAE", "'dreg' (with the ELBO)"),
    ("seed", -1, ValueError, SEED_RANGE, None),
    ("seed", 2**63, ValueError, SEED_RANGE, "2**63"),
    ("seed", 1.5, TypeError, "seed must be an integer", None),
    ("seed", "0", TypeError, "seed must be an integer", None),
    ("batch_size", 0, ValueError, "batch_size must be an integer >= 1, got 0", None),
    ("batch_size", 41, ValueError, r"batch_size must be at most N=40 \(the size of the data plate 'data'\), got 41", None),
    ("batch_size", 2.5, TypeError, "batch_size must be an integer >= 1, got 2.5", None),
    ("backend", "stan", ValueError, r"backend must be one of \('numpyro', 'pyro'\) or None, got 'stan'", None),
    ("backend", WRONG_PPL, ValueError, "backend='.*', but model '.*_location' is a .* program", "the other PPL"),
    ("optimizer", WRONG_PPL, TypeError, "optimizer must be a .*optim optimiser for a .* model", "the other PPL's Adam"),
    ("optimizer", "adam", TypeError, "optimizer must be a .*optim optimiser", None),
    ("data_plate", "rows", ValueError, r"data_plate='rows' is not a plate of the model; its plates are \['data'\]", None),
    ("data_plate", 3, TypeError, r"data_plate must be a plate name \(str\), got 3", None),
    ("progress_bar", "yes", TypeError, "progress_bar must be True or False, got 'yes'", None),
    ("jit_compile", 1, TypeError, "jit_compile must be True or False, got 1", None),
    ("step_kwargs", {"t": 1}, TypeError, "step_kwargs must be a function t -> dict", None),
    ("callback", "print", TypeError, r"callback must be a function \(t, loss\) -> None", None),
    ("guide", None, TypeError, "guide must be a callable Pyro or NumPyro program, got NoneType", None),
    ("guide", WRONG_PPL, ValueError, "guide AutoNormal is a .* program but the model is a .* program", "the other PPL's AutoNormal"),
    ("device", "cpu:5", ValueError, r"device='cpu:5': (JAX|torch) has 1 cpu device\(s\), numbered 0 to 0", None),
    ("num_step", 10, TypeError, r"unknown keyword 'num_step'.*did you mean 'num_steps'\?", None),
    ("x", NAN_DATA, ValueError, r"observed site 'x' contains NaN or infinite values \(1 of 80\)", None),
    ("x", INF_DATA, ValueError, r"observed site 'x' contains NaN or infinite values \(1 of 80\)", None),
    ("x", Data(lambda rng: rng.normal(size=(0, 2)).astype(np.float32), "x with 0 rows"), ValueError, NO_ROWS.format(2), None),
]

ROWS: list[Row] = [Row("fit", a, v, e, m, s) for a, v, e, m, s in _COMMON]

# -- Fit's methods and log_marginal_likelihood ----------------------------------------------------
ROWS += [
    Row("Fit.to_arviz", "num_samples", 1, ValueError, "num_samples must be an integer >= 2, got 1"),
    Row("Fit.to_arviz", "num_samples", 10.0, TypeError, "num_samples must be an integer >= 2, got 10.0"),
    Row("Fit.to_arviz", "chunk_size", 0, ValueError, "chunk_size must be an integer >= 1, got 0"),
    Row("Fit.to_arviz", "seed", -3, ValueError, SEED_RANGE),
    Row("Fit.to_arviz", "collapse", "z", ValueError, "collapse diagnostics need a guide with a Normal latent inside the data plate"),
    Row("Fit.psis_khat", "num_samples", 5, ValueError, "num_samples must be an integer >= 30, got 5"),
    Row("Fit.psis_khat", "per_datum", True, ValueError, r"per_datum=True needs a model whose latents are all per datum; \['theta'\] are shared"),
    Row("Fit.psis_khat", "chunk_size", -1, ValueError, "chunk_size must be an integer >= 1, got -1"),
    Row("Fit.log_marginal_likelihood", "num_samples", 0, ValueError, "num_samples must be an integer >= 1, got 0"),
    Row("Fit.log_marginal_likelihood", "chunk_size", 0, ValueError, "chunk_size must be an integer >= 1, got 0"),
    Row("Fit.log_marginal_likelihood", "seed", math.inf, TypeError, "seed must be an integer", "inf"),
    Row("Fit.collapse", "num_samples", 0, ValueError, "num_samples must be an integer >= 1, got 0"),
    Row("Fit.collapse", "site", "theta", ValueError, "collapse diagnostics need a guide with a Normal latent inside the data plate"),
    Row("log_marginal_likelihood", "params", MISSPELT, ValueError,
        r"params has name\(s\) that are no param statement of the model or guide: '.*' \(did you mean '.*'\?\)",
        "the fit's params, one name with a letter added"),
    Row("log_marginal_likelihood", "params", [1.0, 2.0], TypeError, "params must be a dict of parameter values by name"),
    Row("log_marginal_likelihood", "params", {"AutoNormal.locs.theta": "0.5"}, TypeError,
        r"params\['AutoNormal.locs.theta'\] must be numbers \(an array or a float\), got '0.5'"),
    Row("log_marginal_likelihood", "params", Data(lambda rng: rng.normal(size=(40, 2)).astype(np.float32), "the data"),
        TypeError, r"params must be a dict .* the data come after it, log_marginal_likelihood\(model, guide, params, \*data\)"),
    Row("log_marginal_likelihood", "num_samples", 0, ValueError, "num_samples must be an integer >= 1, got 0"),
    Row("log_marginal_likelihood", "num_samples", 2.0, TypeError, "num_samples must be an integer >= 1, got 2.0"),
    Row("log_marginal_likelihood", "chunk_size", 0, ValueError, "chunk_size must be an integer >= 1, got 0"),
    Row("log_marginal_likelihood", "seed", -1, ValueError, SEED_RANGE),
    Row("log_marginal_likelihood", "num_sample", 10, TypeError, r"unknown keyword 'num_sample'.*did you mean 'num_samples'\?"),
    Row("log_marginal_likelihood", "x", NAN_DATA, ValueError, r"observed site 'x' contains NaN or infinite values"),
    Row("log_marginal_likelihood", "guide", "AutoDelta", ValueError, "point mass", "an AutoDelta guide"),
    Row("log_marginal_likelihood", "guide", None, TypeError,
        r"guide must be a guide program \(an autoguide, or a function of the model's arguments\), got None"),
]

# -- per-datum arguments: the regression model(x, y=y), x 40 x 3 ----------------------------------
_SHORT_Y = Data(lambda rng: rng.normal(size=30).astype(np.float32), "y with 30 rows (x has 40)")
_LONG_Y = Data(lambda rng: rng.normal(size=50).astype(np.float32), "y with 50 rows (x has 40)")
_ONE_Y = Data(lambda rng: rng.normal(size=1).astype(np.float32), "y with 1 row (x has 40)")
_WIDE_Y = Data(lambda rng: rng.normal(size=(40, 2)).astype(np.float32), "y of shape (40, 2)")
_ONE_X = Data(lambda rng: rng.normal(size=(1, 3)).astype(np.float32), "1 row")
_FULL_Y = Data(lambda rng: rng.normal(size=40).astype(np.float32), "y with 40 rows")
_NAN_Y = Data(_with(40, 3, np.nan), "y with one NaN")
_INF_Y = Data(_with(40, 7, -np.inf), "y with one -inf")
_NAN_X = Data(_with((40, 3), (5, 2), np.nan), "x (a covariate) with one NaN")
_INF_X = Data(_with((40, 3), (0, 0), np.inf), "x (a covariate) with one inf")
_EMPTY_X = Data(lambda rng: rng.normal(size=(0, 3)).astype(np.float32), "x with 0 rows")
_LIST_Y = Data(lambda rng: [float(v) for v in rng.normal(size=40)], "y as a list of 40 floats")
_OBJECT_X = Data(lambda rng: rng.normal(size=(40, 3)).astype(object), "x of dtype object")
_INT_LABELS = Data(lambda rng: (rng.normal(size=40) > 0).astype(np.int64), "y as integer labels (int64)")
_SHAPE = r"observed site 'y': its value has shape \({}\) but its distribution has shape \({}\)"
_NONFINITE_COVARIATE = r"x contains NaN or infinite values \(1 of 120\)"

for _function in PPL_FUNCTIONS:
    ROWS += [
        Row(_function, "y", _SHORT_Y, ValueError, _SHAPE.format("30,", "40,"), model="regression"),
        Row(_function, "y", _ONE_Y, ValueError, _SHAPE.format("1,", "40,"), model="regression"),
        Row(_function, "x", _NAN_X, ValueError, _NONFINITE_COVARIATE, model="regression"),
        Row(_function, "y", _INT_LABELS, ValueError,
            "observed site 'y': its distribution Bernoulli cannot score its value.*pass them as floats",
            model="logistic", ppls=("pyro",)),
    ]
ROWS += [
    Row("fit", "y", _LONG_Y, ValueError, _SHAPE.format("50,", "40,"), model="regression"),
    Row("fit", "y", _LIST_Y, TypeError, "observed site 'y': its value is a list, not an array", model="regression"),
    Row("fit", "y", _FULL_Y, ValueError, _SHAPE.format("40,", "1,"), model="regression", given=(("x", _ONE_X),)),
]

# -- sample: every argument -----------------------------------------------------------------------
_SAMPLE = [
    # (argument, value, error, match, shown, given)
    ("method", "hmc", ValueError, r"method must be one of \['psgld', 'sarah-ld', 'sghmc', 'sgld', 'sgld-cv', 'svrg-ld'\], got 'hmc'", None, ()),
    ("method", 3, TypeError, "method must be a method name or a ppzoo Langevin kernel, got 3", None, ()),
    ("method", SGLD, TypeError, "method must be a method name or a ppzoo Langevin kernel", "the class SGLD (not an instance)", ()),
    ("num_samples", 0, ValueError, "num_samples must be an integer >= 1, got 0", None, ()),
    ("num_samples", -1, ValueError, "num_samples must be an integer >= 1, got -1", None, ()),
    ("num_samples", 10.0, TypeError, "num_samples must be an integer >= 1, got 10.0", None, ()),
    ("num_samples", "10", TypeError, "num_samples must be an integer >= 1, got '10'", None, ()),
    ("num_samples", True, TypeError, "num_samples must be an integer >= 1, got True", None, ()),
    ("num_samples", 10**12, ValueError, r"num_samples=1,000,000,000,000 is too many to keep: the positions alone need "
     r"num_chains x num_samples x dimension x 4 bytes = 1 x 1,000,000,000,000 x 3 x 4 = .* GiB, and this machine has",
     "10**12", ()),
    ("num_warmup", -1, ValueError, "num_warmup must be an integer >= 0, got -1", None, ()),
    ("num_warmup", 1.5, TypeError, "num_warmup must be an integer >= 0, got 1.5", None, ()),
    ("num_warmup", None, TypeError, "num_warmup must be an integer >= 0, got None", None, ()),
    ("num_chains", 0, ValueError, "num_chains must be an integer >= 1, got 0", None, ()),
    ("num_chains", 2.0, TypeError, "num_chains must be an integer >= 1, got 2.0", None, ()),
    ("thinning", 0, ValueError, 'thinning must be an integer >= 1 or "auto", got 0', None, ()),
    ("thinning", "every", ValueError, 'thinning must be an integer >= 1 or "auto", got \'every\'', None, ()),
    ("thinning", 1.5, TypeError, 'thinning must be an integer >= 1 or "auto", got 1.5', None, ()),
    ("thinning", None, TypeError, 'thinning must be an integer >= 1 or "auto", got None', None, ()),
    ("step_size", 0.0, ValueError, f"step_size {FINITE} > 0, got 0.0", None, ()),
    ("step_size", -1.0, ValueError, f"step_size {FINITE} > 0, got -1.0", None, ()),
    ("step_size", math.nan, ValueError, f"step_size {FINITE} > 0, got nan", "nan", ()),
    ("step_size", math.inf, ValueError, f"step_size {FINITE} > 0, got inf", "inf", ()),
    ("step_size", "1e-3", TypeError, r"step_size must be a positive number, ppzoo.inference.Constant\(h\) or "
     r"ppzoo.inference.PolynomialDecay\(a, b, gamma\), got '1e-3'", None, ()),
    ("step_size", lambda t: 1e-3, TypeError, "step_size must be a positive number, ppzoo.inference.Constant",
     "lambda t: 1e-3 (a function, not a schedule)", ()),
    ("step_size", [1e-3], TypeError, "step_size must be a positive number", None, ()),
    ("step_size", 1e-3, ValueError, r"method is a kernel object with its own settings; pass \['step_size'\] to it instead",
     None, (("method", SGLD()),)),
    ("batch_size", 0, ValueError, "batch_size must be an integer >= 1, got 0", None, ()),
    ("batch_size", 41, ValueError, r"batch_size must be at most N=40 \(the size of the data plate 'data'\), got 41", None, ()),
    ("batch_size", 41, ValueError, "batch_size must be at most N=40", None, (("method", "svrg-ld"),)),
    ("batch_size", 2.5, TypeError, "batch_size must be an integer >= 1, got 2.5", None, ()),
    ("batch_size", "8", TypeError, "batch_size must be an integer >= 1, got '8'", None, ()),
    ("temperature", -1.0, ValueError, f"temperature {FINITE} >= 0, got -1.0", None, ()),
    ("temperature", -0.5, ValueError, f"temperature {FINITE} >= 0, got -0.5", None, (("method", "sarah-ld"),)),
    ("temperature", math.inf, ValueError, f"temperature {FINITE} >= 0, got inf", "inf", ()),
    ("temperature", "1", TypeError, f"temperature {FINITE} >= 0, got '1'", None, ()),
    ("inner_loop", 5, ValueError, "inner_loop applies to svrg-ld and sarah-ld, not to method='sgld'", None, ()),
    ("inner_loop", 0, ValueError, "inner_loop must be an integer >= 1, got 0", None, (("method", "sarah-ld"),)),
    ("inner_loop", 2.5, TypeError, "inner_loop must be an integer >= 1, got 2.5", None, (("method", "svrg-ld"),)),
    ("inverse_mass", [1.0, 0.0, 1.0], ValueError, "inverse_mass must hold positive finite numbers; entry 1 is 0.0", None, ()),
    ("inverse_mass", [1.0, math.nan, 1.0], ValueError, "inverse_mass must hold positive finite numbers; entry 1 is nan",
     "[1.0, nan, 1.0]", ()),
    ("inverse_mass", [1.0, 1.0], ValueError, r"inverse_mass must have one row per unconstrained dimension, D=3, got shape \(2,\)", None, ()),
    ("inverse_mass", np.eye(4), ValueError, r"inverse_mass must have one row per unconstrained dimension, D=3, got shape \(4, 4\)", "np.eye(4)", ()),
    ("inverse_mass", np.ones((2, 3)), ValueError, r"inverse_mass must be a \(D,\) vector or a \(D, D\) matrix, got shape \(2, 3\)", "np.ones((2, 3))", ()),
    ("inverse_mass", -np.eye(3), ValueError, "a dense inverse_mass must be positive definite", "-np.eye(3)", ()),
    ("inverse_mass", np.triu(np.ones((3, 3))), ValueError, "a dense inverse_mass must be a finite symmetric matrix",
     "np.triu(np.ones((3, 3))) (not symmetric)", ()),
    ("inverse_mass", "diag", TypeError, r"inverse_mass must be a \(D,\) vector or a \(D, D\) matrix of numbers, got 'diag'", None, ()),
    ("adapt", "yes", TypeError, "adapt must be True or False, got 'yes'", None, ()),
    ("adapt", 1, TypeError, "adapt must be True or False, got 1", None, ()),
    ("preconditioner", "full", ValueError, r"preconditioner must be one of \('auto', 'dense', 'diagonal'\), got 'full'", None, ()),
    ("seed", -1, ValueError, SEED_RANGE + ", got -1", None, ()),
    ("seed", 2**63, ValueError, SEED_RANGE + ", got 9223372036854775808", "2**63", ()),
    ("seed", 1.5, TypeError, SEED_RANGE + ", got 1.5", None, ()),
    ("seed", "1", TypeError, SEED_RANGE + ", got '1'", None, ()),
    ("seed", None, TypeError, SEED_RANGE + ", got None", None, ()),
    ("device", "cpu:5", ValueError, r"device='cpu:5': (JAX|torch) has 1 cpu device\(s\), numbered 0 to 0", None, ()),
    ("device", "nonsense", ValueError, "device='nonsense' is not", None, ()),
    ("backend", "stan", ValueError, r"backend must be one of \('numpyro', 'pyro'\) or None, got 'stan'", None, ()),
    ("backend", WRONG_PPL, ValueError, "backend='.*', but model '.*_regression' is a .* program", "the other PPL", ()),
    ("data_plate", "rows", ValueError, r"data_plate='rows' is not a plate of the model; its plates are \['data'\]", None, ()),
    ("data_plate", 3, TypeError, r"data_plate must be a plate name \(str\), got 3", None, ()),
    ("batch_args", [5], ValueError, "batch_args names argument 5, but the model gets 1 positional arguments", None, ()),
    ("batch_args", ["z"], ValueError, r"batch_args names 'z', which is not among the keyword arguments \['y'\]", None, ()),
    ("batch_args", [1.5], TypeError, r"batch_args entries are argument positions \(int\) or keyword names \(str\), got 1.5", None, ()),
    ("batch_args", 3.5, TypeError, "batch_args must name the per-datum arguments", None, ()),
    ("init_strategy", "median", TypeError, r"init_strategy must be an init strategy of the model's PPL \(e.g. init_to_median\), got 'median'", None, ()),
    ("init_strategy", WRONG_PPL, TypeError, "init_strategy 'init_to_median' is a .* init strategy but model .* is a .* program",
     "the other PPL's init_to_median", ()),
    ("init_params", {"v": [0.0, 0.0, 0.0]}, ValueError, r"init_params must give every latent site an unconstrained value; "
     r"not latent sites of the model: \['v'\]; missing: \['w'\]", None, ()),
    ("init_params", {"w": [0.0, 0.0]}, ValueError, r"init_params\['w'\] has shape \(2,\); expected the site's unconstrained "
     r"shape \(3,\) or \(num_chains, \*shape\) = \(1, 3\)", None, ()),
    ("init_params", {"w": [math.nan] * 3}, ValueError, r"the starting values of \['w'\] are not finite", "{'w': [nan, nan, nan]}", ()),
    ("init_params", {"w": "abc"}, TypeError, r"init_params\['w'\] must be an array of numbers", None, ()),
    ("init_params", [0.0, 0.0, 0.0], TypeError, "init_params must be a dict of latent site names to unconstrained values, got list", None, ()),
    ("init_params", {"w": [0.0, 0.0, 0.0]}, ValueError, "give init_strategy or init_params, not both", None,
     (("init_strategy", "init_to_median"),)),
    ("log_likelihood", "no", TypeError, "log_likelihood must be True, False, 'all', 'none' or 'auto', got 'no'", None, ()),
    ("log_likelihood", None, TypeError, "log_likelihood must be True, False, 'all', 'none' or 'auto', got None", None, ()),
    ("checkpoint_every", 0, ValueError, "checkpoint_every must be an integer >= 1, got 0", None,
     (("checkpoint", "run.nc"),)),
    ("checkpoint_every", 10, ValueError, "checkpoint_every is set but checkpoint is not; pass checkpoint='run.nc'",
     None, ()),
    ("checkpoint", "no/such/folder/run.nc", OSError, "checkpoint no/such/folder/run.nc: the folder .* does not exist",
     None, ()),
    ("progress_bar", "yes", TypeError, "progress_bar must be True or False, got 'yes'", None, ()),
    ("progress_bar", 0, TypeError, "progress_bar must be True or False, got 0", None, ()),
    ("num_sample", 10, TypeError, r"unknown keyword 'num_sample': it is neither an option of ppzoo.sample nor a parameter "
     r"of model '.*_regression' \('x', 'y'\); did you mean 'num_samples'\?", None, ()),
    ("y", _LONG_Y, ValueError, _SHAPE.format("50,", "40,"), None, ()),
    ("y", _WIDE_Y, ValueError, _SHAPE.format("40, 2", "40,"), None, ()),
    ("y", _LIST_Y, TypeError, r"observed site 'y': its value is a list, not an array; pass an array", None, ()),
    ("y", _NAN_Y, ValueError, r"observed site 'y' contains NaN or infinite values \(1 of 40\)", None, ()),
    ("y", _INF_Y, ValueError, r"observed site 'y' contains NaN or infinite values \(1 of 40\)", None, ()),
    ("y", _FULL_Y, ValueError, _SHAPE.format("40,", "1,"), None, (("x", _ONE_X),)),
    ("x", _INF_X, ValueError, _NONFINITE_COVARIATE, None, ()),
    ("x", _EMPTY_X, ValueError, NO_ROWS.format(3), None, ()),
    ("x", _OBJECT_X, TypeError, r"x is an array of dtype object: pass numbers", None, ()),
    ("x", None, AttributeError, r"raised AttributeError .* \(x is None, not an array: the program reads its \.shape\)", None, ()),
    ("x", Data(lambda rng: rng.normal(size=(40, 3)).astype(np.complex64), "x of complex numbers"), TypeError,
     r"x is an array of complex numbers \(dtype .*complex64\): pass real numbers", None, ()),
    ("x", 3.0, AttributeError, r"raised AttributeError .* \(x is float, not an array: the program reads its \.shape\)", None, ()),
]
ROWS += [Row("sample", a, v, e, m, s, model="regression", given=g) for a, v, e, m, s, g in _SAMPLE]
_SIGNED_LABELS = Data(lambda rng: np.where(rng.normal(size=40) > 0, 1.0, -1.0).astype(np.float32), "y in {-1, +1}")
ROWS += [
    Row("sample", "y", _SIGNED_LABELS, ValueError, r"observed site 'y': \d+ of 40 values lie outside the support of "
        r"its Bernoulli distribution \(0 or 1\): -1; .*labels in \{-1, \+1\} become \(y \+ 1\) / 2", model="logistic"),
]

# -- resume: a checkpoint of a two-draw run of the regression model(x, y=y), made once per PPL ------
ROWS += [
    Row("resume", "y", Data(lambda rng: rng.normal(size=40).astype(np.float32), "other y"), ValueError,
        r"the data given to resume differ from those checkpoint .* was made with, in argument y",
        "other y, passed positionally (the run passed y=y)", model="regression"),
    Row("resume", "model", Program("renamed", "the regression with its latent 'w' named 'b'"), ValueError,
        r"the model given to resume is not the program checkpoint .* was made with: site 'w' \(latent Normal, "
        r"shape \(3,\)\) is not in the program given; site 'b' \(latent Normal, shape \(3,\)\) is new",
        model="regression"),
]

# -- programs that are not what they should be, on 20 data y ----------------------------------------
_RAISED = r"model '.*_raises' \((numpyro|pyro)\) raised ZeroDivisionError after its statement 'mu': the model's own error"
_IMPROPER = r"latent site 'mu' of model '.*_improper' has an improper prior \(ImproperUniform\): "
ROWS += [
    Row("sample", "model", 42, TypeError, "model must be a callable Pyro or NumPyro program, got int", ppls=(None,)),
    Row("sample", "model", Program("not_a_program", "a function without sample statements"), TypeError,
        "model 'not_a_program' is neither a Pyro nor a NumPyro program", ppls=(None,)),
    Row("sample", "model", Program("discrete", "a program with a Poisson latent 'k'"), ValueError,
        "latent site 'k' is discrete.*marginalise it out in the model"),
    Row("sample", "model", Program("per_datum", "a latent 'z' per datum, N = 1001"), ValueError,
        r"latent sites \['z'\] lie inside the data plate 'data'.*N=1001 is more than 1000\. Marginalise the latents "
        "out, fit the model by SVI"),
    Row("sample", "model", Program("raises", "a program that raises after its statement 'mu'"), ZeroDivisionError, _RAISED),
    Row("sample", "model", Program("raises_first", "a program that raises before its first statement"), ZeroDivisionError,
        "model '.*raises_first' raised ZeroDivisionError before any Pyro or NumPyro statement: the model's own error"),
    Row("sample", "init_strategy", "init_to_sample", ValueError,
        "init_strategy 'init_to_sample' failed on model '.*_improper': NotImplementedError.*improper prior",
        "init_to_sample on an improper prior", model="improper", ppls=("pyro",)),
    Row("fit", "model", Program("raises", "a program that raises after its statement 'mu'"), ZeroDivisionError, _RAISED),
    Row("fit", "model", Program("improper", "a program with an improper prior on 'mu'"), ValueError,
        _IMPROPER + "SVI initialises its guide from draws of the prior"),
    Row("log_marginal_likelihood", "model", Program("improper", "a program with an improper prior on 'mu'"), ValueError,
        _IMPROPER + r"the marginal likelihood p\(x\) is not defined under it"),
]

_MASKED_NAN = Program("masked_nan", "a NaN in y under a mask (handlers.mask / poutine.mask)")
_MASKED = (r"observed site 'y' contains NaN or infinite values \(1 of 20\), all where its mask is False.*zero times "
           "NaN is NaN. Put a finite placeholder in the masked entries")
ROWS += [Row(f, "model", _MASKED_NAN, ValueError, _MASKED) for f in ("sample", "fit")]

# -- programs that read their data beyond the rows they are given (tests/test_data_reading.py) ------
_READS = r"model '.*_reads_count' reads its data outside the rows of the data plate 'data'"
_SHORT = "the subsampling idiom, obs=y[idx] with y of 15 rows in a plate of 20"
ROWS += [
    Row("sample", "model", Program("reads_count", "a prior sd 1 / sqrt(n), n = y.shape[0]"), UserWarning,
        _READS + r" \(N=20\) it is given: .*site 'mu' \(distribution's scale.*ppzoo runs it full-batch"),
    Row("sample", "model", Program("reads_count_large", "a prior sd 1 / sqrt(n), n = y.shape[0], N = 1001"), ValueError,
        _READS + r" it is given: .*N=1001 is more than 1000\. Pass N .* as an argument"),
    Row("sample", "model", Program("self_scaled", "a likelihood scaled by 20 / y.shape[0] in the program"), ValueError,
        r"model '.*_self_scaled' scales the log-probability of \['y'\] itself.*ppzoo scales the likelihood by N/B itself"),
    Row("sample", "model", Program("short_index", _SHORT), ValueError,
        r"model '.*_short_index' indexes argument 'y' with the indices of the data plate 'data', but it has 15 rows "
        "and the plate N=20", ppls=("numpyro",)),
    Row("sample", "model", Program("short_index", _SHORT), IndexError,
        r"model '.*_short_index' \(pyro\) raised IndexError.*argument 'y' has 15 rows", ppls=("pyro",)),
]

# -- more of what new users pass: types, names and values that look right and are not -------------
_STRINGS_X = Data(lambda rng: np.full((40, 2), "1.0"), "x of strings (dtype <U3)")
_COMPLEX_X = Data(lambda rng: rng.normal(size=(40, 2)).astype(np.complex64), "x of complex numbers")
_GUIDE_CALL = r"guide <lambda>\(\) cannot be called with the model's arguments"
_NO_PARAMS = "guide: neither the guide nor the model has a param statement, so there is nothing to fit"
_OPTIMIZER_STEP = r"optimizer .* cannot take a step .*check its arguments: a learning rate is a positive number"
ROWS += [Row("fit", a, v, e, m, s) for a, v, e, m, s in [
    ("num_steps", 1e3, TypeError, "num_steps must be an integer >= 1, got 1000.0", "1e3"),
    ("num_particles", -1, ValueError, "num_particles must be an integer >= 1, got -1", None),
    ("num_particles", True, TypeError, "num_particles must be an integer >= 1, got True", None),
    ("objective", "ELBO", ValueError, "objective must be 'elbo', 'iwae' or an objective object.*got 'ELBO'", None),
    ("objective", PerPPL("Trace_ELBO", "the PPL's own Trace_ELBO()"), ValueError,
     "objective must be 'elbo', 'iwae' or an objective object", None),
    ("batch_size", -3, ValueError, "batch_size must be an integer >= 1, got -3", None),
    ("batch_size", True, TypeError, "batch_size must be an integer >= 1, got True", None),
    ("batch_size", "10", TypeError, "batch_size must be an integer >= 1, got '10'", None),
    ("batch_args", [0], ValueError, r"batch_args names the per-datum arguments .* needs batch_size= as well", None),
    ("refine", "yes", TypeError, "refine must be True or False, got 'yes'", None),
    ("jit_compile", None, TypeError, "jit_compile must be True or False, got None", None),
    ("estimator", None, ValueError, "estimator must be one of .* got None", None),
    ("data_plate", "Data", ValueError, r"data_plate='Data' is not a plate of the model; its plates are \['data'\]", None),
    ("device", 0, TypeError, "device must be None, a device name such as 'cpu', 'cuda' or 'cuda:0'", None),
    ("device", "gpu", ValueError, "device='gpu' (is not available to JAX|was asked for but CUDA is not available to torch)",
     None),
    ("callback", lambda t: None, TypeError, r"callback must be a function \(t, loss\) -> None, taking two arguments",
     "lambda t: None (one argument)"),
    ("step_kwargs", lambda t: 3, TypeError,
     r"step_kwargs must be a function t -> dict of keyword arguments of the model; step_kwargs\(0\) gave 3", "lambda t: 3"),
    ("step_kwargs", lambda t: {"beta": 0.5}, TypeError,
     r"step_kwargs gives keyword\(s\) \['beta'\] that are no parameters of the model \('x',\)",
     "lambda t: {'beta': 0.5} (not a parameter of the model)"),
    ("learning_rate", 0.01, TypeError, "unknown keyword 'learning_rate': it is neither an option of ppzoo.fit", None),
    ("num_samples", 100, TypeError, r"unknown keyword 'num_samples'.*did you mean 'num_steps'\?", None),
    ("x", Data(lambda rng: rng.normal(size=(40, 3)).astype(np.float32), "x of shape (40, 3) (theta has 2)"), ValueError,
     r"observed site 'x': its value has shape \(40, 3\) but its distribution has shape \(40, 2\)", None),
    ("x", Data(lambda rng: rng.normal(size=40).astype(np.float32), "x of shape (40,)"), ValueError,
     r"observed site 'x': its value has shape \(40,\) but its distribution has shape \(40, 2\)", None),
    ("x", _STRINGS_X, TypeError, r"x is an array of dtype <U3: pass numbers", None),
    ("x", _COMPLEX_X, TypeError, r"x is an array of complex numbers \(dtype .*complex64\): pass real numbers", None),
    ("guide", PerPPL("AutoNormal class", "the class AutoNormal (not an instance)"), TypeError,
     r"guide is the class AutoNormal, not a guide: make one from the model, guide=AutoNormal\(model\)", None),
    ("guide", PerPPL("the model", "the model itself"), ValueError, "guide is the model itself", None),
    ("guide", PerPPL("AutoNormal of another model", "AutoNormal of the regression model"), ValueError,
     r"guide AutoNormal was made for model '.*_regression', not for the model fitted, '.*_location'", None),
    ("guide", lambda: None, TypeError, _GUIDE_CALL, "lambda: None (takes no arguments)"),
    ("guide", PerPPL("no params", "a guide with no param statement"), ValueError, _NO_PARAMS, None),
    ("optimizer", PerPPL("string learning rate", "Adam with the learning rate '0.01'"), TypeError, _OPTIMIZER_STEP, None),
    ("optimizer", PerPPL("zero learning rate", "Adam with the learning rate 0"), ValueError,
     r"optimizer Adam leaves the parameters where they are .*: is its learning rate 0\?", None),
    ("optimizer", PerPPL("Adam class", "the PPL's Adam class (not an instance)"), TypeError,
     "optimizer must be a .*optim optimiser for a .* model", None),
]]
ROWS += [
    Row("fit", "optimizer", PerPPL("negative learning rate", "Adam with the learning rate -0.01"), ValueError,
        r"optimizer Adam cannot take a step \(Invalid learning rate: -0.01\)", ppls=("pyro",)),
    Row("fit", "optimizer", PerPPL("optax", "optax.adam(0.01) (not wrapped by optax_to_numpyro)"), TypeError,
        "optimizer must be a numpyro.optim optimiser for a NumPyro model, got GradientTransformationExtraArgs",
        ppls=("numpyro",)),
    Row("fit", "y", None, ValueError, r"y=None: the model has no observed site, and its site 'y' is a latent",
        model="regression"),
    Row("fit", "batch_args", [0], ValueError, r"batch_args: with argument 0 sliced to a minibatch of 2 of the N=40 rows "
        r"of plate 'data', the observed sites in it have sizes \{'y': \(2, 40\)\}", model="regression",
        given=(("batch_size", 10),)),
    Row("fit", "batch_args", ["y"], ValueError, r"batch_args: with y= sliced to a minibatch of 2 .* batch_args must name "
        "every per-datum argument", model="regression", given=(("batch_size", 10),)),
    Row("fit", "batch_size", 10, ValueError, r"batch_size: model '.*_per_datum' has latent site\(s\) \['z'\] in the data "
        r"plate 'data' and uses its data whole.*the autoguide AutoNormal would then make its per-datum parameters",
        model="per_datum"),
    Row("fit", "batch_size", 5, ValueError, r"batch_size=5, but the model's data plate 'data' declares subsample_size=10, "
        "and a Pyro plate takes exactly that many indices", model="own_subsample", ppls=("pyro",)),
    Row("fit", "model", Program("reads_count", "a prior sd 1 / sqrt(n), n = y.shape[0]"), UserWarning,
        r"model '.*_reads_count' reads its data outside the rows of the data plate 'data' \(N=20\).*ppzoo runs it "
        "full-batch", given=(("batch_size", 10),)),
    Row("fit", "model", Program("conditioned_float", "pyro.condition(model, data={'sigma': 1.0}) (a float)"), TypeError,
        r"observed site 'sigma': its value is a float.*pyro.condition\(model, data=\{...\}\)\) must be a torch tensor",
        ppls=("pyro",)),
    Row("Fit.to_arviz", "draws", "posterior", ValueError, r"draws must be one of \('reweighted', 'guide'\)"),
    Row("Fit.to_arviz", "pool_size", 5, ValueError, "pool_size must be an integer >= 1000, got 5"),
    Row("Fit.to_arviz", "num_samples", True, TypeError, "num_samples must be an integer >= 2, got True"),
    Row("Fit.psis_khat", "per_datum", "yes", TypeError, "per_datum must be True or False, got 'yes'"),
    Row("Fit.psis_khat", "num_samples", 1e3, TypeError, r"num_samples must be an integer >= 30, got 1000.0", "1e3"),
    Row("Fit.collapse", "threshold", -1.0, ValueError, "threshold must be a finite number >= 0, got -1.0"),
    Row("Fit.collapse", "seed", -1, ValueError, SEED_RANGE + ", got -1"),
    Row("Fit.collapse", "site", 3, TypeError, r"site must be the name \(str\) of a per-datum latent of the guide"),
    Row("Fit.save", "path", "no/such/folder/fit.npz", OSError, "path no/such/folder/fit.npz: the folder .* does not exist"),
    Row("Fit.save", "path", 3, TypeError, r"path must be a file name \(str or os.PathLike\), got 3"),
    Row("Fit.log_marginal_likelihood", "num_samples", 1.5, TypeError, "num_samples must be an integer >= 1, got 1.5"),
    Row("log_marginal_likelihood", "num_samples", True, TypeError, "num_samples must be an integer >= 1, got True"),
    Row("log_marginal_likelihood", "chunk_size", 1.5, TypeError, "chunk_size must be an integer >= 1, got 1.5"),
    Row("log_marginal_likelihood", "backend", "jax", ValueError, r"backend must be one of \('numpyro', 'pyro'\) or None"),
]
_MORE_SAMPLE = [
    # (argument, value, error, match, shown, given)
    ("num_chains", -1, ValueError, "num_chains must be an integer >= 1, got -1", None, ()),
    ("num_chains", "4", TypeError, "num_chains must be an integer >= 1, got '4'", None, ()),
    ("num_warmup", "100", TypeError, "num_warmup must be an integer >= 0, got '100'", None, ()),
    ("thinning", -1, ValueError, 'thinning must be an integer >= 1 or "auto", got -1', None, ()),
    ("step_size", True, TypeError, "step_size must be a positive number, ppzoo.inference.Constant", None, ()),
    ("batch_size", True, TypeError, "batch_size must be an integer >= 1, got True", None, ()),
    ("batch_size", -5, ValueError, "batch_size must be an integer >= 1, got -5", None, ()),
    ("method", "SGLD", ValueError, r"method must be one of \['psgld', 'sarah-ld', 'sghmc', 'sgld', 'sgld-cv', 'svrg-ld'\], got 'SGLD'",
     None, ()),
    ("method", "nuts", ValueError, "method must be one of .* got 'nuts'", None, ()),
    ("method", None, TypeError, "method must be a method name or a ppzoo Langevin kernel, got None", None, ()),
    ("temperature", 0.0, ConvergenceWarning, "the draws are not posterior draws: temperature=0: the chains ran without noise",
     None, ()),
    ("init_params", {"w": [math.inf, 0.0, 0.0]}, ValueError, r"init_params: on model .* the starting values of \['w'\] are "
     "not finite", "{'w': [inf, 0.0, 0.0]}", ()),
    ("init_params", {"W": [0.0, 0.0, 0.0]}, ValueError, r"not latent sites of the model: \['W'\]; missing: \['w'\]", None, ()),
    ("device", 0, TypeError, "device must be None, a device name such as 'cpu', 'cuda' or 'cuda:0'", None, ()),
    ("device", "gpu", ValueError, "device='gpu' (is not available to JAX|was asked for but CUDA is not available to torch)",
     None, ()),
    ("checkpoint_every", 2.5, TypeError, "checkpoint_every must be an integer >= 1, got 2.5", None, (("checkpoint", "run.nc"),)),
    ("checkpoint", 123, TypeError, r"checkpoint must be a file name \(str or os.PathLike\), got 123", None, ()),
    ("batch_args", [True], TypeError, r"batch_args entries are argument positions \(int\) or keyword names \(str\), got True",
     None, ()),
    ("batch_args", [0], ValueError, r"batch_args: with argument 0 sliced to a minibatch of 2 of the N=40 rows of plate "
     r"'data', the observed sites in it have sizes \{'y': \(2, 40\)\}", None, ()),
    ("batch_args", "y", ValueError, r"batch_args: with y= sliced to a minibatch of 2 .* batch_args must name every "
     "per-datum argument", None, ()),
    ("data_plate", "", ValueError, r"data_plate='' is not a plate of the model; its plates are \['data'\]", None, ()),
    ("adapt", None, TypeError, "adapt must be True or False, got None", None, ()),
    ("preconditioner", None, ValueError, r"preconditioner must be one of \('auto', 'dense', 'diagonal'\), got None", None, ()),
    ("inverse_mass", np.full(3, np.inf), ValueError, "inverse_mass must hold positive finite numbers; entry 0 is inf",
     "np.full(3, np.inf)", ()),
    ("jit_compile", "no", TypeError, "jit_compile must be True or False, got 'no'", None, ()),
    ("num_chain", 2, TypeError, r"unknown keyword 'num_chain'.*did you mean 'num_chains'\?", None, ()),
    ("warmup", 10, TypeError, r"unknown keyword 'warmup'.*did you mean 'num_warmup'\?", None, ()),
    ("x", Data(lambda rng: np.full((40, 3), "1.0"), "x of strings (dtype <U3)"), TypeError,
     "x is an array of dtype <U3: pass numbers", None, ()),
    ("y", Data(lambda rng: rng.normal(size=(40, 1)).astype(np.float32), "y of shape (40, 1)"), ValueError,
     _SHAPE.format("40, 1", "40,"), None, ()),
    ("y", None, ValueError, r"y=None: the model has no observed site, and its site 'y' is a latent", None, ()),
]
ROWS += [Row("sample", a, v, e, m, s, model="regression", given=g) for a, v, e, m, s, g in _MORE_SAMPLE]
ROWS += [
    Row("sample", "x", Data(lambda rng: rng.normal(size=(40, 3)).astype(np.complex64), "x of complex numbers"), TypeError,
        r"x is an array of complex numbers \(dtype complex64\): pass real numbers", model="regression",
        ppls=("numpyro",)),
]

# -- the kernels' and schedules' constructors (once) -----------------------------------------------
_KERNEL = [
    # (function, argument, value, error, match, shown)
    ("SGLD", "step_size", 0.0, ValueError, f"step_size {FINITE} > 0, got 0.0", None),
    ("SGLD", "step_size", math.nan, ValueError, f"step_size {FINITE} > 0, got nan", "nan"),
    ("SGLD", "step_size", "big", TypeError, "step_size must be a positive number, ppzoo.inference.Constant", None),
    ("SGLD", "batch_size", 0, ValueError, "batch_size must be an integer >= 1, got 0", None),
    ("SGLD", "batch_size", 1.5, TypeError, "batch_size must be an integer >= 1, got 1.5", None),
    ("SGLD", "temperature", -1.0, ValueError, f"temperature {FINITE} >= 0, got -1.0", None),
    ("SGLD", "temperature", "hot", TypeError, f"temperature {FINITE} >= 0, got 'hot'", None),
    ("SGLD", "inverse_mass", [1.0, -1.0], ValueError, "inverse_mass must hold positive finite numbers; entry 1 is -1.0", None),
    ("SGLD", "inverse_mass", [], ValueError, "inverse_mass must hold positive finite numbers; it is empty", None),
    ("SGLD", "inverse_mass", [[1.0, 2.0], [2.0, 1.0]], ValueError, "a dense inverse_mass must be positive definite", None),
    ("SGLD", "inverse_mass", "I", TypeError, r"inverse_mass must be a \(D,\) vector or a \(D, D\) matrix of numbers, got 'I'", None),
    ("SGLD", "stepsize", 1e-3, TypeError, "stepsize is not a setting of SGLD; its settings are step_size, batch_size, "
     "temperature, inverse_mass; did you mean step_size", None),
    ("SGLD", "inner_loop", 5, TypeError, "inner_loop is not a setting of SGLD", None),
    ("SGLDCV", "map_steps", 0, ValueError, "map_steps must be an integer >= 1, got 0", None),
    ("SGLDCV", "map_steps", 2.5, TypeError, "map_steps must be an integer >= 1, got 2.5", None),
    ("SGLDCV", "map_steps", True, TypeError, "map_steps must be an integer >= 1, got True", None),
    ("SGLDCV", "map_learning_rate", 0.0, ValueError, f"map_learning_rate {FINITE} > 0, got 0.0", None),
    ("SGLDCV", "map_learning_rate", math.inf, ValueError, f"map_learning_rate {FINITE} > 0, got inf", "inf"),
    ("SGLDCV", "map_learning_rate", "fast", TypeError, f"map_learning_rate {FINITE} > 0, got 'fast'", None),
    ("SVRGLD", "inner_loop", 0, ValueError, "inner_loop must be an integer >= 1, got 0", None),
    ("SVRGLD", "inner_loop", 1.5, TypeError, "inner_loop must be an integer >= 1, got 1.5", None),
    ("SVRGLD", "inner_loop", "10", TypeError, "inner_loop must be an integer >= 1, got '10'", None),
    ("SARAHLD", "inner_loop", -2, ValueError, "inner_loop must be an integer >= 1, got -2", None),
    ("SARAHLD", "map_steps", 10, TypeError, "map_steps is not a setting of SARAHLD", None),
    ("PSGLD", "decay", 0.0, ValueError, r"decay must be a number in \(0, 1\) \(the RMSprop average's alpha\), got 0.0", None),
    ("PSGLD", "decay", 1.0, ValueError, r"decay must be a number in \(0, 1\).*got 1.0", None),
    ("PSGLD", "decay", -0.5, ValueError, r"decay must be a number in \(0, 1\).*got -0.5", None),
    ("PSGLD", "decay", math.nan, ValueError, r"decay must be a number in \(0, 1\).*got nan", "nan"),
    ("PSGLD", "decay", "0.9", TypeError, r"decay must be a number in \(0, 1\).*got '0.9'", None),
    ("PSGLD", "damping", 0.0, ValueError, f"damping {FINITE} > 0, got 0.0", None),
    ("PSGLD", "damping", -1e-5, ValueError, f"damping {FINITE} > 0, got -1e-05", None),
    ("PSGLD", "damping", math.inf, ValueError, f"damping {FINITE} > 0, got inf", "inf"),
    ("PSGLD", "freeze", "yes", TypeError, "freeze must be True or False, got 'yes'", None),
    ("SGHMC", "friction", 0.0, ValueError, r"friction must be a number in \(0, 1\] \(the fraction of the velocity lost per step\), got 0.0", None),
    ("SGHMC", "friction", 1.5, ValueError, r"friction must be a number in \(0, 1\].*got 1.5", None),
    ("SGHMC", "friction", math.nan, ValueError, r"friction must be a number in \(0, 1\].*got nan", "nan"),
    ("SGHMC", "friction", "high", TypeError, r"friction must be a number in \(0, 1\].*got 'high'", None),
    ("SGLD", "model", "positional", TypeError, r"SGLD takes its settings by keyword.*NumPyroLangevin\(SGLD\(\.\.\.\), model\)", None),
    ("PSGLD", "prime_steps", 0, ValueError, "prime_steps must be an integer >= 1, got 0", None),
    ("PSGLD", "prime_steps", 1.5, TypeError, "prime_steps must be an integer >= 1, got 1.5", None),
    ("PolynomialDecay", "a", 0.0, ValueError, f"a {FINITE} > 0, got 0.0", None),
    ("PolynomialDecay", "a", math.inf, ValueError, f"a {FINITE} > 0, got inf", "inf"),
    ("PolynomialDecay", "a", "1", TypeError, f"a {FINITE} > 0, got '1'", None),
    ("PolynomialDecay", "b", 0.5, ValueError, f"b {FINITE} >= 1, got 0.5", None),
    ("PolynomialDecay", "b", math.inf, ValueError, f"b {FINITE} >= 1, got inf", "inf"),
    ("PolynomialDecay", "b", True, TypeError, f"b {FINITE} >= 1, got True", None),
    ("PolynomialDecay", "gamma", -0.1, ValueError, f"gamma {FINITE} >= 0, got -0.1", None),
    ("PolynomialDecay", "gamma", math.nan, ValueError, f"gamma {FINITE} >= 0, got nan", "nan"),
    ("PolynomialDecay", "gamma", None, TypeError, f"gamma {FINITE} >= 0, got None", None),
    ("Constant", "step_size", 0.0, ValueError, f"step_size {FINITE} > 0, got 0.0", None),
    ("Constant", "step_size", "1", TypeError, f"step_size {FINITE} > 0, got '1'", None),
]
ROWS += [Row(f, a, v, e, m, s, ppls=(None,)) for f, a, v, e, m, s in _KERNEL]

# -- the command line, ppzoo.cli.main in process: exit status 2 and one line on stderr -----------
_CLI = [
    # (argument, command line, match)
    ("command", "", "the following arguments are required: command"),
    ("command", "frobnicate", "argument command: invalid choice: 'frobnicate'"),
    ("model", "run no_such_model", "unknown model 'no_such_model'; known models: beta_vae, bl_vae, bnn_regression"),
    ("model", "run vae", "model 'vae' is a deep entry: its networks are fitted, not sampled; ppzoo fit vae fits it"),
    ("model", "fit no_such_model", "unknown model 'no_such_model'; known models: beta_vae, bl_vae, bnn_regression"),
    ("--guide", "fit vae --guide mvn", "--guide: 'vae' is a deep entry, whose guide is its own encoder"),
    ("--guide", "fit linear_regression --guide flow", "argument --guide: invalid choice: 'flow'"),
    ("--decoder", "fit linear_regression --decoder mlp", "--decoder: 'linear_regression' is a sampled entry"),
    ("--constant", "fit vae --constant 2", "--constant is the inverse_lipschitz decoder's constant"),
    ("--estimator", "fit vae --estimator dreg", "--estimator dreg is an estimator of the IWAE bound's gradient"),
    ("--kl-anneal", "fit beta_vae --objective iwae", "kl_anneal anneals the ELBO's KL term"),
    ("--num-particles", "fit vae --num-particles 0", "argument --num-particles: expected a positive integer, got '0'"),
    ("--num-samples", "run --num-samples 0", "argument --num-samples: expected a positive integer, got '0'"),
    ("--num-samples", "run --num-samples 2.5", "argument --num-samples: expected a positive integer, got '2.5'"),
    ("--num-samples", "run --num-samples 1000000000000",
     r"num_samples=1,000,000,000,000 is too many to keep: the positions alone need .* GiB, and this machine has"),
    ("--num-chains", "run --num-chains 0", "argument --num-chains: expected a positive integer, got '0'"),
    ("--num-warmup", "run --num-warmup -1", "num_warmup must be an integer >= 0, got -1"),
    ("--num-warmup", "run --num-warmup ten", "argument --num-warmup: invalid int value: 'ten'"),
    ("--thinning", "run --thinning 0", "argument --thinning: expected a positive integer, got '0'"),
    ("--step-size", "run --step-size -1", f"step_size {FINITE} > 0, got -1.0"),
    ("--step-size", "run --step-size nan", f"step_size {FINITE} > 0, got nan"),
    ("--step-size", "run --step-size abc", "argument --step-size: invalid float value: 'abc'"),
    ("--batch-size", "run --batch-size 0", "argument --batch-size: expected a positive integer, got '0'"),
    ("--batch-size", "run --batch-size 100000", r"batch_size must be at most N=569 \(the size of the data plate 'data'\), got 100000"),
    ("--inner-loop", "run --inner-loop 0", "argument --inner-loop: expected a positive integer, got '0'"),
    ("--inner-loop", "run --method sgld --inner-loop 5", "inner_loop applies to svrg-ld and sarah-ld, not to method='sgld'"),
    ("--method", "run --method hmc", "argument --method: invalid choice: 'hmc'"),
    ("--backend", "run --backend stan", "argument --backend: invalid choice: 'stan'"),
    ("--seed", "run --seed -1", SEED_RANGE + ", got -1"),
    ("--seed", f"run --seed {2**63}", SEED_RANGE + ", got 9223372036854775808"),
    ("--seed", "run --seed 1.5", "argument --seed: invalid int value: '1.5'"),
    ("--device", "run --device cpu:7", r"device='cpu:7': JAX has 1 cpu device\(s\), numbered 0 to 0"),
    ("--device", "run --backend pyro --device cpu:7", r"device='cpu:7': torch has 1 cpu device\(s\), numbered 0 to 0"),
    ("--num-sampels", "run --num-sampels 10", "unrecognized arguments: --num-sampels"),
    ("--num-sample", "run --num-sample 10", "unrecognized arguments: --num-sample$"),
    ("--out", "run --out {tmp}/no/folder/run.nc", "--out .*/no/folder/run.nc: the folder .* does not exist"),
    ("--out", "run --out {tmp}", "--out .*: is a folder; give a file name"),
    ("--resume", "run --resume {tmp}/missing.nc --out {tmp}/r.nc", "--resume .*missing.nc: no such file"),
    ("--method", "run --resume {tmp}/ck.nc --method sgld --out {tmp}/r.nc",
     "--method: a resumed run keeps the settings it was started with"),
    ("--checkpoint-every", "run --checkpoint-every 0", "argument --checkpoint-every: expected a positive integer, got '0'"),
    ("file", "summary", "the following arguments are required: file"),
    ("file", "summary {tmp}/missing.nc", "missing.nc: no such file"),
    ("files", "compare {tmp}/a.nc", "compare needs at least two files"),
    ("--kind", "plot {tmp}/a.nc --kind violin --out {tmp}/p.png", "argument --kind: invalid choice: 'violin'"),
    ("--out", "plot {tmp}/a.nc", "the following arguments are required: --out"),
    ("--num-chains", "run --resume {tmp}/ck.nc --num-chains 8 --out {tmp}/r.nc",
     "--num-chains: a resumed run keeps the settings it was started with, taken from the checkpoint"),
    ("--seed", "run --resume {tmp}/ck.nc --seed 0 --out {tmp}/r.nc",
     "--seed: a resumed run keeps the settings it was started with, taken from the checkpoint"),
    ("--backend", "run --resume {tmp}/ck.nc --backend pyro --out {tmp}/r.nc",
     "--backend: a resumed run keeps the settings it was started with, taken from the checkpoint"),
]
ROWS += [Row("cli", a, v, SystemExit, m, f"ppzoo {v}".strip().replace("{tmp}/", "").replace("{tmp}", "FOLDER"),
             ppls=(None,)) for a, v, m in _CLI]


def render() -> str:
    counts = {}
    for row in ROWS:
        key = "Fit methods" if row.function.startswith("Fit.") else (
            "kernels and schedules" if row.function in KERNELS else row.function)
        counts[key] = counts.get(key, 0) + 1
    lines = [
        "# Bad inputs and the errors they get",
        "",
        "Generated from `tests/bad_inputs.py` by `python tests/bad_inputs.py`; `tests/test_bad_inputs.py` runs",
        "the rows of `sample`, `fit`, `Fit`'s methods and `log_marginal_likelihood` on both PPLs (or on the",
        "PPLs named), those of the kernels, the schedules and the command line (`ppzoo.cli.main`, which exits",
        "with status 2 and one line on stderr) once. The message column is a fragment (a regular expression)",
        "of the error. Every error is raised before any sampling or fitting starts; a row whose error is a",
        "warning is a run that goes on after it (the model then runs full-batch).",
        "",
        f"{len(ROWS)} rows: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".",
        "",
        "| function | argument | bad value | error | message |",
        "|---|---|---|---|---|",
    ]
    for row in ROWS:
        label = row.label.replace("|", "\\|")
        if row.per_ppl and row.ppls != ("numpyro", "pyro"):
            label += f" ({', '.join(p for p in row.ppls if p) or 'plain Python'})"
        match = row.match.replace("|", "\\|")
        error = "exit 2" if row.error is SystemExit else row.error.__name__
        lines.append(f"| `{row.function}` | `{row.argument}` | `{label}` | `{error}` | {match} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render())
    print(f"wrote {DOC} ({len(ROWS)} rows)")
