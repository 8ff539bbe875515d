"""The convergence report every run carries: ArviZ's R-hat, ESS and MCSE, and one warning when they fail.

After each run ``ppzoo.sample`` computes, per scalar parameter of the
posterior (``w[0]``, ``sigma``, ...), ArviZ's rank-normalised split R-hat,
bulk and tail ESS and the MCSE of the mean and sd
(:func:`ppzoo.diagnostics.arviz_compat.summary`, ``kind="diagnostics"``),
stores them in the posterior group's attrs (:func:`attach`) and warns once,
naming the worst parameters, when Stan's thresholds are crossed: R-hat above
:data:`RHAT_MAX`, or bulk or tail ESS below :data:`ESS_PER_CHAIN` per chain
(Vehtari et al. 2021). A parameter whose draws do not move (constant within a chain: a posterior
sd below float32 resolution at its value, say) or whose R-hat or ESS is NaN fails too: R-hat and ESS
say nothing about such chains, and ArviZ's NaN is not a pass. An element its constraint fixes (the unit
diagonal of an ``LKJCholesky`` draw: the same value in every draw of every chain while the variable's
other elements move) is a constant, and is left out (:func:`fixed_elements`). NumPy's warnings from those computations
(a division by a zero variance) are silenced here and said in words instead (:func:`quiet_arithmetic`).
``ppzoo summary`` prints the report of a stored run.

The attrs (netCDF stores only numbers, strings and arrays):

* ``convergence``: the table as JSON, ``{parameter: {"r_hat": ..., "ess_bulk": ...,
  "ess_tail": ..., "mcse_mean": ..., "mcse_sd": ...}}`` (:func:`stored_report` reads it back);
* ``max_r_hat``, ``min_ess_bulk``, ``min_ess_tail``: the worst values;
* ``converged``: 1 when no threshold is crossed, else 0;
* ``latent_sites``: the variables that must move (JSON; the model's latents: a deterministic
  site may be constant by construction), where the run knew them.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings

import numpy as np
import pandas as pd

from ppzoo.diagnostics import arviz_compat

__all__ = ["RHAT_MAX", "ESS_PER_CHAIN", "MIN_DRAWS", "ConvergenceWarning", "convergence_report", "problems", "assess",
           "attach", "stored_report", "check_convergence", "still_chains", "fixed_elements", "quiet_arithmetic"]

#: Stan's threshold for the rank-normalised split R-hat
RHAT_MAX = 1.01
#: Stan's threshold for bulk and tail ESS, per chain
ESS_PER_CHAIN = 100
#: parameters named in the warning, at most
_NAMED = 3
_COLUMNS = ("r_hat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd")


class ConvergenceWarning(UserWarning):
    """The chains crossed Stan's thresholds for R-hat or ESS: the draws may not represent the posterior."""


