"""The one module that knows which ArviZ line is installed.

ArviZ 1.x (``arviz-base`` / ``arviz-stats`` / ``arviz-plots``, pip's choice
on Python 3.12 and newer) returns results as ``xarray.DataTree``; the legacy
0.23 line (Python 3.11 and older) as ``arviz.InferenceData``. ppzoo hands back
the object of the line the user has, with the same groups, variable names,
dims, coords and attrs under both. Everything in ppzoo that builds, reads,
writes, summarises or plots such a result goes through this module; the
conversions themselves are ArviZ's (``arviz_base.from_dict`` under 1.x,
``arviz.from_dict`` under 0.23).

netCDF files written under either line open under the other: both store one
netCDF-4 group per ArviZ group (written here with the ``h5netcdf`` engine).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping, Sequence

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "ARVIZ_VERSION", "DATATREE", "SUMMARY_INTERVAL", "SUMMARY_COLUMNS", "PLOT_KINDS",
    "from_dict", "is_result", "group_names", "has_group", "get_group", "add_group", "update_attrs",
    "to_netcdf", "from_netcdf", "summary", "compare", "psislw", "plot",
]

# arviz-base (1.x) imports numpyro lazily (an ``importlib.util._LazyModule``): a submodule imported
# before the lazy parent has run (``import numpyro.optim``, in ppzoo or in the user's script) is then
# executed twice, and numpyro's SVI rejects an optimiser made from the other copy's class ("Expected
# either an instance of numpyro.optim._NumPyroOptim ..."); reading an attribute runs numpyro's own import now
if type(sys.modules.get("numpyro")).__name__ == "_LazyModule":
    sys.modules["numpyro"].__version__  # noqa: B018

#: the installed ArviZ version, e.g. ``"1.3.0"`` or ``"0.23.4"``
ARVIZ_VERSION: str = az.__version__
#: True under ArviZ 1.x (results are ``xarray.DataTree``), False under 0.23 (``InferenceData``)
DATATREE: bool = int(ARVIZ_VERSION.split(".")[0]) >= 1

#: the credible interval :func:`summary` reports under both lines: ``(kind, probability)``.
#: 1.x defaults to an 89% equal-tailed interval and 0.23 to a 94% HDI; 0.23's summary has
#: no equal-tailed interval, so ppzoo asks both for the 94% highest-density interval.
SUMMARY_INTERVAL = ("hdi", 0.94)
_LOWER, _UPPER = "hdi94_lb", "hdi94_ub"
#: :func:`summary`'s columns by ``kind``, in order, under both lines
SUMMARY_COLUMNS = {
    "stats": ["mean", "sd", _LOWER, _UPPER],
    "diagnostics": ["ess_bulk", "ess_tail", "r_hat", "mcse_mean", "mcse_sd"],
}
SUMMARY_COLUMNS["all"] = SUMMARY_COLUMNS["stats"] + SUMMARY_COLUMNS["diagnostics"]

#: ``ppzoo plot --kind`` -> the plotting function of each line (1.x: arviz-plots)
_PLOTS = {
    "trace": ("plot_trace_dist", "plot_trace"),
    "posterior": ("plot_dist", "plot_posterior"),
    "rank": ("plot_rank", "plot_rank"),
    "pair": ("plot_pair", "plot_pair"),
    "forest": ("plot_forest", "plot_forest"),
    # drawn from the posterior_predictive and observed_data groups
    "ppc": ("plot_ppc_dist", "plot_ppc"),
}
PLOT_KINDS = tuple(_PLOTS)

#: the columns of :func:`compare`, named as 0.23 names them (1.x: ``elpd`` and ``p``)
_COMPARE_RENAME = {"elpd": "elpd_loo", "p": "p_loo"}
_COMPARE_COLUMNS = ["rank", "elpd_loo", "p_loo", "elpd_diff", "weight", "se", "dse", "warning"]


# -- building a result ---------------------------------------------------------
def from_dict(groups: Mapping[str, Mapping[str, np.ndarray]], *, dims=None, coords=None, attrs=None):
    """The ArviZ result of ``groups`` (``{group: {variable: array}}``) for the installed line.

    ``dims`` maps a variable to the names of its dims after ``(chain, draw)``
    (groups whose name contains ``"data"`` have no sample dims); a
    ``log_likelihood`` variable may take only the leading dims of a
    same-named ``observed_data`` variable. ``attrs`` is added to every group.
    Returns an ``xarray.DataTree`` (1.x) or an ``arviz.InferenceData`` (0.23).
    """
    groups = {name: dict(values) for name, values in groups.items()}
    with warnings.catch_warnings():
        # a run stopped before its first draw has fewer draws than chains, on purpose
        warnings.filterwarnings("ignore", message="More chains .* than draws")  # 0.23
        warnings.filterwarnings("ignore", message="Found chain dimension to be longer than draw")  # 1.x
        result = _from_dict(groups, dims, coords)
    if attrs:
        update_attrs(result, attrs)
    return result


def _from_dict(groups, dims, coords):
    # both lines drop warmup groups unless asked to keep them
    keep = {"save_warmup": True} if any(name.startswith("warmup_") for name in groups) else {}
    if DATATREE:
        from arviz_base import from_dict as base_from_dict

        # 1.x reads the dims of the predictions groups from pred_dims (0.23 from dims for all groups)
        predicted = any(name.startswith("predictions") for name in groups)
        pred = {"pred_dims": dims, "pred_coords": coords} if predicted else {}
        return base_from_dict(groups, dims=dims, coords=coords, **pred, **keep)
    return az.from_dict(**groups, dims=dims, coords=coords, **keep)


def is_result(data) -> bool:
    """Whether ``data`` is an ArviZ result: an ``xarray.DataTree`` or an ``arviz.InferenceData``."""
    if isinstance(data, xr.DataTree):
        return True
    # under 1.x, touching ``az.InferenceData`` raises a MigrationWarning
    return not DATATREE and isinstance(data, az.InferenceData)


def group_names(data) -> list[str]:
    """The names of the groups of ``data`` (``posterior``, ``sample_stats``, ...)."""
    if isinstance(data, xr.DataTree):
        return list(data.children)
    if not is_result(data):
        raise TypeError(f"expected an ArviZ result (xarray.DataTree or arviz.InferenceData), got {type(data).__name__}")
    return list(data.groups())


def has_group(data, name: str) -> bool:
    """Whether ``data`` has the group ``name``."""
    return name in group_names(data)


def get_group(data, name: str) -> xr.Dataset:
    """Group ``name`` of ``data`` as an ``xarray.Dataset``; a ``KeyError`` names the groups there are."""
    if not has_group(data, name):
        raise KeyError(f"no group {name!r}; the result has {group_names(data)}")
    if isinstance(data, xr.DataTree):
        return data[name].to_dataset()
    return getattr(data, name)


def add_group(data, name: str, dataset: xr.Dataset):
    """Add ``dataset`` to ``data`` as group ``name`` (in place) and return ``data``."""
    if isinstance(data, xr.DataTree):
        data[name] = xr.DataTree(dataset)
    else:
        data.add_groups({name: dataset})
    return data


def update_attrs(data, attrs: Mapping, groups: Sequence[str] | None = None) -> None:
    """Add ``attrs`` to the attrs of every group of ``data`` (or of those named in ``groups``),
    in place (:func:`get_group` returns a copy under 1.x)."""
    for name in group_names(data) if groups is None else groups:
        if isinstance(data, xr.DataTree):
            data[name].attrs.update(attrs)
        else:
            getattr(data, name).attrs.update(attrs)


# -- files -----------------------------------------------------------------------
def to_netcdf(data, path) -> None:
    """Write ``data`` to the netCDF-4 file ``path``, one netCDF group per ArviZ group."""
    data.to_netcdf(os.fspath(path), engine="h5netcdf")


def from_netcdf(path):
    """Read a result written by :func:`to_netcdf` under either line, loaded into memory."""
    # one open file for all groups: ``az.from_netcdf`` (0.x) reopens the path once per group, so a
    # file replaced meanwhile (a running sampler renames each new checkpoint over the old one)
    # mixes two versions and fails; an open handle keeps the version it opened
    with xr.open_datatree(os.fspath(path), engine="h5netcdf") as tree:
        tree = tree.load()
    return tree if DATATREE else az.InferenceData.from_datatree(tree)


# -- statistics ------------------------------------------------------------------
def summary(data, var_names: Sequence[str] | None = None, *, kind: str = "all", group: str = "posterior",
            round_to="none") -> pd.DataFrame:
    """``arviz.summary`` with the same columns under both lines (:data:`SUMMARY_COLUMNS`).

    The interval is the 94% highest-density interval (:data:`SUMMARY_INTERVAL`),
    in columns ``hdi94_lb`` and ``hdi94_ub``; ESS and R-hat are ArviZ's
    rank-normalised bulk and tail ESS and split R-hat. ``kind`` is ``"all"``,
    ``"stats"`` or ``"diagnostics"``. Rows are named ``"w[0]"``-style.
    """
    if kind not in SUMMARY_COLUMNS:
        raise ValueError(f"kind must be one of {sorted(SUMMARY_COLUMNS)}, got {kind!r}")
    interval_kind, prob = SUMMARY_INTERVAL
    names = None if var_names is None else list(var_names)
    if DATATREE:
        table = az.summary(data, var_names=names, group=group, kind=kind, ci_kind=interval_kind, ci_prob=prob,
                           round_to=round_to)
    else:
        table = az.summary(data, var_names=names, group=group, kind=kind, hdi_prob=prob, round_to=round_to)
        table = table.rename(columns={f"hdi_{(1 - prob) / 2:.0%}": _LOWER, f"hdi_{(1 + prob) / 2:.0%}": _UPPER})
    missing = [c for c in SUMMARY_COLUMNS[kind] if c not in table.columns]
    if missing:
        raise RuntimeError(f"arviz {ARVIZ_VERSION} summary lacks the columns {missing}; it gave {list(table.columns)}")
    return table[SUMMARY_COLUMNS[kind]]


def compare(results: Mapping[str, object]) -> pd.DataFrame:
    """``arviz.compare`` of ``{name: result}`` by PSIS-LOO, with 0.23's column names under both lines."""
    if DATATREE:
        table = az.compare(dict(results), round_to="none").rename(columns=_COMPARE_RENAME)
    else:
        table = az.compare(dict(results), ic="loo")
    return table[[c for c in _COMPARE_COLUMNS if c in table.columns]]


