"""Programs that read their data beyond the rows ppzoo gives them, on both backends.

ppzoo minibatches a program written for NUTS by slicing its arguments with N rows. A program that
also reads its data elsewhere (``n = x.shape[0]`` in a prior, a group count ``g.max() + 1``, a
standardisation inside the model), that observes a second data set of N entries in another plate,
that scales its likelihood by ``N / B`` itself, or that indexes a short argument with the plate's
indices would see another model on every minibatch. Each case is checked against what was not
written here: closed forms of conjugate Gaussian regressions (exact posteriors and potentials) and
NumPyro's NUTS on the same program.

Sampled means are checked within 4 Monte Carlo standard errors (ArviZ's ``mcse_mean``), sds within
4 ``mcse_sd`` plus 3% of the sd, the most the unadjusted Langevin chain inflates it at the adapted
step size (``tests/test_program_idioms.py``); against NUTS, 4 standard errors of the difference.
Seeds are fixed.
"""

import warnings

import arviz as az
import jax
import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pytest
import torch
from conftest import slow_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ppzoo
from ppzoo.backends import make_backend
from ppzoo.diagnostics import arviz_compat
from ppzoo.diagnostics.convergence import ConvergenceWarning

SD_BIAS = 0.03  # Langevin's step-size inflation of the sd allowed (module docstring)
READS = r"model '.*' reads its data outside the rows of the data plate 'data'"
FULL_BATCH = READS + r" \(N={n}\) it is given: .*{what}.*; ppzoo runs it full-batch"
CONVERT = {"numpyro": np.asarray, "pyro": torch.as_tensor}


def regression_data(n, slope=1.0, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).astype(np.float32)
    return x, (slope * x + rng.normal(size=n)).astype(np.float32)


def exact_slope(x, y, prior_sd, noise_sd=1.0):
    """Posterior mean and sd of ``b`` in ``y_i ~ N(b x_i, noise_sd^2)``, ``b ~ N(0, prior_sd^2)``."""
    x, y = x.astype(float), y.astype(float)
    precision = prior_sd**-2 + np.sum(x * x) / noise_sd**2
    return np.sum(x * y) / noise_sd**2 / precision, precision**-0.5


def slope_potential(b, x, y, prior_sd, noise_sd=1.0):
    """``-log p(b, y | x)`` up to a constant, of the same regression, at slopes ``b`` ``(K,)``."""
    b, x, y = np.asarray(b, dtype=float)[:, None], x.astype(float), y.astype(float)
    return 0.5 * b[:, 0] ** 2 / prior_sd**2 + 0.5 * np.sum((y - b * x) ** 2, axis=1) / noise_sd**2


def check_against(idata, name, mean, sd):
    table = arviz_compat.summary(idata, var_names=[name])
    got = table.loc[name]
    assert abs(got["mean"] - mean) < 4 * got["mcse_mean"], (got["mean"], mean, got["mcse_mean"])
    assert abs(got["sd"] - sd) < 4 * got["mcse_sd"] + SD_BIAS * sd, (got["sd"], sd, got["mcse_sd"])


def potentials_at(backend, values):
    """The backend's full-data potential at unconstrained values ``(K,)`` of its one latent."""
    theta = backend.asarray(np.asarray(values, dtype=np.float32)[:, None])
    return backend.to_numpy(backend.full_potential(theta)).astype(float)


# -- 1. a prior scaled by the number of data (a regularised horseshoe's tau0 is) -------------------
def numpyro_scaled_prior(x, y):
    n = x.shape[0]
    b = numpyro.sample("b", ndist.Normal(0.0, 1.0 / np.sqrt(n)))
    with numpyro.plate("data", n):
        numpyro.sample("y", ndist.Normal(b * x, 1.0), obs=y)


def pyro_scaled_prior(x, y):
    n = x.shape[0]
    b = pyro.sample("b", pdist.Normal(0.0, 1.0 / n**0.5))
    with pyro.plate("data", n):
        pyro.sample("y", pdist.Normal(b * x, 1.0), obs=y)


