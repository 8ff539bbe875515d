"""A full disk never loses a run: a run whose files would not fit is refused before it starts, a
checkpoint that cannot be written does not stop the run, and ``ppzoo run`` puts a result it cannot
write to ``--out`` elsewhere, or says that nowhere took it, without a traceback or a crash.

A full disk is simulated by making the writer raise ``ENOSPC`` (and ``shutil.disk_usage`` report
little free space), and, for the crash, by a file-size limit (``RLIMIT_FSIZE``): a write past it
fails with ``EFBIG`` as one on a full disk fails with ``ENOSPC``, down in HDF5 too.
"""

import collections
import errno
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pytest
from conftest import numpyro_gaussian_location

import ppzoo
from ppzoo import cli, files
from ppzoo.checkpoint import read_checkpoint
from ppzoo.diagnostics import arviz_compat
from ppzoo.diagnostics.convergence import ConvergenceWarning

SETTINGS = dict(method="sgld", adapt=False, step_size=1e-3, num_warmup=10, num_samples=60, thinning=1, num_chains=2,
                progress_bar=False, seed=5)
CLI_RUN = ["run", "linear_regression", "--method", "sgld", "--num-warmup", "0", "--no-adapt", "--step-size", "1e-4",
           "--num-samples", "20", "--thinning", "1", "--num-chains", "2", "--no-progress"]
Usage = collections.namedtuple("Usage", "total used free")
FULL = OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).normal(0.5, 1.0, size=50).astype(np.float32)


@pytest.fixture(scope="module")
def whole(data):
    """The run without a checkpoint."""
    return sample(data)


def sample(data, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ppzoo.sample(numpyro_gaussian_location, data, **SETTINGS, **kwargs)


def same_draws(a, b):
    for group in ("posterior", "sample_stats"):
        for var, values in arviz_compat.get_group(b, group).data_vars.items():
            np.testing.assert_array_equal(arviz_compat.get_group(a, group)[var].values, values.values, err_msg=var)


def files_left(*folders):
    """The result files, checkpoints and temporary files in ``folders``, empty ones too."""
    return sorted(p for folder in folders for p in os.listdir(folder) if p.startswith(("run", "ck", ".ppzoo-")))


def free_space(monkeypatch, free):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10 * free, 9 * free, free))


def test_sample_refuses_checkpoints_that_do_not_fit_on_disk(tmp_path, monkeypatch, data):
    free_space(monkeypatch, 100 * 2**10)
    path = tmp_path / "run.nc"
    with pytest.raises(OSError) as caught:
        sample(data, checkpoint=str(path))
    message = str(caught.value)
    assert message.startswith(f"checkpoint {path}: the run's files need about ")
    assert "the checkpoint, 2 chains x 60 draws x (1 posterior value + 1 unconstrained) x 4 bytes, twice" in message
    assert f"and {tmp_path} has 100.0 KiB free" in message
    assert "give checkpoint a file on another disk, or keep fewer draws (num_samples)" in message
    assert not list(tmp_path.iterdir())


def failing_writes(monkeypatch, module, fails):
    """``module.write_netcdf`` raising ENOSPC on the calls ``fails(call number, path)`` picks."""
    write, calls = files.write_netcdf, []

    def write_or_fail(idata, path, *args, **kwargs):
        calls.append(path)
        if fails(len(calls), path):
            raise FULL
        return write(idata, path, *args, **kwargs)

    monkeypatch.setattr(module, "write_netcdf", write_or_fail)
    return calls


def test_a_checkpoint_that_cannot_be_written_warns_and_the_run_goes_on(tmp_path, monkeypatch, data, whole):
    path = str(tmp_path / "run.nc")
    # the checkpoint at the end of warmup is written, the next two tries fail, the one after succeeds
    calls = failing_writes(monkeypatch, files, lambda call, _: call in (2, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = sample(data, checkpoint=path, checkpoint_every=12)
    said = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning) and "checkpoint" in str(w.message)]
    assert len(said) == 2, said
    assert said[0].startswith(f"checkpoint {path} could not be written ([Errno 28] No space left on device); "
                              "the last good checkpoint there holds 0 draws per chain")
    assert "returned whole" in said[0] and "tried again after each block" in said[0]
    assert said[1].startswith(f"checkpoint {path} is written again, with ")
    assert len(calls) > 3
    same_draws(idata, whole)
    assert "checkpoint_error" not in arviz_compat.get_group(idata, "posterior").attrs
    assert read_checkpoint(path)[2]["done"] == SETTINGS["num_samples"]  # the last checkpoint is whole
    assert os.listdir(tmp_path) == ["run.nc"]


def test_a_checkpoint_never_written_leaves_the_result_whole_with_the_error(tmp_path, monkeypatch, data, whole):
    path = str(tmp_path / "run.nc")
    failing_writes(monkeypatch, files, lambda call, _: True)
    with pytest.warns(RuntimeWarning, match="no checkpoint of this run has been written") as caught:
        idata = sample(data, checkpoint=path, checkpoint_every=12)
    assert len([w for w in caught if "could not be written" in str(w.message)]) == 1  # once, not per block
    same_draws(idata, whole)
    recorded = arviz_compat.get_group(idata, "posterior").attrs["checkpoint_error"]
    assert recorded == (f"checkpoint {path} could not be written ([Errno 28] No space left on device); "
                        "no checkpoint of this run has been written")
    assert not os.listdir(tmp_path)