def ess_array(samples, method: str = "bulk") -> np.ndarray:
    """ArviZ's rank-normalised ESS of ``samples`` ``(C, S, K)`` (chains, draws, quantities):
    ``(K,)`` (``arviz_stats``' array interface under 1.x, ``az.ess`` of a dataset under 0.23)."""
    samples = np.asarray(samples, dtype=np.float64)
    if DATATREE:
        from arviz_stats.base import array_stats

        return np.asarray(array_stats.ess(samples, chain_axis=0, draw_axis=1, method=method), dtype=np.float64)
    return np.asarray(az.ess(az.convert_to_dataset(samples), method=method)["x"].values, dtype=np.float64)


def rhat_array(samples) -> np.ndarray:
    """ArviZ's rank-normalised split R-hat of ``samples`` ``(C, S, K)``: ``(K,)``."""
    samples = np.asarray(samples, dtype=np.float64)
    if DATATREE:
        from arviz_stats.base import array_stats

        return np.asarray(array_stats.rhat(samples, chain_axis=0, draw_axis=1), dtype=np.float64)
    return np.asarray(az.rhat(az.convert_to_dataset(samples))["x"].values, dtype=np.float64)


def psislw(log_ratios) -> tuple[np.ndarray, np.ndarray]:
    """Pareto-smoothed log weights and k-hat of ``log_ratios`` ``(..., S)`` (draws last).

    ArviZ's ``psislw`` (``arviz_stats`` array interface under 1.x) with
    relative efficiency 1; returns ``(log_weights (..., S), khat (...))``.
    The two lines take opposite signs: 0.23's ``psislw`` smooths the ratios
    it is given, 1.x's those of minus its input (it is handed ``log p(y_i | theta)``
    for PSIS-LOO, whose ratios are ``1 / p(y_i | theta)``).
    """
    log_ratios = np.asarray(log_ratios, dtype=np.float64)
    if DATATREE:
        from arviz_stats.base import array_stats

        log_weights, khat = array_stats.psislw(-log_ratios, r_eff=1.0, axis=-1)
    else:
        log_weights, khat = az.psislw(log_ratios, reff=1.0)
    return np.asarray(log_weights), np.asarray(khat)