SCALED_PRIOR = {"numpyro": numpyro_scaled_prior, "pyro": pyro_scaled_prior}


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_a_prior_scaled_by_the_number_of_data_runs_full_batch_with_the_exact_potential(backend):
    """Sliced, ``n`` would be B (or 1 in the full-data prior term): the program runs full-batch,
    says so, and its potential is the closed form's at every point (up to one constant)."""
    x, y = regression_data(200)
    convert = CONVERT[backend]
    with pytest.warns(UserWarning, match=FULL_BATCH.format(n=200, what=r"site 'b' \(distribution's scale")):
        oracle = make_backend(SCALED_PRIOR[backend], (convert(x), convert(y)))
    assert oracle.layout.data_plate is None and not oracle.batch_args
    b = np.array([-0.5, 0.0, 0.4, 1.2])
    got = potentials_at(oracle, b)
    want = slope_potential(b, x, y, prior_sd=200**-0.5)
    np.testing.assert_allclose(got - got[0], want - want[0], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_a_prior_scaled_by_the_number_of_data_is_refused_beyond_the_full_batch_size(backend):
    x, y = regression_data(1001)
    convert = CONVERT[backend]
    with pytest.raises(ValueError, match=READS + r" it is given: .*site 'b' \(distribution's scale.*N=1001 is more "
                                              r"than 1000\. Pass N .* as an argument.*subsample_size=None.*batch_args"):
        make_backend(SCALED_PRIOR[backend], (convert(x), convert(y)))


@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: b == "pyro"))
def test_a_prior_scaled_by_the_number_of_data_samples_the_exact_posterior(backend):
    """The case users found: the slope came out about twice the exact posterior mean."""
    x, y = regression_data(200)
    mean, sd = exact_slope(x, y, prior_sd=200**-0.5)
    convert = CONVERT[backend]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", ConvergenceWarning)
        idata = ppzoo.sample(SCALED_PRIOR[backend], convert(x), convert(y), num_warmup=500, num_samples=1000, seed=0,
                             progress_bar=False)
    check_against(idata, "b", mean, sd)


# -- statistics of the data: a standardisation, a group count ----------------------------------
def numpyro_standardised(x, y):
    b = numpyro.sample("b", ndist.Normal(0.0, 1.0))
    z = (x - x.mean()) / x.std()
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", ndist.Normal(b * z, 1.0), obs=y)


def pyro_standardised(x, y):
    b = pyro.sample("b", pdist.Normal(0.0, 1.0))
    z = (x - x.mean()) / x.std(unbiased=False)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Normal(b * z, 1.0), obs=y)


def numpyro_group_count(g, y):
    with numpyro.plate("groups", int(np.max(g)) + 1):
        a = numpyro.sample("a", ndist.Normal(0.0, 1.0))
    with numpyro.plate("data", g.shape[0]):
        numpyro.sample("y", ndist.Normal(a[g], 1.0), obs=y)


