"""What a run reports and how it resumes, where the plain reading would mislead the user.

Chains that do not move fail the convergence report (ArviZ's R-hat is NaN there, which is no
pass), without NumPy's warnings; ``ppzoo summary`` says when a chain was set aside; ``resume``
takes the data however they are passed and names what differs in the program; a corrupt
checkpoint is named in one line; ``sample`` leaves the global random states alone; and the
adapted start runs under NumPyro's 64-bit mode (in a subprocess, so that the mode cannot leak
into other tests of this worker).
"""

import json
import re
import shutil
import subprocess
import sys
import textwrap
import warnings

import h5py
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pytest
import torch
from test_divergence import QUARTIC

import ppzoo
from ppzoo.checkpoint import CheckpointError
from ppzoo.cli import main
from ppzoo.diagnostics import arviz_compat, convergence
from ppzoo.diagnostics.convergence import ConvergenceWarning
from ppzoo.files import write_netcdf

#: a tiny run: no warmup, a fixed step, two chains
TINY = dict(method="sgld", num_warmup=0, num_chains=2, step_size=1e-3, adapt=False, progress_bar=False,
            log_likelihood=False, seed=5)


def numpyro_regression(x, y=None):
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([3]).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", ndist.Normal(x @ w, 1.0), obs=y)


def pyro_regression(x, y=None):
    w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([3]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Normal(x @ w, 1.0), obs=y)


REGRESSION = {"numpyro": numpyro_regression, "pyro": pyro_regression}


def regression_data(backend="numpyro"):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -0.5, 0.25]) + rng.normal(size=40)).astype(np.float32)
    return (torch.as_tensor(x), torch.as_tensor(y)) if backend == "pyro" else (x, y)


def numpy_runtime_warnings(caught):
    return [w for w in caught if w.category is RuntimeWarning and "ppzoo" not in str(w.message)
            and re.search(r"divide|invalid value|[Dd]egrees of freedom", str(w.message))]