def keep_the_result(monkeypatch):
    """The result ``ppzoo run`` samples, kept for comparison."""
    kept, sample_ = [], ppzoo.sample

    def sample_and_keep(*args, **kwargs):
        kept.append(sample_(*args, **kwargs))
        return kept[-1]

    monkeypatch.setattr(ppzoo, "sample", sample_and_keep)
    return kept


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """A current, a home and a temporary folder of their own, and a full disk's folder for ``--out``."""
    made = {name: tmp_path / name for name in ("work", "home", "temp", "full")}
    for folder in made.values():
        folder.mkdir()
    monkeypatch.chdir(made["work"])
    monkeypatch.setenv("HOME", str(made["home"]))
    monkeypatch.setattr(tempfile, "tempdir", str(made["temp"]))
    return made


@pytest.mark.filterwarnings("ignore::ppzoo.diagnostics.convergence.ConvergenceWarning")
def test_ppzoo_run_refuses_an_out_that_does_not_fit(folders, monkeypatch, capsys):
    free_space(monkeypatch, 10 * 2**10)
    out = str(folders["full"] / "run.nc")
    assert cli.main([*CLI_RUN, "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ppzoo: error: --out {out}: the run's files need about ")
    assert "(the result, 2 chains x 20 draws x (12 posterior values + 442 log-likelihood values) x 4 bytes = " in err
    assert f"and {folders['full']} has 10.0 KiB free" in err
    assert err.endswith("give --out a file on another disk, or keep fewer draws (--num-samples)")
    # with a checkpoint on the same disk, the two count together
    assert cli.main([*CLI_RUN, "--out", out, "--checkpoint", str(folders["full"] / "ck.nc")]) == 2
    err = capsys.readouterr().err
    assert f"--checkpoint {folders['full'] / 'ck.nc'} and --out {out}: the run's files need about " in err
    assert not files_left(*folders.values())


@pytest.mark.filterwarnings("ignore::ppzoo.diagnostics.convergence.ConvergenceWarning")
def test_ppzoo_run_puts_a_result_it_cannot_write_in_the_current_folder(folders, monkeypatch, capsys):
    kept = keep_the_result(monkeypatch)
    failing_writes(monkeypatch, cli, lambda _, path: str(folders["full"]) in str(path))
    out = str(folders["full"] / "run.nc")
    assert cli.main([*CLI_RUN, "--out", out]) == 1
    err = capsys.readouterr().err
    fallback = err.rsplit("the result is in ", 1)[1].strip()
    assert f"ppzoo: error: could not write {out} (No space left on device); the result is in " in err
    assert os.path.dirname(fallback) == str(folders["work"]) and os.path.basename(fallback).startswith("run-")
    same_draws(arviz_compat.from_netcdf(fallback), kept[0])
    assert files_left(*folders.values()) == [os.path.basename(fallback)]


@pytest.mark.filterwarnings("ignore::ppzoo.diagnostics.convergence.ConvergenceWarning")
def test_ppzoo_run_says_when_no_folder_takes_the_result(folders, monkeypatch, capsys):
    failing_writes(monkeypatch, cli, lambda call, path: True)
    out = str(folders["full"] / "run.nc")
    assert cli.main([*CLI_RUN, "--out", out]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"ppzoo: error: could not write {out} (No space left on device), nor a copy in "
                   f"{folders['work']} (No space left on device); {folders['home']} (No space left on device); "
                   f"{folders['temp']} (No space left on device): the result is not saved. Free some space and "
                   "run again, or give --out a file on another disk")
    assert not files_left(*folders.values())  # no empty file left behind


# ppzoo run, whose writes fail past a file-size limit once the sampling is done (SIGXFSZ ignored,
# so that a write past it fails with EFBIG, as on a full disk)
LIMITED = """
import resource, signal, sys
import ppzoo
from ppzoo import cli
sample = ppzoo.sample
def sample_then_limit(*args, **kwargs):
    idata = sample(*args, **kwargs)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16384, resource.RLIM_INFINITY))
    return idata
ppzoo.sample = sample_then_limit
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file-size limits")
def test_a_write_failing_inside_hdf5_does_not_crash_ppzoo_run(folders):
    env = {**os.environ, "HOME": str(folders["home"]), "TMPDIR": str(folders["temp"])}
    out = subprocess.run([sys.executable, "-c", LIMITED, *CLI_RUN, "--out", "run.nc"], cwd=folders["work"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, (out.returncode, out.stderr[-3000:])  # a crash is -11 (SIGSEGV)
    assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr
    assert "ppzoo: error: could not write run.nc (File too large), nor a copy in " in out.stderr
    assert "the result is not saved" in out.stderr
    assert not files_left(*folders.values())  # neither a partial nor an empty file