def pyro_group_count(g, y):
    with pyro.plate("groups", int(g.max()) + 1):
        a = pyro.sample("a", pdist.Normal(0.0, 1.0))
    with pyro.plate("data", g.shape[0]):
        pyro.sample("y", pdist.Normal(a[g], 1.0), obs=y)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_a_standardisation_inside_the_model_runs_full_batch_with_the_exact_potential(backend):
    x, y = regression_data(150, seed=4)
    x = 3.0 * x + 2.0  # so that standardising matters
    convert = CONVERT[backend]
    model = {"numpyro": numpyro_standardised, "pyro": pyro_standardised}[backend]
    with pytest.warns(UserWarning, match=FULL_BATCH.format(n=150, what=r"site 'y' \(its log-likelihood of the same data")):
        oracle = make_backend(model, (convert(x), convert(y)))
    z = ((x - x.mean()) / x.std()).astype(np.float32)
    b = np.array([-0.5, 0.0, 0.4, 1.2])
    got, want = potentials_at(oracle, b), slope_potential(b, z, y, prior_sd=1.0)
    np.testing.assert_allclose(got - got[0], want - want[0], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_a_group_count_from_the_data_runs_full_batch(backend):
    rng = np.random.default_rng(5)
    g = rng.integers(0, 4, 120)
    y = rng.normal(size=120).astype(np.float32)
    convert = CONVERT[backend]
    model = {"numpyro": numpyro_group_count, "pyro": pyro_group_count}[backend]
    with pytest.warns(UserWarning, match=FULL_BATCH.format(n=120, what=r"plate 'groups' \(size\); site 'a'")):
        oracle = make_backend(model, (convert(g), convert(y)))
    assert oracle.layout.data_plate is None and oracle.layout.latent[0].shape == (4,)


# -- 2. two observed data sets of the same length, in different plates -------------------------
def numpyro_two_data_sets(ya, yb):
    mu = numpyro.sample("mu", ndist.Normal(0.0, 10.0))
    with numpyro.plate("data", ya.shape[0]):
        numpyro.sample("ya", ndist.Normal(mu, 1.0), obs=ya)
    with numpyro.plate("other", yb.shape[0]):
        numpyro.sample("yb", ndist.Normal(mu, 0.5), obs=yb)


def pyro_two_data_sets(ya, yb):
    mu = pyro.sample("mu", pdist.Normal(0.0, 10.0))
    with pyro.plate("data", ya.shape[0]):
        pyro.sample("ya", pdist.Normal(mu, 1.0), obs=ya)
    with pyro.plate("other", yb.shape[0]):
        pyro.sample("yb", pdist.Normal(mu, 0.5), obs=yb)


TWO_DATA_SETS = {"numpyro": numpyro_two_data_sets, "pyro": pyro_two_data_sets}


def two_data_sets():
    rng = np.random.default_rng(2)
    ya, yb = rng.normal(1.0, 1.0, 200).astype(np.float32), rng.normal(1.4, 0.5, 200).astype(np.float32)
    precision = 1 / 100 + 200 / 1.0 + 200 / 0.25
    mean = (np.sum(ya.astype(float)) + 4 * np.sum(yb.astype(float))) / precision
    return ya, yb, mean, precision**-0.5


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_a_second_data_set_in_another_plate_is_left_whole(backend):
    """Only the data plate's argument is sliced: ``yb`` (N entries too) keeps its whole weight."""
    ya, yb, mean, sd = two_data_sets()
    convert = CONVERT[backend]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no full-batch warning: it minibatches as it should
        oracle = make_backend(TWO_DATA_SETS[backend], (convert(ya), convert(yb)), data_plate="data")
    assert oracle.batch_args.positions == (0,) and oracle.batch_args.names == ()
    # the average of the single-datum minibatch potentials is the full one, which is the closed form's
    mu = np.array([0.9, 1.2, 1.3, 1.5], dtype=np.float32)
    full = potentials_at(oracle, mu)
    want = 0.5 * (mu - mean) ** 2 / sd**2
    np.testing.assert_allclose(full - full[0], want - want[0], rtol=1e-4, atol=1e-2)
    theta = oracle.asarray(np.repeat(mu[:1], 200)[:, None])
    idx = np.arange(200)[:, None]
    each = oracle.to_numpy(oracle.potential(theta, idx if backend == "numpyro" else torch.as_tensor(idx)))
    assert float(np.mean(each)) == pytest.approx(full[0], rel=1e-4)


@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: b == "pyro"))
def test_a_second_data_set_in_another_plate_samples_the_exact_posterior(backend):
    ya, yb, mean, sd = two_data_sets()
    convert = CONVERT[backend]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        idata = ppzoo.sample(TWO_DATA_SETS[backend], convert(ya), convert(yb), data_plate="data", batch_size=20,
                             num_warmup=500, num_samples=1000, seed=0, progress_bar=False)
    check_against(idata, "mu", mean, sd)


