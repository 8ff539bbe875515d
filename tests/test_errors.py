"""Bad input gets a clear error naming the argument or site: the cases that are not a row of the
bad-input table (``tests/bad_inputs.py``, run by ``tests/test_bad_inputs.py``): good inputs that
must pass, errors that come after the run has started, and the driver's own arguments."""

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from conftest import LINEAR_REGRESSION, slow_for

import ppzoo

KW = dict(num_warmup=5, num_samples=5, num_chains=1, progress_bar=False, step_size=1e-3)


Y = np.linspace(-1, 1, 20).astype(np.float32)


def test_numpy_integers_are_integers(regression_data):
    """One check for every count: NumPy integers pass wherever Python ones do."""
    x, y = regression_data
    idata = ppzoo.sample(
        LINEAR_REGRESSION["numpyro"], x, y=y, step_size=1e-3, batch_size=np.int64(15), num_samples=np.int64(5),
        num_warmup=np.int32(5), num_chains=np.int64(2), thinning=np.int64(1), seed=np.int64(3), progress_bar=False,
        log_likelihood=False,
    )
    assert idata.posterior.sizes["draw"] == 5 and idata.posterior.attrs["batch_size"] == 15


def test_model_without_data_plate_runs_full_batch_and_says_so():
    def no_plate(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu, 1.0).expand([y.shape[0]]).to_event(1), obs=y)

    with pytest.warns(UserWarning, match="model .*no_plate.* has no data plate"):
        idata = ppzoo.sample(no_plate, Y, **KW)
    assert idata.posterior.attrs["num_data"] == 1 and idata.posterior.attrs["batch_size"] == 1


def test_divergence_keeps_the_draws_made_so_far(regression_data):
    x, y = regression_data
    with pytest.warns(RuntimeWarning, match="every chain diverged"):
        idata = ppzoo.sample(
            LINEAR_REGRESSION["numpyro"], x, y=y, step_size=0.5, num_warmup=0, num_samples=200,
            num_chains=2, progress_bar=False, log_likelihood=False,
        )
    assert idata.posterior.sizes["draw"] < 200
    assert bool(idata.sample_stats["diverging"][:, -1].all())
    assert idata.posterior.attrs["interrupted"] == 1


def test_sgld_cv_non_finite_map_search_is_reported(regression_data):
    from ppzoo.inference import SGLDCV

    x, y = regression_data
    with pytest.raises(ValueError, match="SGLD-CV's MAP search ended at a non-finite point.*map_learning_rate"):
        ppzoo.sample(
            LINEAR_REGRESSION["numpyro"], x, y=y, method=SGLDCV(step_size=1e-3, map_learning_rate=1e30, map_steps=50),
            num_warmup=5, num_samples=5, num_chains=1, progress_bar=False,
        )


def test_numpyro_mcmc_needs_the_model():
    import jax
    from numpyro.infer import MCMC
    from ppzoo.inference import SGLD

    with pytest.raises(ValueError, match=r"SGLD needs the model to run under numpyro.infer.MCMC: NumPyroLangevin"):
        MCMC(SGLD(), num_warmup=1, num_samples=1, progress_bar=False).run(jax.random.PRNGKey(0), Y)


def test_a_kernel_given_a_model_says_how_to_wrap_it():
    from ppzoo.inference import SGLD

    with pytest.raises(TypeError, match=r"SGLD takes its settings by keyword.*NumPyroLangevin\(SGLD\(\.\.\.\), model\)"):
        SGLD(lambda y: None)


@pytest.mark.parametrize("init, match", [
    (np.zeros((3, 5)), r"shape \(num_chains, D\) = \(2, 5\), got shape \(3, 5\)"),
    (np.full((2, 5), np.nan), "non-finite values"),
])
def test_bad_init_positions(regression_data, init, match):
    from ppzoo.inference import SGLD, run_chains

    from ppzoo.backends import make_backend

    x, y = regression_data
    backend = make_backend(LINEAR_REGRESSION["numpyro"], (x,), {"y": y})
    with pytest.raises(ValueError, match="init_positions must be " + ".*" + match):
        run_chains(SGLD(step_size=1e-6), backend, num_samples=2, num_chains=2, init_positions=init, progress_bar=False)


