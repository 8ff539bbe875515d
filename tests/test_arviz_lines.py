"""Files written under either ArviZ line open under the other, and the CLI reads them.

``tests/data/*_arviz0.nc`` were written under ArviZ 0.23 (Python 3.11) and
``*_arviz1.nc`` under ArviZ 1.x (Python 3.13) by ``tests/data/make_arviz_files.py``;
whichever line runs this test reads both. Both hold the same run (same seed
and settings; the draws differ in float32 rounding between the JAX releases of
the two interpreters).
"""

import pathlib

import arviz as az
import numpy as np
import pytest
import xarray as xr

from ppzoo.cli import main as cli
from ppzoo.diagnostics import arviz_compat

DATA = pathlib.Path(__file__).resolve().parent / "data"
LINES = [0, 1]


def _open_both_ways(path):
    """The file read by ArviZ's own reader and by ppzoo's."""
    return az.from_netcdf(str(path)), arviz_compat.from_netcdf(path)


@pytest.mark.parametrize("line", LINES)
def test_a_sampled_run_from_either_line_opens(line):
    for result in _open_both_ways(DATA / f"sample_arviz{line}.nc"):
        assert arviz_compat.is_result(result)
        assert isinstance(result, xr.DataTree) == arviz_compat.DATATREE
        assert set(arviz_compat.group_names(result)) == {"posterior", "sample_stats", "log_likelihood", "observed_data"}
        post = result.posterior
        assert post["theta_tilde"].dims == ("chain", "draw", "theta_tilde_dim_0")
        assert post["theta_tilde"].shape == (2, 100, 8)
        assert result.log_likelihood["y"].dims == ("chain", "draw", "schools")
        assert result.observed_data["y"].dims == ("schools",)
        stats = result.sample_stats
        assert {"step_size", "diverging", "lp", "grad_evals"} <= set(stats.data_vars)
        assert stats["diverging"].dtype == bool
        assert post.attrs["inference_library"] == "ppzoo" and post.attrs["method"] == "sgld"
        assert np.all(np.isfinite(stats["lp"].values))
        loo = az.loo(result)
        assert np.isfinite(float(loo.elpd if arviz_compat.DATATREE else loo.elpd_loo))
        table = arviz_compat.summary(result, var_names=["mu", "tau"])
        assert list(table.index) == ["mu", "tau"] and np.isfinite(table.values.astype(float)).all()


@pytest.mark.parametrize("kind", ["sample", "fit"])
def test_both_lines_write_the_same_groups_names_dims_coords_and_attrs(kind):
    old, new = (arviz_compat.from_netcdf(DATA / f"{kind}_arviz{line}.nc") for line in LINES)
    assert sorted(arviz_compat.group_names(old)) == sorted(arviz_compat.group_names(new))
    for group in arviz_compat.group_names(old):
        a, b = arviz_compat.get_group(old, group), arviz_compat.get_group(new, group)
        assert set(a.data_vars) == set(b.data_vars), group
        for name in a.data_vars:
            assert (a[name].dims, a[name].dtype) == (b[name].dims, b[name].dtype), (group, name)
        for dim in a.dims:
            np.testing.assert_array_equal(a[dim].values, b[dim].values)
        ours = {k for k in a.attrs if k not in ("created_at", "arviz_version") and not k.startswith("creation_")}
        assert ours - {"sample_dims"} <= set(b.attrs), group
        for key in ours & set(b.attrs) - {"inverse_mass", "sample_dims"}:
            assert a.attrs[key] == b.attrs[key], (group, key)


@pytest.mark.parametrize("line", LINES)
def test_a_fit_from_either_line_opens(line):
    for result in _open_both_ways(DATA / f"fit_arviz{line}.nc"):
        assert set(arviz_compat.group_names(result)) == {"posterior", "sample_stats", "log_likelihood", "observed_data"}
        assert result.posterior["theta"].shape == (1, 200)
        assert result.sample_stats["log_weight"].shape == (1, 200)
        assert result.log_likelihood["x"].dims == ("chain", "draw", "data")
        assert result.posterior.attrs["backend"] == "numpyro"


def test_the_cli_reads_files_of_both_lines(tmp_path, capsys):
    old, new = (str(DATA / f"sample_arviz{line}.nc") for line in LINES)
    assert cli(["summary", old]) == 0
    first = capsys.readouterr().out
    assert cli(["summary", new]) == 0
    second = capsys.readouterr().out
    for out in (first, second):
        assert "hdi94_lb" in out and "r_hat" in out and "per-datum gradient evaluations in all" in out
    # the same columns, whichever line wrote the file
    assert first.splitlines()[1].split() == second.splitlines()[1].split()
    assert cli(["compare", old, new]) == 0
    out = capsys.readouterr().out
    assert "elpd_loo" in out and "sample_arviz0" in out and "sample_arviz1" in out
    for line, path in zip(LINES, (old, new)):
        image = tmp_path / f"rank{line}.png"
        assert cli(["plot", path, "--kind", "rank", "--var-names", "mu", "--out", str(image)]) == 0
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("k", [0.3, 0.6, 0.9])
def test_psislw_k_hat_matches_the_tail_of_known_ratios(k):
    """Ratios ``w = U^(-k)``, ``U ~ Uniform(0, 1)``, are Pareto: ``P(w > t) = t^(-1 / k)``, shape
    ``k``. Both ArviZ lines' ``psislw`` (which take opposite signs) must find it."""
    uniform = np.random.default_rng(0).uniform(size=20_000)
    log_weights, khat = arviz_compat.psislw(-k * np.log(uniform) - 3.0)
    assert float(khat) == pytest.approx(k, abs=0.05)
    assert log_weights.shape == uniform.shape
    assert float(np.logaddexp.reduce(log_weights)) == pytest.approx(0.0, abs=1e-9)  # normalised


def test_numpyro_submodules_imported_after_arviz_are_one_copy():
    """arviz-base (1.x) imports numpyro lazily; ``import numpyro.optim`` after it used to load a second
    copy, whose optimisers numpyro's own ``SVI`` rejected. ppzoo runs the deferred import first."""
    import subprocess
    import sys

    code = ("import ppzoo.diagnostics.arviz_compat\nimport numpyro.optim\nimport numpyro.infer.svi as svi\n"
            "assert svi._NumPyroOptim is numpyro.optim._NumPyroOptim\n"
            "numpyro.infer.SVI(lambda: None, lambda: None, numpyro.optim.Adam(0.1), numpyro.infer.Trace_ELBO())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
