"""Badly scaled targets with the defaults (warmup adaptation on), and pSGLD's algebra.

**Gaussian with condition number 10^4.** ``y_i ~ N(x_i . w, 1)``, ``w ~ N(0, I_5)``,
N = 1000, written as a NumPyro and a Pyro program with a data plate that ppzoo
subsamples (B = m = 32). The design makes the posterior precision
``X' X + I`` have eigenvalues exactly 10^2, ..., 10^6 along random
directions, so the posterior sds span two orders of magnitude and the
coordinates are correlated; its mean and covariance are closed-form.

**Logistic regression on the raw breast-cancer features** (scales 0.001 to
4,000; the posterior's Hessian has condition number 1.9e7), against NUTS with
a dense mass matrix (``tests/references/make_raw_breast_cancer.py``, stored
in ``tests/references/raw_breast_cancer.json``; 40,000 draws, so the
reference's own Monte Carlo error is below 0.004 sd).

**Tolerances.** Means within 0.1 posterior sd and variances (sds) within 10%
for the variance-reduced methods, as the defaults are meant to deliver. A
mean's Monte Carlo standard error is ``sd / sqrt(ESS)``; each run asserts
its smallest bulk ESS, so the 0.1 sd tolerance is a stated number of MCSEs
(``0.1 sqrt(ESS)``). The variance tolerance has less room: the unadjusted
Langevin chain at the default ``h = 0.1 / lambda_max`` of the preconditioned
Hessian has stationary variance ``1 / (1 - h lambda / 2)``, up to 1.05 times
the truth in the stiffest preconditioned direction, so about 5% of the 10%
is left for Monte Carlo error, whose standard error is about
``sqrt(2 / ESS)`` of the variance. Seeds are fixed.

SARAH-LD's recursive estimate accumulates error over its inner loop; under
adaptation it chooses a short loop and caps ``h`` so that the added variance
stays near 3% (:mod:`ppzoo.inference.sgmcmc.sarah_ld`); before that choice
its variances here were 25-34% high with the defaults.
"""

import json
import pathlib

import arviz as az
import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pytest
from conftest import slow_for, worst_second_moment_gap
from test_sgld import DATA, LAM, POST_MEAN, sgld_variance

import ppzoo
from ppzoo.backends import make_backend

REFERENCES = pathlib.Path(__file__).resolve().parent / "references"

# -- the condition-number-10^4 Gaussian ----------------------------------------------
N_GAUSS, D_GAUSS = 1000, 5
EIGENVALUES = 10.0 ** np.arange(2, 2 + D_GAUSS)  # of the posterior precision: condition number 1e4


def _gaussian_problem():
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.standard_normal((N_GAUSS, D_GAUSS)))  # orthonormal columns
    q, _ = np.linalg.qr(rng.standard_normal((D_GAUSS, D_GAUSS)))  # a random rotation
    x = ((u * np.sqrt(EIGENVALUES - 1.0)) @ q.T).astype(np.float32)  # X'X + I = q diag(EIGENVALUES) q'
    y = (x.astype(np.float64) @ rng.standard_normal(D_GAUSS) + rng.standard_normal(N_GAUSS)).astype(np.float32)
    xd = x.astype(np.float64)
    cov = np.linalg.inv(xd.T @ xd + np.eye(D_GAUSS))
    return x, y, cov @ (xd.T @ y.astype(np.float64)), cov


X_GAUSS, Y_GAUSS, MEAN_GAUSS, COV_GAUSS = _gaussian_problem()


def numpyro_gaussian(x, y):
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("data", x.shape[0], subsample_size=None) as idx:
        numpyro.sample("y", ndist.Normal(x[idx] @ w, 1.0), obs=y[idx])


def pyro_gaussian(x, y):
    w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0], subsample_size=None) as idx:
        pyro.sample("y", pdist.Normal(x[idx] @ w, 1.0), obs=y[idx])


GAUSSIAN = {"numpyro": numpyro_gaussian, "pyro": pyro_gaussian}
#: chains x draws x thinning after the default 1,000 warmup steps; Pyro's steps cost more
GAUSSIAN_SIZES = {
    "numpyro": {"num_chains": 16, "num_samples": 2500, "thinning": 4},
    "pyro": {"num_chains": 8, "num_samples": 400, "thinning": 5},
}
#: smallest bulk ESS each run must reach (measured: about 7,000 and 590)
GAUSSIAN_MIN_ESS = {"numpyro": 5000, "pyro": 400}