# -- 3. a likelihood the program scales by N / B itself -----------------------------------------
def numpyro_self_scaled(x, y):
    b = numpyro.sample("b", ndist.Normal(0.0, 1.0))
    with numpyro.handlers.scale(scale=200 / x.shape[0]), numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", ndist.Normal(b * x, 1.0), obs=y)


def pyro_self_scaled(x, y):
    b = pyro.sample("b", pdist.Normal(0.0, 1.0))
    with pyro.poutine.scale(scale=200 / x.shape[0]), pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Normal(b * x, 1.0), obs=y)


SELF_SCALED = r"model '.*self_scaled' scales the log-probability of \['y'\] itself .*ppzoo scales the likelihood by N/B itself"


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_a_likelihood_scaled_by_the_program_is_refused(backend):
    x, y = regression_data(200)
    convert = CONVERT[backend]
    model = {"numpyro": numpyro_self_scaled, "pyro": pyro_self_scaled}[backend]
    with pytest.raises(ValueError, match=SELF_SCALED + ".*remove the scale"):
        make_backend(model, (convert(x), convert(y)))


def numpyro_tempered(x, y):
    b = numpyro.sample("b", ndist.Normal(0.0, 1.0))
    with numpyro.handlers.scale(scale=0.5), numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", ndist.Normal(b * x, 1.0), obs=y)


def pyro_tempered(x, y):
    b = pyro.sample("b", pdist.Normal(0.0, 1.0))
    with pyro.poutine.scale(scale=0.5), pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Normal(b * x, 1.0), obs=y)


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_a_constant_scale_of_the_programs_own_stays(backend):
    """A tempered likelihood (a scale that does not change with the rows given) is the program's
    own, not an ``N / B``: it is neither refused nor a reason to run full-batch."""
    x, y = regression_data(200)
    convert = CONVERT[backend]
    model = {"numpyro": numpyro_tempered, "pyro": pyro_tempered}[backend]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither refused nor run full-batch
        make_backend(model, (convert(x), convert(y)))


# -- 4. the subsampling idiom with an argument shorter than the plate ---------------------------
def numpyro_short_argument(x, t):
    b = numpyro.sample("b", ndist.Normal(0.0, 1.0))
    with numpyro.plate("data", x.shape[0], subsample_size=None) as idx:
        numpyro.sample("y", ndist.Normal(b * x[idx], 1.0), obs=t[idx])


def pyro_short_argument(x, t):
    b = pyro.sample("b", pdist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0], subsample_size=None) as idx:
        pyro.sample("y", pdist.Normal(b * x[idx], 1.0), obs=t[idx])


def test_an_indexed_argument_shorter_than_the_plate_is_refused_with_its_name():
    """JAX would read ``t``'s last row for rows 150-199; the observed site is not named ``t``."""
    x, y = regression_data(200)
    with pytest.raises(ValueError, match=r"model 'numpyro_short_argument' indexes argument 't' with the indices of the "
                                         r"data plate 'data', but it has 150 rows and the plate N=200"):
        make_backend(numpyro_short_argument, (x, y[:150]))
    # torch raises on such an index itself; the message then names the argument
    with pytest.raises(IndexError, match=r"argument 't' has 150 rows: an argument indexed by a plate's indices"):
        make_backend(pyro_short_argument, (torch.as_tensor(x), torch.as_tensor(y[:150])))
    make_backend(numpyro_short_argument, (x, y))  # the same program with N rows runs


# -- against NUTS: a regression whose prior is scaled by 1 / sqrt(n), its noise unknown ----------
def numpyro_shrunk_regression(x, y):
    n, d = x.shape
    w = numpyro.sample("w", ndist.Normal(0.0, 3.0 / np.sqrt(n)).expand([d]).to_event(1))
    sigma = numpyro.sample("sigma", ndist.HalfNormal(1.0))
    with numpyro.plate("data", n):
        numpyro.sample("y", ndist.Normal(x @ w, sigma), obs=y)


