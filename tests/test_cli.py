"""The installed ``ppzoo`` console script, run in a real subprocess."""

import shutil
import subprocess
import sys

import arviz as az
import pytest

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


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
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
        (["run", "no_such_model"], "unknown model 'no_such_model'; known models: logistic_regression"),
        (["run", "--method", "hmc"], "invalid choice: 'hmc'"),
        (["run", "--num-samples", "0"], "expected a positive integer"),
        (["run", "--step-size", "-1", "--num-samples", "5", "--num-warmup", "0"], "step_size must be > 0"),
    ],
)
def test_bad_arguments_exit_nonzero_with_one_line(tmp_path, args, message):
    out = run(*args, "--no-progress", cwd=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert not list(tmp_path.iterdir())
