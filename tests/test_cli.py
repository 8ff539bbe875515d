"""The installed ``ppzoo`` console script, run in a real subprocess."""

import os
import shutil
import stat
import subprocess
import sys
import time

import arviz as az
import numpy as np
import pytest
from conftest import slow_for

PPZOO = shutil.which("ppzoo")


def run(*args, cwd):
    cmd = [PPZOO] if PPZOO else [sys.executable, "-m", "ppzoo.cli"]
    return subprocess.run(cmd + list(args), cwd=cwd, capture_output=True, text=True, timeout=600)


def test_console_script_is_installed():
    assert PPZOO is not None, "the ppzoo console script is not on PATH; install the package"


def test_run_help_lists_the_options(tmp_path):
    out = run("run", "--help", cwd=tmp_path)
    assert out.returncode == 0
    for option in ("--backend", "--method", "--num-samples", "--num-chains", "--seed", "--out"):
        assert option in out.stdout


@pytest.mark.parametrize("command", [(), ("list",), ("run",), ("fit",), ("summary",), ("compare",), ("plot",)])
def test_every_help_prints(tmp_path, command):
    """``--help`` of the command and of each subcommand (argparse formats help texts with ``%``:
    a literal percent sign in one crashed ``ppzoo --help``)."""
    out = run(*command, "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: ppzoo {' '.join(command)}".rstrip()) and not out.stderr
    if not command:
        assert "94% HDI" in out.stdout


