"""Checkpoint and resume: a resumed run gives the draws of the uninterrupted run with the same seed.

The run is stopped where a Ctrl-C is honoured (a ``KeyboardInterrupt`` right after a checkpoint
is written, as ``check_interrupt`` raises it there), then resumed from the file, in this process
and, for ``ppzoo run --resume``, in another one after a real SIGINT.
"""

import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch
from conftest import slow_for

import ppzoo
from ppzoo import checkpoint, models
from ppzoo.checkpoint import read_checkpoint
from ppzoo.diagnostics import arviz_compat

SETTINGS = dict(num_warmup=100, num_samples=60, thinning=2, num_chains=2, progress_bar=False, seed=3)


def stop_after(monkeypatch, draws):
    """Stop the next run once a checkpoint with at least ``draws`` draws is written."""
    write = checkpoint.Checkpointer.write

    def write_then_stop(self, chains, kept, done, num_samples, thinning):
        write(self, chains, kept, done, num_samples, thinning)
        if done >= draws:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.Checkpointer, "write", write_then_stop)


def groups(idata):
    return {g: arviz_compat.get_group(idata, g) for g in ("posterior", "sample_stats", "log_likelihood")}


# the adapted tuning (preconditioner, step size) on one backend, a recursive kernel's state on the other,
# and a kernel with momentum (its velocity is state)
@pytest.mark.parametrize("backend, method, adapt",
                         slow_for([("numpyro", "sgld-cv", True), ("pyro", "sarah-ld", False), ("numpyro", "sghmc", True)],
                                  lambda c: c[0] == "numpyro"))
def test_a_resumed_run_gives_the_uninterrupted_draws(tmp_path, monkeypatch, backend, method, adapt):
    spec = models.get("linear_regression")
    args, kwargs = spec.load_data()
    model = spec.model(backend)
    path = str(tmp_path / "run.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = ppzoo.sample(model, *args, method=method, backend=backend, adapt=adapt, **SETTINGS, **kwargs)
        with monkeypatch.context() as patch:
            stop_after(patch, 24)
            stopped = ppzoo.sample(model, *args, method=method, backend=backend, adapt=adapt, **SETTINGS, checkpoint=path,
                                   checkpoint_every=12, **kwargs)
        assert arviz_compat.get_group(stopped, "posterior").attrs["stopped_in"] == "sampling"
        assert read_checkpoint(path)[2]["done"] == 24
        # the file is an ArviZ result of the draws so far
        assert arviz_compat.get_group(arviz_compat.from_netcdf(path), "posterior").sizes["draw"] == 24
        resumed = ppzoo.resume(path, model, *args, progress_bar=False, **kwargs)
    for name, expected in groups(whole).items():
        got = groups(resumed)[name]
        for var in expected.data_vars:
            np.testing.assert_array_equal(got[var].values, expected[var].values, err_msg=f"{name}.{var}")
    assert read_checkpoint(path)[2]["done"] == SETTINGS["num_samples"]


@pytest.mark.slow
def test_resume_checks_the_data_and_the_file(tmp_path):
    spec = models.get("linear_regression")
    args, kwargs = spec.load_data()
    model = spec.model("pyro")
    path = str(tmp_path / "run.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ppzoo.sample(model, *args, backend="pyro", **{**SETTINGS, "num_samples": 10}, checkpoint=path, **kwargs)
    changed = {k: (v + 1.0 if hasattr(v, "shape") else v) for k, v in kwargs.items()}
    assert any(hasattr(v, "shape") for v in kwargs.values())
    with pytest.raises(ValueError, match="data given to resume differ"):
        ppzoo.resume(path, model, *args, **changed)
    with pytest.raises(ValueError, match="num_samples must be at least the 10 draws"):
        ppzoo.resume(path, model, *args, num_samples=5, **kwargs)
    with pytest.raises(FileNotFoundError, match="checkpoint .*missing.nc does not exist"):
        ppzoo.resume(str(tmp_path / "missing.nc"), model, *args, **kwargs)
    with pytest.raises(ValueError, match="checkpoint_every is set but checkpoint is not"):
        ppzoo.sample(model, *args, checkpoint_every=5, **kwargs)


def users_model(x, y=None):
    import pyro
    import pyro.distributions as dist

    w = pyro.sample("w", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(w * x, 1.0), obs=y)


def test_a_program_outside_the_zoo_needs_its_data_to_resume(tmp_path):
    x = torch.linspace(-1, 1, 50)
    path = str(tmp_path / "run.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ppzoo.sample(users_model, x, y=2 * x, **{**SETTINGS, "num_samples": 10}, checkpoint=path)
    with pytest.raises(ValueError, match="users_model, not a zoo entry: pass the model and its data"):
        ppzoo.resume(path)


@pytest.mark.slow
def test_ppzoo_run_resume_after_a_real_sigint(tmp_path, monkeypatch):
    from ppzoo import cli

    common = ["linear_regression", "--method", "sgld", "--no-adapt", "--step-size", "1e-4", "--num-warmup", "200",
              "--num-samples", "400", "--thinning", "20", "--num-chains", "2", "--no-progress"]
    cmd = [shutil.which("ppzoo") or sys.executable, *([] if shutil.which("ppzoo") else ["-m", "ppzoo.cli"])]
    proc = subprocess.Popen(cmd + ["run", *common, "--checkpoint", "ck.nc", "--checkpoint-every", "40",
                                   "--out", "stopped.nc"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if (tmp_path / "ck.nc").exists() and read_checkpoint(tmp_path / "ck.nc")[2]["done"] > 0:
                break
        except (KeyError, OSError):  # ArviZ 0.23 opens the file once per group: it was replaced in between
            pass
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    done = read_checkpoint(tmp_path / "ck.nc")[2]["done"]
    assert 0 < done < 400
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main(["run", "--resume", "ck.nc", "--out", "resumed.nc", "--no-progress"]) == 0
        assert cli.main(["run", *common, "--out", "whole.nc"]) == 0
    resumed = arviz_compat.get_group(arviz_compat.from_netcdf("resumed.nc"), "posterior")
    whole = arviz_compat.get_group(arviz_compat.from_netcdf("whole.nc"), "posterior")
    assert resumed["w"].shape == (2, 400, 10)
    np.testing.assert_array_equal(resumed["w"].values, whole["w"].values)