@pytest.mark.parametrize("backend", slow_for(["numpyro", "pyro"], lambda b: b == "numpyro"))
@pytest.mark.parametrize("method", slow_for(["svrg-ld", "sarah-ld", "sgld-cv"], lambda m: m != "sgld-cv"))
def test_condition_number_1e4_gaussian_with_the_defaults(backend, method):
    """Every coordinate's mean within 0.1 sd and variance within 10% of the closed form.

    NumPyro: ESS >= 5,000, so 0.1 sd >= 7 MCSE and the variance's standard error is <= 2%;
    measured: means within 0.02 sd, variances 6-9% high, 5% of it the step-size bias.
    Pyro (fewer draws: its steps cost more): ESS >= 400, so 0.1 sd >= 2 MCSE and the
    variance's standard error is about 7%, a check against gross errors rather than a fine
    one (measured: means within 0.035 sd, variances 1% low to 9% high).
    """
    idata = ppzoo.sample(
        GAUSSIAN[backend], X_GAUSS, Y_GAUSS, method=method, **GAUSSIAN_SIZES[backend], seed=3, backend=backend,
        progress_bar=False, log_likelihood=False,
    )
    w = idata.posterior["w"].values.reshape(-1, D_GAUSS).astype(np.float64)
    ess = float(az.ess(idata, var_names=["w"])["w"].min())
    sd = np.sqrt(np.diag(COV_GAUSS))
    z = (w.mean(axis=0) - MEAN_GAUSS) / sd
    ratio = w.var(axis=0) / np.diag(COV_GAUSS)
    assert idata.posterior.attrs["adapted"] == 1
    assert ess >= GAUSSIAN_MIN_ESS[backend], ess
    assert np.all(np.abs(z) < 0.1), f"means off by {np.round(z, 3)} sd"
    assert np.all(np.abs(ratio - 1) < 0.1), f"variance ratios {np.round(ratio, 3)}"


