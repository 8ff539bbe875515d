"""The convergence report every run carries: ArviZ's R-hat, ESS and MCSE, and one warning when they fail.

After each run ``ppzoo.sample`` computes, per scalar parameter of the
posterior (``w[0]``, ``sigma``, ...), ArviZ's rank-normalised split R-hat,
bulk and tail ESS and the MCSE of the mean and sd
(:func:`ppzoo.diagnostics.arviz_compat.summary`, ``kind="diagnostics"``),
stores them in the posterior group's attrs (:func:`attach`) and warns once,
naming the worst parameters, when Stan's thresholds are crossed: R-hat above
:data:`RHAT_MAX`, or bulk or tail ESS below :data:`ESS_PER_CHAIN` per chain
(Vehtari et al. 2021). ``ppzoo summary`` prints the report of a stored run.

The attrs (netCDF stores only numbers, strings and arrays):

* ``convergence``: the table as JSON, ``{parameter: {"r_hat": ..., "ess_bulk": ...,
  "ess_tail": ..., "mcse_mean": ..., "mcse_sd": ...}}`` (:func:`stored_report` reads it back);
* ``max_r_hat``, ``min_ess_bulk``, ``min_ess_tail``: the worst values;
* ``converged``: 1 when no threshold is crossed, else 0.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd

from ppzoo.diagnostics import arviz_compat

__all__ = ["RHAT_MAX", "ESS_PER_CHAIN", "MIN_DRAWS", "ConvergenceWarning", "convergence_report", "problems", "assess",
           "attach",
           "stored_report", "check_convergence"]

#: Stan's threshold for the rank-normalised split R-hat
RHAT_MAX = 1.01
#: Stan's threshold for bulk and tail ESS, per chain
ESS_PER_CHAIN = 100
#: parameters named in the warning, at most
_NAMED = 3
_COLUMNS = ("r_hat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd")


class ConvergenceWarning(UserWarning):
    """The chains crossed Stan's thresholds for R-hat or ESS: the draws may not represent the posterior."""


def convergence_report(idata) -> pd.DataFrame:
    """Per scalar parameter of the posterior, ``r_hat``, ``ess_bulk``, ``ess_tail``, ``mcse_mean``
    and ``mcse_sd`` (ArviZ's, of the installed line)."""
    table = arviz_compat.summary(idata, kind="diagnostics")
    return table[list(_COLUMNS)].astype(float)


#: fewer draws per chain than this and ArviZ computes neither R-hat nor ESS
MIN_DRAWS = 4


def problems(report: pd.DataFrame, num_chains: int, num_draws: int | None = None) -> list[str]:
    """What crosses the thresholds, worst first: a phrase per criterion naming up to three
    parameters and their values; empty when the chains pass. A NaN (a parameter constant in
    every chain) is not counted, but too few draws (``num_draws`` per chain) to compute R-hat
    and ESS at all is a problem."""
    if num_draws is not None and num_draws < MIN_DRAWS:
        return [f"{num_draws} draws per chain are too few to compute R-hat and ESS (at least {MIN_DRAWS})"]
    found = []
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


def _listed(values: pd.Series, fmt: str) -> str:
    named = ", ".join(f"{name} {fmt.format(value)}" for name, value in values.iloc[:_NAMED].items())
    more = len(values) - _NAMED
    return named + (f" and {more} more" if more > 0 else "")


def attach(idata, report: pd.DataFrame, converged: bool) -> None:
    """Store ``report``, its worst values and ``converged`` in the posterior group's attrs (see
    module docstring)."""
    table = {name: {c: _finite_or_none(row[c]) for c in _COLUMNS} for name, row in report.iterrows()}
    attrs = {
        "convergence": json.dumps(table),
        "max_r_hat": _worst(report["r_hat"], max),
        "min_ess_bulk": _worst(report["ess_bulk"], min),
        "min_ess_tail": _worst(report["ess_tail"], min),
        "converged": int(converged),
    }
    arviz_compat.update_attrs(idata, attrs, groups=["posterior"])


def stored_report(idata) -> pd.DataFrame | None:
    """The report stored by :func:`attach` (``None`` for a result without one)."""
    text = arviz_compat.get_group(idata, "posterior").attrs.get("convergence")
    if text is None:
        return None
    table = pd.DataFrame.from_dict(json.loads(str(text)), orient="index")
    return table[list(_COLUMNS)].astype(float)


def assess(idata, report: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[str]]:
    """``(report, problems)``: the report of ``idata`` (computed unless given, e.g. the
    :func:`stored_report`) and what in it crosses the thresholds (:func:`problems`)."""
    if report is None:
        report = convergence_report(idata)
    sizes = arviz_compat.get_group(idata, "posterior").sizes
    return report, problems(report, int(sizes["chain"]), int(sizes["draw"]))


def check_convergence(idata, *, warn: bool = True, stacklevel: int = 3) -> pd.DataFrame:
    """Compute the report of ``idata``, store it in its attrs and, with ``warn``, issue one
    :class:`ConvergenceWarning` naming the worst parameters if the chains cross the thresholds."""
    report, found = assess(idata)
    attach(idata, report, converged=not found)
    if warn and found:
        warnings.warn(
            "the chains may not have converged (" + "; ".join(found) + "); run longer (num_warmup, num_samples, "
            "thinning) or reparameterise, and do not trust these draws until the report is clean",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )
    return report


def _finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def _worst(column: pd.Series, pick) -> float:
    values = column.dropna().to_numpy()
    return float(pick(values)) if values.size else float(np.nan)
