"""The bad-input table: one row per (function, argument, bad value), the error it must raise and a
fragment of its message. ``tests/test_bad_inputs.py`` runs every row on both PPLs;
``python tests/bad_inputs.py`` renders the table to ``docs/bad_inputs.md`` (a test checks that
the file is up to date).

A row's ``value`` replaces one argument of a call that is otherwise good: the Gaussian location
model of ``tests/test_autoguides.py`` with 40 data (``x``, 40 x 2) and an ``AutoNormal`` guide, or,
for rows about per-datum arguments, a linear regression as users write it for NUTS
(``model(x, y=y)``, ``x`` 40 x 3, no indexing). Special values: ``DATA_*`` builders make data of the right PPL (NumPy for NumPyro, torch
for Pyro) from NumPy; ``WRONG_PPL`` is the other PPL's version of the argument.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass

import numpy as np

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"


@dataclass(frozen=True)
class Row:
    function: str  # "fit", "Fit.to_arviz", ..., "log_marginal_likelihood"
    argument: str
    value: object  # the bad value, or a Data / WrongPPL marker
    error: type
    match: str  # a fragment of the message (a regular expression)
    shown: str | None = None  # how the value is written in the docs, when repr is not readable
    model: str = "location"  # the program called: "location" (x only) or "regression" (x, y=y)

    @property
    def label(self) -> str:
        if self.shown is not None:
            return self.shown
        return self.value.shown if isinstance(self.value, Data) else repr(self.value)


@dataclass(frozen=True)
class Data:
    """Observations of the location model made from NumPy, ``(n, 2)``, by ``make(rng)``."""

    make: object
    shown: str


class WrongPPL:
    """The other PPL's version of the argument (its optimiser, its guide)."""


WRONG_PPL = WrongPPL()


class Misspelt:
    """The fit's own parameters, with one name misspelt (its last letter doubled)."""


MISSPELT = Misspelt()


def _with_nan(rng):
    x = rng.normal(size=(40, 2)).astype(np.float32)
    x[3, 1] = np.nan
    return x


def _with_inf(rng):
    x = rng.normal(size=(40, 2)).astype(np.float32)
    x[0, 0] = np.inf
    return x


NAN_DATA = Data(_with_nan, "x with one NaN")
INF_DATA = Data(_with_inf, "x with one inf")

SEED_RANGE = r"seed must be an integer in \[0, 2\*\*63 - 1\]"

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
    ("batch_size", 41, ValueError, r"batch_size must be <= the number of data N=40 \(plate 'data'\), got 41", None),
    ("batch_size", 2.5, TypeError, "batch_size must be an integer >= 1, got 2.5", None),
    ("backend", "stan", ValueError, r"backend must be one of \('numpyro', 'pyro'\) or None, got 'stan'", None),
    ("backend", WRONG_PPL, ValueError, "backend='.*', but model '.*_location' is a .* program", "the other PPL"),
    ("optimizer", WRONG_PPL, TypeError, "optimizer must be a .*optim optimiser for a .* model", "the other PPL's Adam"),
    ("optimizer", "adam", TypeError, "optimizer must be a .*optim optimiser", None),
    ("data_plate", "rows", ValueError, r"data_plate='rows' is not a plate of the model; its plates are \['data'\]", None),
    ("progress_bar", "yes", TypeError, "progress_bar must be True or False, got 'yes'", None),
    ("jit_compile", 1, TypeError, "jit_compile must be True or False, got 1", None),
    ("step_kwargs", {"t": 1}, TypeError, "step_kwargs must be a function t -> dict", None),
    ("callback", "print", TypeError, r"callback must be a function \(t, loss\) -> None", None),
    ("guide", None, TypeError, "guide must be a callable Pyro or NumPyro program, got NoneType", None),
    ("guide", WRONG_PPL, ValueError, "guide AutoNormal is a .* program but the model is a .* program", "the other PPL's AutoNormal"),
    ("x", NAN_DATA, ValueError, r"observed site 'x' contains NaN or infinite values \(1 of 80\)", None),
    ("x", INF_DATA, ValueError, r"observed site 'x' contains NaN or infinite values \(1 of 80\)", None),
    ("x", Data(lambda rng: rng.normal(size=(0, 2)).astype(np.float32), "x with 0 rows"), ValueError,
     r"x has no rows \(shape \(0, 2\)\): there must be at least one datum", None),
]

ROWS: list[Row] = [Row("fit", a, v, e, m, s) for a, v, e, m, s in _COMMON]

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
    Row("log_marginal_likelihood", "num_samples", 0, ValueError, "num_samples must be an integer >= 1, got 0"),
    Row("log_marginal_likelihood", "num_samples", 2.0, TypeError, "num_samples must be an integer >= 1, got 2.0"),
    Row("log_marginal_likelihood", "chunk_size", 0, ValueError, "chunk_size must be an integer >= 1, got 0"),
    Row("log_marginal_likelihood", "seed", -1, ValueError, SEED_RANGE),
    Row("log_marginal_likelihood", "x", NAN_DATA, ValueError, r"observed site 'x' contains NaN or infinite values"),
    Row("log_marginal_likelihood", "guide", "AutoDelta", ValueError, "point mass", "an AutoDelta guide"),
]

_SHORT_Y = Data(lambda rng: rng.normal(size=30).astype(np.float32), "y with 30 rows (x has 40)")
_LONG_Y = Data(lambda rng: rng.normal(size=50).astype(np.float32), "y with 50 rows (x has 40)")
_SHAPE = r"observed site 'y': its value has shape \({}+,\) but its distribution has shape \(40,\)"
ROWS += [
    Row("fit", "y", _SHORT_Y, ValueError, _SHAPE.format(30), model="regression"),
    Row("fit", "y", _LONG_Y, ValueError, _SHAPE.format(50), model="regression"),
    Row("log_marginal_likelihood", "y", _SHORT_Y, ValueError, _SHAPE.format(30), model="regression"),
]


def render() -> str:
    lines = [
        "# Bad inputs and the errors they get",
        "",
        "Generated from `tests/bad_inputs.py` by `python tests/bad_inputs.py`; every row is run on both PPLs",
        "by `tests/test_bad_inputs.py`. The message column is a fragment (a regular expression) of the error.",
        "",
        "| function | argument | bad value | error | message |",
        "|---|---|---|---|---|",
    ]
    for row in ROWS:
        label = row.label.replace("|", "\\|")
        match = row.match.replace("|", "\\|")
        lines.append(f"| `{row.function}` | `{row.argument}` | `{label}` | `{row.error.__name__}` | {match} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render())
    print(f"wrote {DOC} ({len(ROWS)} rows)")