# -- logistic regression on the raw breast-cancer features ------------------------------
RAW_REFERENCE = json.loads((REFERENCES / "raw_breast_cancer.json").read_text())["params"]
#: means within this many sds and sds within this fraction, per method (see the test's docstring)
RAW_TOLERANCE = {"svrg-ld": (0.1, 0.1), "sarah-ld": (0.1, 0.1), "sgld-cv": (0.1, 0.1), "sgld": (0.3, 0.4), "psgld": (0.3, 0.4)}
#: chains x draws x thinning after 1,000 warmup steps: the loose tolerances need fewer effective draws
RAW_SIZES = {
    "svrg-ld": {"num_chains": 16, "num_samples": 1000, "thinning": 4},
    "sarah-ld": {"num_chains": 16, "num_samples": 1000, "thinning": 4},
    "sgld-cv": {"num_chains": 16, "num_samples": 1000, "thinning": 4},
    "sgld": {"num_chains": 8, "num_samples": 750, "thinning": 4},
    "psgld": {"num_chains": 8, "num_samples": 750, "thinning": 4},
}
#: smallest bulk ESS per method (measured: about 800 and 120)
RAW_MIN_ESS = {"svrg-ld": 700, "sarah-ld": 700, "sgld-cv": 700, "sgld": 90, "psgld": 90}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["svrg-ld", "sarah-ld", "sgld-cv", "sgld", "psgld"])
def test_raw_breast_cancer_logistic_regression_with_the_defaults(method):
    """Against NUTS, 31 parameters.

    SVRG-LD, SARAH-LD and SGLD-CV: means within 0.1 sd, sds within 10%, with ESS >= 700 per
    parameter, so 0.1 sd >= 2.6 MCSE and an sd's standard error (about ``1 / sqrt(2 ESS)``)
    is <= 2.7% (measured: means within 0.07 sd, sds 2% low to 6% high; SARAH-LD runs with
    a full gradient at every step here, ``m = 1``, since ``D = 31`` exceeds ``0.6 B``). SGLD and pSGLD carry
    the minibatch gradient's full noise (the control variates remove most of it), which at
    the default step inflates the stationary law: they are held to means within 0.3 sd and sds
    within 40%, with ESS >= 90 (0.3 sd >= 2.8 MCSE; measured with 2.7 times the draws: SGLD
    0.16 sd and 29%, pSGLD 0.14 sd and 15%).
    """
    from ppzoo.models import logistic_regression

    (x,), kwargs = logistic_regression.load_data(standardized=False)
    idata = ppzoo.sample(
        logistic_regression.numpyro_model, x, method=method, **RAW_SIZES[method], num_warmup=1000, seed=1,
        progress_bar=False,
        log_likelihood=False, **kwargs,
    )
    summary = az.summary(idata, var_names=["w", "b"], round_to="none")
    names = list(RAW_REFERENCE)
    ref_mean = np.array([RAW_REFERENCE[k]["mean"] for k in names])
    ref_sd = np.array([RAW_REFERENCE[k]["sd"] for k in names])
    z = (summary.loc[names, "mean"].to_numpy() - ref_mean) / ref_sd
    ratio = summary.loc[names, "sd"].to_numpy() / ref_sd
    mean_tol, sd_tol = RAW_TOLERANCE[method]
    assert summary["ess_bulk"].min() >= RAW_MIN_ESS[method], summary["ess_bulk"].min()
    worst = names[int(np.argmax(np.abs(z)))]
    assert np.abs(z).max() < mean_tol, f"{worst} is {z[names.index(worst)]:.3f} sd off"
    assert np.all(np.abs(ratio - 1) < sd_tol), f"sd ratios from {ratio.min():.3f} to {ratio.max():.3f}"
    assert not idata.sample_stats["diverging"].values.any()
    stats = idata.sample_stats
    assert idata.posterior.attrs["adapted"] == 1 and np.all(stats["step_size"].values == stats["step_size"].values[0, 0])
    if method == "psgld":  # B = 256 (the default's floor) per step; the frozen L G L' is the recorded M^-1
        np.testing.assert_array_equal(np.diff(stats["grad_evals"].values, axis=1), 4 * 256)
        minv = np.asarray(idata.posterior.attrs["inverse_mass"])
        assert minv.shape == (31, 31) and np.all(np.linalg.eigvalsh(minv) > 0)


# -- pSGLD ------------------------------------------------------------------------------
def _as_index(backend, idx):
    if backend.name == "numpyro":
        import jax.numpy as jnp

        return jnp.asarray(idx)
    import torch

    return torch.as_tensor(idx, dtype=torch.long)


@pytest.mark.parametrize("name", ["numpyro", "pyro"])
@pytest.mark.parametrize("dense", [False, True])
def test_psgld_step_is_the_papers_update_in_our_convention(name, dense, regression_data):
    """One step against NumPy: ``V = a V + (1 - a) (L' g / N)^2``, ``G = 1 / (lam + sqrt(V / (1 - a^k)))``,
    ``theta' = theta - h L G L' g + sqrt(2 h) L G^(1/2) xi``; with ``L = I`` this is Li et al.'s
    ``theta + (eps / 2) G grad log p + N(0, eps G)`` at ``eps = 2 h`` (Gamma omitted)."""
    from conftest import LINEAR_REGRESSION
    from ppzoo.inference import PSGLD
    from ppzoo.inference.sgmcmc.diffusions import make_tuning
    from ppzoo.inference.sgmcmc.psgld import PSGLDState

    x, y = regression_data
    backend = make_backend(LINEAR_REGRESSION[name], (x,), {"y": y})
    rng = np.random.default_rng(0)
    d, c, b, h, a, lam = backend.dim, 3, 6, 1e-3, 0.9, 1e-3
    minv = None
    if dense:
        root = rng.standard_normal((d, d))
        minv = root @ root.T / d + 0.5 * np.eye(d)
    kernel = PSGLD(step_size=h, batch_size=b, decay=a, damping=lam, inverse_mass=minv).setup(backend)
    tuning = make_tuning(backend, h, kernel.inverse_mass)
    theta = rng.uniform(-1, 1, (c, d))
    square_avg = rng.uniform(0.01, 0.1, (c, d))
    idx = rng.integers(0, 60, (c, b))
    noise = rng.standard_normal((c, d))
    state = PSGLDState(backend.asarray(theta), 3, backend.asarray(square_avg), 3)
    new, info = kernel.update(backend, state, _as_index(backend, idx), backend.asarray(noise), tuning)

    g = backend.to_numpy(backend.grad(backend.asarray(theta), _as_index(backend, idx))).astype(np.float64)
    factor = np.eye(d) if minv is None else np.linalg.cholesky(minv)
    gz = g @ factor
    v = a * square_avg + (1 - a) * (gz / 60) ** 2
    gdiag = 1 / (lam + np.sqrt(v / (1 - a**4)))
    expected = theta - h * (gdiag * gz) @ factor.T + np.sqrt(2 * h) * (np.sqrt(gdiag) * noise) @ factor.T
    np.testing.assert_allclose(backend.to_numpy(new.position), expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(new.square_avg), v, rtol=1e-4)
    assert int(np.asarray(backend.to_numpy(new.count))) == 4 and int(np.asarray(backend.to_numpy(new.step))) == 4
    np.testing.assert_array_equal(backend.to_numpy(info["grad_evals"]), b)