@pytest.mark.parametrize("name", ["numpyro", "pyro"])
def test_chains_start_at_init_positions(regression_data, name):
    """With a step of 1e-8 a chain moves by about 1e-4 per step: the first draws sit at the given start."""
    from ppzoo.inference import SGLD, run_chains

    from ppzoo.backends import make_backend

    x, y = regression_data
    backend = make_backend(LINEAR_REGRESSION[name], (x,), {"y": y})
    init = np.random.default_rng(3).uniform(-1, 1, (2, backend.dim))
    run = run_chains(SGLD(step_size=1e-8), backend, num_samples=3, num_chains=2, init_positions=init,
                     progress_bar=False)
    np.testing.assert_allclose(run.positions[:, 0], init, atol=1e-3)
    assert np.abs(run.positions[:, 0] - init).max() > 0  # it moved, a little


def test_the_memory_check_names_the_numbers_and_passes_where_memory_is_unknown(monkeypatch):
    """A run whose kept positions exceed the machine's memory is refused with the sizes; where the
    system does not tell its memory, the run is not refused."""
    import os

    from ppzoo.checks import check_draws_fit_in_memory, physical_memory

    with pytest.raises(ValueError, match=r"4 x 1,000,000 x 10 x 4 = 0\.1 GiB, and this machine has 0\.0 GiB"):
        check_draws_fit_in_memory(4, 10**6, 10, memory=2**20)
    check_draws_fit_in_memory(4, 10**6, 10, memory=2**30)

    def unavailable(name):
        raise ValueError(f"unrecognized configuration name {name}")

    monkeypatch.setattr(os, "sysconf", unavailable)
    assert physical_memory() is None
    check_draws_fit_in_memory(4, 10**12, 10**3)


@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: b == "pyro"))
def test_pandas_data_are_taken_as_their_values(regression_data, backend):
    """A pandas ``DataFrame`` passed as ``x`` and a ``Series`` as ``y`` are their values: the draws
    equal those of the NumPy arrays."""
    import pandas as pd
    import torch

    x, y = regression_data
    to = (lambda a: torch.as_tensor(a)) if backend == "pyro" else (lambda a: a)
    settings = dict(method="sgld", step_size=1e-3, num_warmup=0, num_samples=2, num_chains=1, adapt=False, seed=2,
                    progress_bar=False, log_likelihood=False)
    model = LINEAR_REGRESSION[backend]
    given = ppzoo.sample(model, pd.DataFrame(x), y=pd.Series(y), **settings)
    plain = ppzoo.sample(model, to(x), y=to(y), **settings)
    np.testing.assert_array_equal(given.posterior["w"].values, plain.posterior["w"].values)


@pytest.mark.parametrize("ppl", ["numpyro", "pyro"])
@pytest.mark.parametrize("call", ["sample", "fit"])
def test_a_bare_device_number_is_one_clear_error_on_both_ppls(ppl, call):
    """torch would read ``device=3`` as ``"cuda:3"`` and JAX not at all: on both, one ``TypeError``
    naming the string to write."""
    import torch

    model = LINEAR_REGRESSION[ppl]
    x = np.linspace(-1, 1, 20).astype(np.float32)[:, None]
    data = (x, Y) if ppl == "numpyro" else (torch.as_tensor(x), torch.as_tensor(Y))
    with pytest.raises(TypeError, match=r"device must be None, a device name such as 'cpu', 'cuda' or 'cuda:3'.*got 3$"):
        if call == "sample":
            ppzoo.sample(model, data[0], y=data[1], device=3, **KW)
        else:
            if ppl == "numpyro":
                from numpyro.infer.autoguide import AutoNormal
            else:
                from pyro.infer.autoguide import AutoNormal
            ppzoo.fit(model, AutoNormal(model), data[0], y=data[1], device=3, num_steps=5, progress_bar=False)


def test_a_pyro_plate_with_its_own_subsample_size_says_how_to_write_it():
    """Pyro refuses such a plate the full set of indices that the full-data gradients need: one
    ``ValueError`` naming the plate and the way to write it, not Pyro's own words and trace shapes."""
    import pyro
    import pyro.distributions as pdist
    import torch

    def model(x, y):
        w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([2]).to_event(1))
        with pyro.plate("rows", x.shape[0], subsample_size=10) as idx:
            pyro.sample("y", pdist.Normal((x[idx] * w).sum(-1), 1.0), obs=y[idx])

    x, y = torch.ones(40, 2), torch.ones(40)
    with pytest.raises(ValueError, match=r"plate 'rows' fixes its own subsample_size.*pyro.plate\('rows', N, subsample_size=None\)"):
        ppzoo.sample(model, x, y, **KW)
