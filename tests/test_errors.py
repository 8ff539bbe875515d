"""Bad input gets a clear error naming the argument or site."""

import numpy as np
import numpyro
import numpyro.distributions as dist
import pyro
import pyro.distributions as pdist
import pytest
from conftest import LINEAR_REGRESSION

import ppzoo

KW = dict(num_warmup=5, num_samples=5, num_chains=1, progress_bar=False, step_size=1e-3)


def discrete_latent(y):
    k = numpyro.sample("k", dist.Poisson(3.0))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", dist.Normal(k, 1.0), obs=y)


def per_datum_latent(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    with numpyro.plate("data", y.shape[0]):
        z = numpyro.sample("z", dist.Normal(mu, 1.0))
        numpyro.sample("y", dist.Normal(z, 1.0), obs=y)


def pyro_discrete_latent(y):
    k = pyro.sample("k", pdist.Poisson(3.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", pdist.Normal(k, 1.0), obs=y)


def not_a_program(x):
    return x * 2


Y = np.linspace(-1, 1, 20).astype(np.float32)


def test_not_callable():
    with pytest.raises(TypeError, match="model must be a callable"):
        ppzoo.sample(42, Y, **KW)


def test_program_without_sample_statements():
    with pytest.raises(TypeError, match="neither a Pyro nor a NumPyro program"):
        ppzoo.sample(not_a_program, Y, **KW)


def test_nan_observation_names_the_site(regression_data):
    x, y = regression_data
    y = y.copy()
    y[3] = np.nan
    with pytest.raises(ValueError, match="observed site 'y'.*NaN"):
        ppzoo.sample(LINEAR_REGRESSION["numpyro"], x, y=y, **KW)


@pytest.mark.parametrize("model", [discrete_latent, pyro_discrete_latent])
def test_discrete_latent_names_the_site(model):
    with pytest.raises(ValueError, match="latent site 'k' is discrete.*marginalise it out in the model"):
        ppzoo.sample(model, Y, **KW)


def test_per_datum_latent_on_large_data_names_the_site_and_the_ways_out():
    big = np.zeros(1001, dtype=np.float32)
    with pytest.raises(ValueError, match=r"latent sites \['z'\] lie inside the data plate 'data'.*N=1001 is more "
                                         r"than 1000\. Marginalise the latents out, fit the model by SVI"):
        ppzoo.sample(per_datum_latent, big, **KW)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"step_size": 0.0}, "step_size must be > 0"),
        ({"step_size": -1.0}, "step_size must be > 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": 61}, "batch_size must be at most N=60"),
        ({"num_samples": 0}, "num_samples must be an integer >= 1, got 0"),
        ({"num_chains": 0}, "num_chains must be an integer >= 1, got 0"),
        ({"temperature": -1.0}, "temperature must be a finite number >= 0"),
        ({"data_plate": "rows"}, "data_plate='rows' is not a plate of model .* its plates are: 'data'"),
        ({"method": "hmc"}, r"method must be one of \['psgld', 'sarah-ld', 'sgld', 'sgld-cv', 'svrg-ld'\], got 'hmc'"),
        ({"method": "sarah-ld", "inner_loop": 0}, "inner_loop must be an integer >= 1, got 0"),
        ({"method": "sgld", "inner_loop": 5}, "inner_loop applies to svrg-ld and sarah-ld"),
        ({"method": "svrg-ld", "batch_size": 61}, "batch_size must be at most N=60"),
        ({"method": "sarah-ld", "temperature": -0.5}, "temperature must be a finite number >= 0"),
        ({"backend": "stan"}, "backend must be one of"),
    ],
)
def test_bad_arguments(regression_data, kwargs, match):
    x, y = regression_data
    options = {**KW, **kwargs}
    with pytest.raises(ValueError, match=match):
        ppzoo.sample(LINEAR_REGRESSION["numpyro"], x, y=y, **options)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "svrg-ld", "inner_loop": 2.5}, "inner_loop must be an integer >= 1, got 2.5"),
        ({"num_samples": 10.0}, "num_samples must be an integer >= 1, got 10.0"),
        ({"seed": "1"}, r"seed must be an integer in \[0, 2\*\*63 - 1\], got '1'"),
        ({"log_likelihood": "no"}, "log_likelihood must be True or False, got 'no'"),
        ({"progress_bar": 0}, "progress_bar must be True or False, got 0"),
        ({"step_size": lambda t: 1e-3}, "step_size must be a positive number, ppzoo.inference.Constant"),
    ],
)
def test_arguments_of_the_wrong_type(regression_data, kwargs, match):
    x, y = regression_data
    with pytest.raises(TypeError, match=match):
        ppzoo.sample(LINEAR_REGRESSION["numpyro"], x, y=y, **{**KW, **kwargs})


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