@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: b == "pyro"))
def test_run_writes_inference_data(tmp_path, backend):
    out = run(
        "run", "--backend", backend, "--num-samples", "50", "--num-warmup", "100", "--thinning", "2",
        "--num-chains", "2", "--out", "short.nc", "--no-progress", cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "r_hat" in out.stdout and "ess_bulk" in out.stdout
    assert "per-datum gradient evaluations" in out.stdout
    idata = az.from_netcdf(str(tmp_path / "short.nc"))
    assert idata.posterior["w"].shape == (2, 50, 30)
    assert idata.posterior.attrs["backend"] == backend
    assert [p.name for p in tmp_path.iterdir()] == ["short.nc"]  # no temporary file left behind


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "no_such_model"], "unknown model 'no_such_model'; known models: beta_vae, bl_vae, bnn_regression, eight_schools,"),
        (["run", "--method", "hmc"], "invalid choice: 'hmc'"),
        (["run", "--num-samples", "0"], "expected a positive integer"),
        (["run", "--step-size", "-1", "--num-samples", "5", "--num-warmup", "0"], "step_size must be a finite number > 0"),
    ],
)
def test_bad_arguments_exit_nonzero_with_one_line(tmp_path, args, message):
    out = run(*args, "--no-progress", cwd=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert not list(tmp_path.iterdir())


def test_list_shows_every_entry(tmp_path):
    from ppzoo import models

    out = run("list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    table = out.stdout.strip().split("\n\n")[0].splitlines()
    assert table[0].split() == ["name", "kind", "backends", "data", "N", "latent", "dims", "description"]
    rows = {line.split()[0]: line.split()[1] for line in table[1:]}
    assert list(rows) == models.list_models()
    assert rows == {name: models.get(name).kind for name in rows}
    assert "569" in out.stdout and "numpyro, pyro" in out.stdout  # N of the breast-cancer entry
    assert "1500" in out.stdout and "10 per datum" in out.stdout  # the deep entries' digits, their latents


# the tests that read these runs may land on either xdist worker: the first to ask makes them, in a
# folder both workers share, under a file lock (torch's dependency filelock); the other waits and reads
RUNS = pytest.mark.xdist_group(name="cli_runs")


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory):
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # this run's folder, where the workers' base folders lie side by side
    folder = shared / "cli_runs"
    with FileLock(str(shared / "cli_runs.lock")):
        if not (folder / "done").exists():
            folder.mkdir(exist_ok=True)
            for method in ("sgld", "sgld-cv"):
                out = run(
                    "run", "eight_schools", "--method", method, "--num-samples", "60", "--num-warmup", "300",
                    "--thinning", "2", "--num-chains", "2", "--out", f"{method}.nc", "--no-progress", cwd=folder,
                )
                assert out.returncode == 0, out.stderr
            (folder / "done").touch()
    return folder


@RUNS
def test_summary_reports_work_and_divergences(two_runs):
    out = run("summary", "sgld.nc", cwd=two_runs)
    assert out.returncode == 0, out.stderr
    assert "r_hat" in out.stdout and "tau" in out.stdout
    assert "per-datum gradient evaluations in all" in out.stdout and "divergent draws" in out.stdout
    # the stored convergence report: 60 draws x 2 chains cannot reach 100 effective draws per chain
    assert "convergence (2 chains): max R-hat" in out.stdout
    assert "WARNING: the chains may not have converged" in out.stdout and "bulk ESS below 200" in out.stdout


@RUNS
def test_compare_ranks_runs_by_loo(two_runs):
    out = run("compare", "sgld.nc", "sgld-cv.nc", cwd=two_runs)
    assert out.returncode == 0, out.stderr
    assert "elpd_loo" in out.stdout and "sgld-cv" in out.stdout


@RUNS
@pytest.mark.parametrize("kind", ["trace", "posterior", "rank", "pair", "forest"])
def test_plot_writes_a_real_image(two_runs, kind):
    out = run("plot", "sgld.nc", "--kind", kind, "--var-names", "mu", "tau", "--out", f"{kind}.png", cwd=two_runs)
    assert out.returncode == 0, out.stderr
    png = (two_runs / f"{kind}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    from matplotlib.image import imread

    image = imread(two_runs / f"{kind}.png")
    assert image.shape[0] > 100 and image.shape[1] > 100 and image[..., :3].std() > 0.01  # not blank


@RUNS
@pytest.mark.parametrize(
    "args, message",
    [
        (["summary", "missing.nc"], "missing.nc: no such file"),
        (["summary", "notes.txt"], "not a readable netCDF file"),
        (["compare", "sgld.nc"], "compare needs at least two files"),
        (["plot", "sgld.nc", "--kind", "violin", "--out", "x.png"], "invalid choice: 'violin'"),
        (["plot", "sgld.nc", "--var-names", "nope", "--out", "x.png"], "--var-names ['nope'] not in the posterior"),
    ],
)
def test_bad_files_and_options_exit_with_one_line(two_runs, args, message):
    (two_runs / "notes.txt").write_text("not netCDF")
    out = run(*args, cwd=two_runs)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_version(tmp_path):
    from ppzoo import __version__

    out = run("--version", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"ppzoo {__version__}"


@pytest.mark.parametrize("where, message", [("missing/run.nc", "does not exist"), (".", "is a folder")])
def test_unwritable_out_fails_before_the_run(tmp_path, where, message):
    started = time.monotonic()
    out = run("run", "--out", where, "--no-progress", cwd=tmp_path)
    assert out.returncode == 2 and f"--out {where}: " in out.stderr and message in out.stderr
    assert time.monotonic() - started < 60  # no sampling happened (a default run takes minutes)


def small_result():
    from ppzoo.diagnostics import arviz_compat

    return arviz_compat.from_dict({"posterior": {"w": np.zeros((2, 5))}})


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_take_the_umask_or_the_existing_mode(tmp_path, umask):
    from ppzoo.cli import write_netcdf

    previous = os.umask(umask)
    try:
        write_netcdf(small_result(), str(tmp_path / "new.nc"))
        existing = tmp_path / "existing.nc"
        existing.write_bytes(b"old")
        existing.chmod(0o640)
        write_netcdf(small_result(), str(existing))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.nc").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(existing.stat().st_mode) == 0o640 and existing.read_bytes() != b"old"


def test_writing_through_a_symlink_keeps_the_link(tmp_path):
    from ppzoo.cli import write_netcdf
    from ppzoo.diagnostics import arviz_compat

    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "run.nc"
    target.write_bytes(b"old")
    link = tmp_path / "latest.nc"
    link.symlink_to(target)
    write_netcdf(small_result(), str(link))
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert arviz_compat.get_group(arviz_compat.from_netcdf(str(target)), "posterior")["w"].shape == (2, 5)


@pytest.mark.filterwarnings("ignore::ppzoo.diagnostics.convergence.ConvergenceWarning")
def test_a_failed_write_saves_the_result_elsewhere_and_says_where(tmp_path, monkeypatch, capsys):
    from ppzoo import cli
    from ppzoo.diagnostics import arviz_compat

    # the folder is gone by the time the run ends (the check before the run passed)
    monkeypatch.setattr(cli, "check_writable", lambda path, option="--out": None)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", "linear_regression", "--method", "sgld", "--num-warmup", "0", "--no-adapt",
                     "--step-size", "1e-4", "--num-samples", "20", "--thinning", "1", "--num-chains", "2",
                     "--out", "gone/run.nc", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "could not write gone/run.nc" in err
    fallback = err.rsplit("the result is in ", 1)[1].strip()
    try:
        assert arviz_compat.get_group(arviz_compat.from_netcdf(fallback), "posterior").sizes["draw"] == 20
    finally:
        os.remove(fallback)


def test_summary_of_a_fit_says_its_draws_are_not_chains(tmp_path):
    """A ``Fit.to_arviz`` result has one "chain" of independent draws: no R-hat column (it would
    be NaN) and no convergence claim, but what the draws are and their PSIS k-hat."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer.autoguide import AutoNormal

    import ppzoo
    from ppzoo.files import write_netcdf

    x = np.random.default_rng(0).normal(1.0, 1.0, 30).astype(np.float32)

    def model(x):
        m = numpyro.sample("m", dist.Normal(0.0, 3.0))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("x", dist.Normal(m, 1.0), obs=x)

    fit = ppzoo.fit(model, AutoNormal(model), x, num_steps=300, refine=False, progress_bar=False)
    write_netcdf(fit.to_arviz(num_samples=200), str(tmp_path / "fit.nc"))
    out = run("summary", "fit.nc", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "not chains" in out.stdout and "PSIS k-hat" in out.stdout
    for claim in ("r_hat", "nan", "NaN", "R-hat <="):
        assert claim not in out.stdout, claim
    assert "Shape validation" not in out.stderr
    write_netcdf(fit.to_arviz(num_samples=10), str(tmp_path / "few.nc"))  # too few draws for PSIS: said
    out = run("summary", "few.nc", cwd=tmp_path)
    assert out.returncode == 0 and "no PSIS k-hat: it needs at least 30 draws" in out.stdout