# -- chains that do not move -------------------------------------------------------------------------
def test_constant_chains_fail_the_report_in_words():
    rng = np.random.default_rng(0)
    idata = arviz_compat.from_dict({"posterior": {"mu": np.full((4, 200), 1000.0, np.float32),
                                                  "w": rng.normal(size=(4, 200, 2))}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        convergence.check_convergence(idata)
    told = [str(w.message) for w in caught if w.category is ConvergenceWarning]
    assert len(told) == 1 and "draws that do not move: mu constant in 4 of 4 chains" in told[0]
    assert "float32 resolution" in told[0] and "w[" not in told[0]
    assert not numpy_runtime_warnings(caught), [str(w.message) for w in caught]
    assert arviz_compat.get_group(idata, "posterior").attrs["converged"] == 0


def test_a_nan_r_hat_is_a_problem_not_a_pass():
    report = convergence.convergence_report(arviz_compat.from_dict(
        {"posterior": {"mu": np.random.default_rng(1).normal(size=(2, 1000))}}))
    report.loc["mu", "r_hat"] = np.nan
    found = convergence.problems(report, num_chains=2, num_draws=1000)
    assert found == ["R-hat or ESS could not be computed (NaN): mu"]


def numpyro_narrow(y):
    mu = numpyro.sample("mu", ndist.Normal(1000.0, 3e-6))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", ndist.Normal(mu, 1.0), obs=y)


def test_a_posterior_below_float32_resolution_is_not_converged():
    """sd 3e-6 at 1000, where float32's spacing is 6e-5: every draw is the same number."""
    y = np.random.default_rng(0).normal(1000.0, 1.0, size=50).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = ppzoo.sample(numpyro_narrow, y, method="sgld", num_warmup=0, num_samples=200, num_chains=4,
                             adapt=False, init_params={"mu": np.float32(1000.0)}, progress_bar=False)
    posterior = arviz_compat.get_group(idata, "posterior")
    assert np.unique(posterior["mu"].values).size == 1
    assert posterior.attrs["converged"] == 0
    told = [str(w.message) for w in caught if w.category is ConvergenceWarning]
    assert len(told) == 1 and "mu constant in 4 of 4 chains" in told[0]
    assert not numpy_runtime_warnings(caught), [str(w.message) for w in caught]


def numpyro_with_a_constant(y):
    mu = numpyro.sample("mu", ndist.Normal(0.0, 1.0))
    numpyro.deterministic("n", jnp.asarray(float(y.shape[0])))  # constant by construction
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", ndist.Normal(mu, 1.0), obs=y)


def test_a_constant_deterministic_site_is_not_a_stuck_chain():
    y = np.random.default_rng(0).normal(size=30).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = ppzoo.sample(numpyro_with_a_constant, y, method="sgld", num_warmup=0, num_samples=100, num_chains=2,
                             step_size=1e-2, adapt=False, progress_bar=False)
    assert np.unique(arviz_compat.get_group(idata, "posterior")["n"].values).size == 1
    told = " ".join(str(w.message) for w in caught if w.category is ConvergenceWarning)
    assert "do not move" not in told and "could not be computed" not in told, told
    assert json.loads(arviz_compat.get_group(idata, "posterior").attrs["latent_sites"]) == ["mu"]


# -- ppzoo summary of a run with a chain set aside -----------------------------------------------------
def test_summary_says_a_chain_was_set_aside(tmp_path, capsys):
    y = np.zeros(20, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = ppzoo.sample(QUARTIC["numpyro"], y, num_warmup=0, num_samples=100, num_chains=4, adapt=False,
                             init_params={"theta": np.asarray([0.1, -0.2, 30.0, 0.3], np.float32)},
                             progress_bar=False, method="sgld", step_size=1e-3)
    path = str(tmp_path / "run.nc")
    write_netcdf(idata, path)
    capsys.readouterr()
    assert main(["summary", path]) == 0
    out = capsys.readouterr().out
    assert re.search(r"WARNING: 1 chain diverged \(chain 2 at draw \d+ \(sampler step \d+\)\)", out), out
    assert "set aside in the diverged_posterior group" in out and "over the other chains" in out


# -- resume ------------------------------------------------------------------------------------------
def test_resume_takes_the_data_positionally_or_by_keyword(tmp_path):
    x, y = regression_data()
    first = str(tmp_path / "first.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ppzoo.sample(numpyro_regression, x, y=y, num_samples=4, checkpoint=first, **TINY)
        second = shutil.copy(first, tmp_path / "second.nc")
        by_keyword = ppzoo.resume(first, numpyro_regression, x, y=y, num_samples=8, progress_bar=False)
        by_position = ppzoo.resume(str(second), numpyro_regression, x, y, num_samples=8, progress_bar=False)
        with pytest.raises(ValueError, match="passed differently .* it passed 1 positional argument and keywords y, "
                                             "resume got 3 positional arguments and no keywords"):
            ppzoo.resume(str(second), numpyro_regression, x, y, y, progress_bar=False)
    drawn = [arviz_compat.get_group(r, "posterior")["w"].values for r in (by_keyword, by_position)]
    assert drawn[0].shape == (2, 8, 3)
    np.testing.assert_array_equal(drawn[0], drawn[1])


def corrupt_copies(path, folder):
    """A checkpoint made unreadable four ways: cut short, its second half zeroed, not HDF5 at all,
    and with an attribute of its sampler state removed."""
    whole = open(path, "rb").read()
    copies = {"truncated": whole[: len(whole) // 3], "zeroed": whole[: len(whole) // 2] + bytes(len(whole) // 2 + 1),
              "garbage": b"not a netCDF file"}
    for name, content in copies.items():
        (folder / f"{name}.nc").write_bytes(content)
    shutil.copy(path, folder / "no_settings.nc")
    with h5py.File(folder / "no_settings.nc", "r+") as file:
        del file["sampler_state"].attrs["run"]
    return [str(folder / f"{name}.nc") for name in [*copies, "no_settings"]]


def test_a_corrupt_checkpoint_is_named_in_one_line(tmp_path, capsys):
    x, y = regression_data()
    path = str(tmp_path / "run.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ppzoo.sample(numpyro_regression, x, y=y, num_samples=4, checkpoint=path, **TINY)
    for broken in corrupt_copies(path, tmp_path):
        with pytest.raises(CheckpointError, match=re.escape(broken) + " is not a readable ppzoo checkpoint"):
            ppzoo.resume(broken, numpyro_regression, x, y=y, progress_bar=False)
        capsys.readouterr()
        assert main(["run", "--resume", broken, "--out", str(tmp_path / "out.nc"), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert err.startswith(f"ppzoo: error: {broken} is not a readable ppzoo checkpoint: the file is truncated, "
                              "corrupt or of another kind"), err
    assert issubclass(CheckpointError, ValueError)


def test_the_checkpoint_records_the_program(tmp_path):
    x, y = regression_data("pyro")
    path = str(tmp_path / "run.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ppzoo.sample(pyro_regression, x, y=y, num_samples=2, checkpoint=path, **TINY)
    from ppzoo.checkpoint import read_checkpoint

    settings = read_checkpoint(path)[2]
    assert settings["program"] == [
        {"name": "w", "distribution": "Normal", "shape": [3], "observed": False, "plates": []},
        {"name": "y", "distribution": "Normal", "shape": [40], "observed": True, "plates": ["data"]},
    ]
    assert settings["call"]["positional"] == 1 and settings["call"]["keywords"] == ["y"]
    assert sorted(settings["call"]["arguments"]) == ["x", "y"]


# -- global random states --------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_sample_leaves_the_global_random_states_as_they_were(backend):
    x, y = regression_data(backend)
    np.random.seed(11)
    torch.manual_seed(11)
    numpy_before, torch_before = np.random.get_state(), torch.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ppzoo.sample(REGRESSION[backend], x, y=y, num_samples=3, **TINY)
    numpy_after = np.random.get_state()
    assert np.array_equal(numpy_before[1], numpy_after[1]) and numpy_before[2:] == numpy_after[2:]
    assert torch.equal(torch_before, torch.get_rng_state())


# -- NumPyro's 64-bit mode ----------------------------------------------------------------------------------
X64_SCRIPT = textwrap.dedent("""
    import json, warnings
    import jax, numpy as np, numpyro, numpyro.distributions as dist, ppzoo

    def model(x, y=None):
        w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("y", dist.Normal(x @ w, 1.0), obs=y)

    before = jax.config.jax_enable_x64
    numpyro.enable_x64()
    try:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(100, 2))
        y = x @ np.array([1.0, -1.0]) + rng.normal(size=100)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = ppzoo.sample(model, x, y=y, num_samples=50, num_warmup=100, num_chains=2, progress_bar=False)
        w = idata.posterior["w"].values
        print(json.dumps({"dtype": str(w.dtype), "mean": w.mean(axis=(0, 1)).tolist(),
                          "adapted": bool(idata.posterior.attrs["adapted"])}))
    finally:
        jax.config.update("jax_enable_x64", before)
""")


@pytest.mark.slow
def test_an_adapted_run_under_numpyro_x64():
    """The Laplace start writes into arrays that JAX hands over read-only under x64. Run in a
    subprocess: x64 is process-wide, and would change the dtypes of later tests in this worker."""
    done = subprocess.run([sys.executable, "-c", X64_SCRIPT], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["dtype"] == "float64" and result["adapted"]
    np.testing.assert_allclose(result["mean"], [1.0, -1.0], atol=0.3)