def test_frozen_psgld_has_sglds_exact_law_at_the_frozen_step():
    """Gaussian location model (``test_sgld``): once warmup ends, pSGLD with ``freeze=True`` is SGLD
    preconditioned by the frozen ``G`` (one number here), so its stationary variance is SGLD's
    ``V(h G)``; the recorded step size is ``h`` and the frozen ``G`` is in the attrs."""
    from conftest import GAUSSIAN_LOCATION

    h, b = 1e-5, 32  # G is about 20 here, so h G = 2e-4: a fifth of the posterior variance
    idata = ppzoo.sample(
        GAUSSIAN_LOCATION["numpyro"], DATA, method="psgld", step_size=h, batch_size=b, num_warmup=1000,
        num_samples=1000, thinning=10, num_chains=16, seed=1, progress_bar=False, log_likelihood=False,
    )
    g = float(np.asarray(idata.posterior.attrs["inverse_mass"])[0])
    theta = idata.posterior["theta"].values
    ess = float(az.ess(idata, var_names=["theta"])["theta"])
    mcse = float(az.mcse(idata, var_names=["theta"])["theta"])
    var = theta.var()
    assert ess > 1000
    assert abs(theta.mean() - POST_MEAN) < 4 * mcse
    assert abs(var - sgld_variance(h * g)) < 4 * var * np.sqrt(2.0 / ess)
    assert 0.1 < h * g * LAM < 0.5  # G ~ 1 / |minibatch mean gradient| ~ sqrt(B) / sd(x)
    np.testing.assert_array_equal(idata.sample_stats["step_size"].values, np.float32(h))
    # 100 priming updates of V, then B per step; nothing else (the step size is given)
    np.testing.assert_array_equal(idata.sample_stats["grad_evals"].values[:, 0], 100 * b + (1000 + 10) * b)


@pytest.mark.parametrize("backend", ["pyro"])  # NumPyro's count: the frozen-law test
def test_psgld_counts_its_priming_and_freezes_after_warmup(backend, regression_data):
    from conftest import LINEAR_REGRESSION
    from ppzoo.inference import PSGLD

    x, y = regression_data
    b, warmup, samples, prime = 7, 13, 20, 30
    idata = ppzoo.sample(
        LINEAR_REGRESSION[backend], x, y=y, method=PSGLD(step_size=1e-4, batch_size=b, prime_steps=prime),
        num_warmup=warmup, num_samples=samples, num_chains=2, progress_bar=False, log_likelihood=False,
    )
    expected = prime * b + b * np.arange(warmup + 1, warmup + samples + 1)
    np.testing.assert_array_equal(idata.sample_stats["grad_evals"].values, np.broadcast_to(expected, (2, samples)))
    assert idata.posterior.attrs["method"] == "psgld"
    minv = np.asarray(idata.posterior.attrs["inverse_mass"])
    assert minv.shape == (5,) and np.all(minv > 0)  # the frozen G, shared by the chains