@pytest.mark.slow
def test_a_prior_scaled_by_the_number_of_data_matches_nuts():
    """Not conjugate (the noise is unknown): against NUTS's draws of the same program, means within
    4 standard errors of the difference (the run's MCSE and NUTS's), sds within 4 standard errors
    of the difference of ``mcse_sd`` plus the 3% allowance."""
    from numpyro.infer import MCMC, NUTS

    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    y = (x @ np.array([0.5, -0.25, 0.0]) + 0.8 * rng.normal(size=300)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", ConvergenceWarning)
        idata = ppzoo.sample(numpyro_shrunk_regression, x, y, num_samples=2000, seed=0, progress_bar=False)
    mcmc = MCMC(NUTS(numpyro_shrunk_regression), num_warmup=1000, num_samples=4000, num_chains=2,
                chain_method="sequential", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), x, y)
    reference = arviz_compat.summary(az.from_numpyro(mcmc), var_names=["w", "sigma"])
    table = arviz_compat.summary(idata, var_names=["w", "sigma"])
    for name, row in reference.iterrows():
        got = table.loc[name]
        assert abs(got["mean"] - row["mean"]) < 4 * np.hypot(got["mcse_mean"], row["mcse_mean"]), name
        assert abs(got["sd"] - row["sd"]) < 4 * np.hypot(got["mcse_sd"], row["mcse_sd"]) + SD_BIAS * row["sd"], name


# -- generated programs: sample against the exact posterior, or refused ---------------------------
def generated_program(reads, n_total):
    """A conjugate regression ``y_i ~ N(b x_i, 1)`` that reads its data as ``reads`` says:
    ``"rows"`` only the rows it is given; ``"count"`` its prior sd ``1 / sqrt(n)`` with ``n`` from
    the data; ``"mean"`` its prior mean the mean of ``y``; ``"scale"`` its likelihood scaled by
    ``n_total / n`` itself."""

    def program(x, y):
        n = x.shape[0]
        prior_mean = y.mean() if reads == "mean" else 0.0
        prior_sd = 1.0 / np.sqrt(n) if reads == "count" else 1.0
        b = numpyro.sample("b", ndist.Normal(prior_mean, prior_sd))
        scale = n_total / n if reads == "scale" else 1.0
        with numpyro.handlers.scale(scale=scale), numpyro.plate("data", n):
            numpyro.sample("y", ndist.Normal(b * x, 1.0), obs=y)

    return program


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(reads=st.sampled_from(["rows", "count", "mean", "scale"]), n=st.integers(2, 60),
       seed=st.integers(0, 2**16), b=st.floats(-2.0, 2.0))
def test_generated_programs_get_their_exact_potential_or_are_refused(reads, n, seed, b):
    """Whatever the program reads, the potential ppzoo samples is the closed form's (up to one
    constant), the average of its single-datum minibatch potentials is the full one, or the
    program is refused."""
    x, y = regression_data(n, seed=seed)
    program = generated_program(reads, n)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if reads == "scale":
            with pytest.raises(ValueError, match="ppzoo scales the likelihood by N/B itself"):
                make_backend(program, (x, y))
            return
        oracle = make_backend(program, (x, y))
    assert any("reads its data outside" in str(w.message) for w in caught) == (reads != "rows")
    prior_mean = float(np.mean(y.astype(float))) if reads == "mean" else 0.0
    prior_sd = n**-0.5 if reads == "count" else 1.0
    points = np.array([b, 0.0, 0.7])
    got = potentials_at(oracle, points)
    want = 0.5 * ((points - prior_mean) / prior_sd) ** 2 + 0.5 * np.sum((y[:, None] - points * x[:, None]) ** 2, 0)
    np.testing.assert_allclose(got - got[1], want - want[1], rtol=1e-4, atol=1e-3)
    if oracle.layout.data_plate is not None:
        theta = oracle.asarray(np.full((n, 1), b, dtype=np.float32))
        each = oracle.to_numpy(oracle.potential(theta, np.arange(n)[:, None]))
        assert float(np.mean(each)) == pytest.approx(got[0], rel=1e-4, abs=1e-3)