# -- plots -----------------------------------------------------------------------
def plot(data, kind: str, path, var_names: Sequence[str] | None = None, dpi: int = 100) -> None:
    """Draw ArviZ's ``kind`` plot of the posterior of ``data`` with matplotlib and save it to ``path``.

    ``kind`` is one of :data:`PLOT_KINDS`; under 1.x they map to arviz-plots'
    ``plot_trace_dist``, ``plot_dist``, ``plot_rank``, ``plot_pair`` and
    ``plot_forest``, under 0.23 to ``plot_trace``, ``plot_posterior``,
    ``plot_rank``, ``plot_pair`` and ``plot_forest``.
    """
    if kind not in _PLOTS:
        raise ValueError(f"plot kind must be one of {', '.join(PLOT_KINDS)}; got {kind!r}")
    import matplotlib.pyplot as plt

    names = None if var_names is None else list(var_names)
    new_name, legacy_name = _PLOTS[kind]
    try:
        if DATATREE:
            drawn = getattr(az, new_name)(data, var_names=names, backend="matplotlib")
            drawn.savefig(os.fspath(path), dpi=dpi, bbox_inches="tight")
        else:
            axes = getattr(az, legacy_name)(data, var_names=names)
            np.asarray(axes).ravel()[0].get_figure().savefig(os.fspath(path), dpi=dpi, bbox_inches="tight")
    finally:
        plt.close("all")