@contextlib.contextmanager
def quiet_arithmetic():
    """NumPy's ``RuntimeWarning``s silenced (and its floating-point errors ignored) inside the block.

    ArviZ's R-hat and ESS of chains that do not move divide by a zero variance, and of too few
    draws take a variance with no degrees of freedom; the user would see bare warnings from inside
    ArviZ. :func:`problems` says what they mean instead."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@contextlib.contextmanager
def _arviz_logs_quiet():
    """ArviZ's own log lines (``Shape validation failed`` for one chain or a few draws) held back
    inside the block: :func:`problems` says what a report that cannot be computed means."""
    import logging

    logger = logging.getLogger("arviz")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def convergence_report(idata) -> pd.DataFrame:
    """Per scalar parameter of the posterior, ``r_hat``, ``ess_bulk``, ``ess_tail``, ``mcse_mean``
    and ``mcse_sd`` (ArviZ's, of the installed line)."""
    with quiet_arithmetic(), _arviz_logs_quiet():
        table = arviz_compat.summary(idata, kind="diagnostics")
    return table[list(_COLUMNS)].astype(float)


def fixed_elements(idata, variables=None) -> list[str]:
    """The scalar parameters that are fixed by their variable's constraint: the same value in every
    draw of every chain while other elements of the same variable move (the unit diagonal and the
    zeros above it of an ``LKJCholesky`` draw, say). They are constants, not chains that do not move:
    R-hat and ESS do not apply to them, and :func:`problems` leaves them out."""
    posterior = arviz_compat.get_group(idata, "posterior")
    found = []
    for name, variable in posterior.data_vars.items():
        if variables is not None and name not in variables:
            continue
        values = np.asarray(variable.transpose("chain", "draw", ...).values)
        if values.ndim < 3 or values.shape[1] < 2:
            continue
        flat = values.reshape(values.shape[0] * values.shape[1], -1)
        with quiet_arithmetic():
            same = np.all(flat == flat[:1], axis=0)
        if same.any() and not same.all():
            found += [_element_name(name, values.shape[2:], k) for k in np.flatnonzero(same)]
    return found


def still_chains(idata, variables=None) -> pd.Series:
    """Per scalar parameter whose draws do not move in some chain (every draw of that chain equal),
    the number of such chains; parameters that move in every chain are left out, and so are
    variables not in ``variables`` (default: none left out). Named as the report names them
    (``w[0]``, ``w[0, 1]``)."""
    posterior = arviz_compat.get_group(idata, "posterior")
    counts = {}
    for name, variable in posterior.data_vars.items():
        if variables is not None and name not in variables:
            continue
        values = np.asarray(variable.transpose("chain", "draw", ...).values)
        if values.shape[1] < 2:
            continue
        flat = values.reshape(values.shape[0], values.shape[1], -1)
        still = np.sum(np.all(flat == flat[:, :1], axis=1), axis=0)  # per element: chains that never moved
        for k in np.flatnonzero(still):
            counts[_element_name(name, values.shape[2:], k)] = int(still[k])
    return pd.Series(counts, dtype=int)


def _element_name(name: str, shape: tuple, flat_index: int) -> str:
    if not shape:
        return name
    return f"{name}[{', '.join(str(int(i)) for i in np.unravel_index(flat_index, shape))}]"


#: fewer draws per chain than this and ArviZ computes neither R-hat nor ESS
MIN_DRAWS = 4


def problems(report: pd.DataFrame, num_chains: int, num_draws: int | None = None,
             still: pd.Series | None = None, latent=None) -> list[str]:
    """What crosses the thresholds, worst first: a phrase per criterion naming up to three
    parameters and their values; empty when the chains pass. Too few draws (``num_draws`` per
    chain) to compute R-hat and ESS at all is a problem; so are draws that do not move
    (``still``: :func:`still_chains`) and an R-hat or ESS that is NaN for a parameter of the
    ``latent`` variables (default: every parameter)."""
    if num_draws is not None and num_draws < MIN_DRAWS:
        return [f"{num_draws} draws per chain are too few to compute R-hat and ESS (at least {MIN_DRAWS})"]
    checked = report if latent is None else report[[name.split("[")[0] in latent for name in report.index]]
    found = _unmoving(checked, num_chains, still)
    r_hat = report["r_hat"].dropna()
    high = r_hat[r_hat > RHAT_MAX].sort_values(ascending=False)
    if len(high):
        found.append(f"R-hat above {RHAT_MAX}: " + _listed(high, "{:.3g}"))
    floor = ESS_PER_CHAIN * num_chains
    for column, label in (("ess_bulk", "bulk ESS"), ("ess_tail", "tail ESS")):
        ess = report[column].dropna()
        low = ess[ess < floor].sort_values()
        if len(low):
            found.append(f"{label} below {floor} ({ESS_PER_CHAIN} per chain): " + _listed(low, "{:.0f}"))
    return found


def _unmoving(report: pd.DataFrame, num_chains: int, still: pd.Series | None) -> list[str]:
    """The phrases for parameters whose chains do not move, and for the others whose R-hat or ESS
    is NaN (ArviZ gives NaN, not a large R-hat, when every chain is constant)."""
    found = []
    still = pd.Series(dtype=int) if still is None else still
    if len(still):
        ordered = still.sort_values(ascending=False, kind="stable")
        found.append(
            "draws that do not move: " + _listed(ordered, "constant in {:d} of " + f"{num_chains} chains")
            + "; R-hat and ESS mean nothing for constant chains, which come from a posterior sd below "
            "float32 resolution at the parameter's value (about 1e-7 of it; rescale or centre the "
            "parameter, or use 64-bit floats) or from a step size too small to move"
        )
    undefined = report[report[["r_hat", "ess_bulk", "ess_tail"]].isna().any(axis=1)].index.difference(still.index)
    if len(undefined):
        found.append("R-hat or ESS could not be computed (NaN): " + _named(list(undefined)))
    return found


def _named(names: list) -> str:
    more = len(names) - _NAMED
    return ", ".join(names[:_NAMED]) + (f" and {more} more" if more > 0 else "")


def _listed(values: pd.Series, fmt: str) -> str:
    named = ", ".join(f"{name} {fmt.format(value)}" for name, value in values.iloc[:_NAMED].items())
    more = len(values) - _NAMED
    return named + (f" and {more} more" if more > 0 else "")


def attach(idata, report: pd.DataFrame, converged: bool, latent=None) -> None:
    """Store ``report``, its worst values, ``converged`` and the ``latent`` variables (if known) in
    the posterior group's attrs (see module docstring)."""
    table = {name: {c: _finite_or_none(row[c]) for c in _COLUMNS} for name, row in report.iterrows()}
    attrs = {
        "convergence": json.dumps(table),
        "max_r_hat": _worst(report["r_hat"], max),
        "min_ess_bulk": _worst(report["ess_bulk"], min),
        "min_ess_tail": _worst(report["ess_tail"], min),
        "converged": int(converged),
    }
    if latent is not None:
        attrs["latent_sites"] = json.dumps(sorted(latent))
    arviz_compat.update_attrs(idata, attrs, groups=["posterior"])


def stored_report(idata) -> pd.DataFrame | None:
    """The report stored by :func:`attach` (``None`` for a result without one)."""
    text = arviz_compat.get_group(idata, "posterior").attrs.get("convergence")
    if text is None:
        return None
    table = pd.DataFrame.from_dict(json.loads(str(text)), orient="index")
    return table[list(_COLUMNS)].astype(float)


def assess(idata, report: pd.DataFrame | None = None, latent=None) -> tuple[pd.DataFrame, list[str]]:
    """``(report, problems)``: the report of ``idata`` (computed unless given, e.g. the
    :func:`stored_report`) and what in it crosses the thresholds (:func:`problems`), the
    ``latent`` variables (default: the stored ``latent_sites``, else all) checked for draws
    that do not move."""
    if report is None:
        report = convergence_report(idata)
    posterior = arviz_compat.get_group(idata, "posterior")
    if latent is None and "latent_sites" in posterior.attrs:
        latent = json.loads(str(posterior.attrs["latent_sites"]))
    sizes = posterior.sizes
    still = still_chains(idata, latent)
    fixed = fixed_elements(idata, latent)
    if fixed:  # constants of the constraint, not chains that do not move
        still = still.drop(fixed, errors="ignore")
        report = report.drop(fixed, errors="ignore")
    found = problems(report, int(sizes["chain"]), int(sizes["draw"]), still, latent)
    temperature = posterior.attrs.get("temperature")
    if found and temperature is not None and float(temperature) == 0.0:
        found = [
            "temperature=0: the chains ran without noise, so they optimise towards a mode of the posterior rather "
            "than sample it, and once there their draws do not move; R-hat and ESS do not apply (temperature > 0 "
            "samples: 1 the posterior, below 1 a cold posterior)"
        ]
    return report, found


def check_convergence(idata, *, warn: bool = True, stacklevel: int = 3, latent=None) -> pd.DataFrame:
    """Compute the report of ``idata``, store it in its attrs and, with ``warn``, issue one
    :class:`ConvergenceWarning` naming the worst parameters if the chains cross the thresholds.
    ``latent``: the model's latent variables, the ones that must move (default: every variable)."""
    report, found = assess(idata, latent=latent)
    attach(idata, report, converged=not found, latent=latent)
    if warn and found:
        if found[0].startswith("temperature=0"):
            message = f"the draws are not posterior draws: {found[0]}"
        else:
            message = ("the chains may not have converged (" + "; ".join(found) + "); run longer (num_warmup, "
                       "num_samples, thinning) or reparameterise, and do not trust these draws until the report is clean")
        warnings.warn(message, ConvergenceWarning, stacklevel=stacklevel)
    return report


def _finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def _worst(column: pd.Series, pick) -> float:
    values = column.dropna().to_numpy()
    return float(pick(values)) if values.size else float(np.nan)