def test_sarah_ld_chooses_a_short_loop_and_caps_its_step_under_adaptation():
    """N = 1000, B = 32, D = 5: work per unit time ``(N + 2 B (m - 1)) / (m f(m))`` with
    ``f(m) = min(0.1, 0.03 B / ((m - 1) D))`` is 10000, 5320, 3917, 4656 for m = 1..4, so m = 3;
    a given ``inner_loop`` is kept and ``f`` capped (``0.96 / 155`` for m = 32); on the raw
    breast-cancer features (D = 31, B = 24) a full gradient every step wins (m = 1)."""
    from ppzoo.inference import SARAHLD
    from ppzoo.models import logistic_regression

    backend = make_backend(numpyro_gaussian, (X_GAUSS, Y_GAUSS), {})
    assert SARAHLD(batch_size=32).for_adaptation(backend).inner_loop == 3
    given = SARAHLD(inner_loop=32, step_size=1.0, batch_size=32).setup(backend)
    assert given.for_adaptation(backend).inner_loop == 32
    assert given.adapted_step_fraction(D_GAUSS, 0.1) == pytest.approx(0.96 / 155)
    (x,), kwargs = logistic_regression.load_data(standardized=False)
    raw = make_backend(logistic_regression.numpyro_model, (x,), kwargs)
    assert SARAHLD(batch_size=24).for_adaptation(raw).inner_loop == 1


# -- preconditioned ULA: the exact stationary covariance ------------------------------------
@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_preconditioned_ula_has_its_closed_form_stationary_covariance(backend):
    """On the condition-number-1e4 Gaussian (potential exactly quadratic, precision ``A``), with a
    full gradient at every step (SVRG-LD with ``m = 1``), a fixed dense ``M^-1 = P`` and step ``h``,
    the chain ``theta' = theta - h P A (theta - mu) + sqrt(2 h) L xi`` (``L L' = P``) is a Gaussian
    AR(1) whose stationary covariance ``S`` solves ``S = (I - h P A) S (I - h P A)' + 2 h P``
    (discrete Lyapunov equation). ``P = A^(-1/2) R diag(1, 1.5, 2, 2.5, 3) R' A^(-1/2)`` (``R`` a
    random rotation) leaves ``P A`` with eigenvalues 1 to 3, and ``h = 0.5 / 3``: the stationary
    law is the posterior's inflated by up to a third along the stiffest preconditioned direction,
    so the test sees the preconditioned update's own law, not just the posterior. In whitened
    coordinates ``z = A^(1/2) (theta - mu)`` each entry of ``E[z z']`` is estimated by the mean of
    the product series over all draws and must lie within 4 of its Monte Carlo standard errors
    (ArviZ's MCSE of that series) of ``A^(1/2) S A^(1/2)``."""
    from scipy.linalg import solve_discrete_lyapunov

    a = np.linalg.inv(COV_GAUSS)
    w, v = np.linalg.eigh(a)
    root, inv_root = (v * np.sqrt(w)) @ v.T, (v / np.sqrt(w)) @ v.T
    rot, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((D_GAUSS, D_GAUSS)))
    p = inv_root @ (rot * np.linspace(1.0, 3.0, D_GAUSS)) @ rot.T @ inv_root
    p = (p + p.T) / 2
    h = 0.5 / 3.0
    t = np.eye(D_GAUSS) - h * p @ a
    expected = root @ solve_discrete_lyapunov(t, 2 * h * p) @ root  # E[z z'] under the chain
    inflation = np.linalg.eigvalsh(expected)
    assert inflation.max() > 1.25 and inflation.min() > 0.99  # the chain's law, visibly not the posterior
    chains, draws = (16, 1000) if backend == "numpyro" else (4, 1000)
    idata = ppzoo.sample(
        GAUSSIAN[backend], X_GAUSS, Y_GAUSS, method="svrg-ld", inner_loop=1, step_size=h, inverse_mass=p,
        num_warmup=200, num_samples=draws, num_chains=chains, seed=0, backend=backend,
        progress_bar=False, log_likelihood=False,
    )
    assert idata.posterior.attrs["adapted"] == 0
    z = (idata.posterior["w"].values.astype(np.float64) - MEAN_GAUSS) @ root  # (chain, draw, D)
    worst = worst_second_moment_gap(z, expected)
    assert worst < 4.0, f"an entry of the stationary covariance is {worst:.1f} MCSE from the closed form"