def test_kernel_object_and_separate_settings_conflict(regression_data):
    from ppzoo.inference import SARAHLD

    x, y = regression_data
    with pytest.raises(ValueError, match=r"pass \['step_size'\] to it instead"):
        ppzoo.sample(LINEAR_REGRESSION["numpyro"], x, y=y, method=SARAHLD(), step_size=1e-3, **{k: v for k, v in KW.items() if k != "step_size"})


def test_numpyro_mcmc_needs_the_model():
    import jax
    from numpyro.infer import MCMC
    from ppzoo.inference import SGLD

    with pytest.raises(ValueError, match=r"SGLD needs the model to run under numpyro.infer.MCMC"):
        MCMC(SGLD(), num_warmup=1, num_samples=1, progress_bar=False).run(jax.random.PRNGKey(0), Y)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"adapt": "yes"}, TypeError, "adapt must be True or False"),
        ({"inverse_mass": [1.0, 0.0, 1.0, 1.0, 1.0]}, ValueError, "inverse_mass must hold positive finite numbers; entry 1"),
        ({"inverse_mass": [1.0, 1.0]}, ValueError, r"one row per unconstrained dimension, D=5, got shape \(2,\)"),
        ({"inverse_mass": np.ones((2, 3))}, ValueError, r"a \(D,\) vector or a \(D, D\) matrix"),
        ({"inverse_mass": -np.eye(5)}, ValueError, "positive definite"),
        ({"preconditioner": "full"}, ValueError, r"preconditioner must be one of \('auto', 'dense', 'diagonal'\)"),
    ],
)
def test_bad_adaptation_settings(regression_data, kwargs, error, match):
    x, y = regression_data
    settings = {**KW, "step_size": None, **kwargs}
    with pytest.raises(error, match=match):
        ppzoo.sample(LINEAR_REGRESSION["numpyro"], x, y=y, **settings)


@pytest.mark.parametrize(
    ("settings", "error", "match"),
    [
        ({"decay": 0.0}, ValueError, r"decay must be a number in \(0, 1\).*got 0.0"),
        ({"decay": 1.0}, ValueError, r"decay must be a number in \(0, 1\).*got 1.0"),
        ({"decay": -0.5}, ValueError, r"decay must be a number in \(0, 1\)"),
        ({"decay": "0.9"}, ValueError, r"decay must be a number in \(0, 1\)"),
        ({"damping": 0.0}, ValueError, "damping must be a finite number > 0, got 0.0"),
        ({"damping": -1e-5}, ValueError, "damping must be a finite number > 0"),
        ({"damping": float("inf")}, ValueError, "damping must be a finite number > 0"),
        ({"freeze": "yes"}, TypeError, "freeze must be True or False"),
        ({"prime_steps": 0}, ValueError, "prime_steps must be an integer >= 1, got 0"),
    ],
)
def test_bad_psgld_settings(settings, error, match):
    from ppzoo.inference import PSGLD

    with pytest.raises(error, match=match):
        PSGLD(**settings)


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
