"""A chain that diverges is named once, and the result stays usable.

The model is a quartic well, ``U(theta) = theta^4`` plus a flat-ish likelihood: SGLD with a fixed
step ``h`` is stable where ``12 h theta^2 < 2``; a chain started at ``theta = 30`` with
``h = 1e-3`` leaves that region on its first step and overflows within a few, while chains
started near 0 stay in the well. A second model's log density is NaN beyond ``theta = 3``
while its gradient stays finite there (``where`` has a zero derivative in both branches), so
only the log density can show it.
"""

import json
import warnings

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pytest
import torch

import ppzoo
from ppzoo.diagnostics import arviz_compat


def numpyro_quartic(y):
    theta = numpyro.sample("theta", ndist.ImproperUniform(ndist.constraints.real, (), ()))
    numpyro.factor("well", -theta**4)
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", ndist.Normal(theta, 10.0), obs=y)


def pyro_quartic(y):
    theta = pyro.sample("theta", pdist.ImproperUniform(pdist.constraints.real, (), ()))
    pyro.factor("well", -theta**4)
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", pdist.Normal(theta, 10.0), obs=y)


QUARTIC = {"numpyro": numpyro_quartic, "pyro": pyro_quartic}


def run(model, y, start, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = ppzoo.sample(model, y, num_warmup=0, num_samples=100, num_chains=len(start), adapt=False,
                             init_params={"theta": np.asarray(start, dtype=np.float32)}, progress_bar=False,
                             method="sgld", **options)
    return idata, [w for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
def test_one_diverging_chain_is_named_and_set_aside(backend):
    y = np.zeros(20, np.float32)
    data = torch.as_tensor(y) if backend == "pyro" else y
    idata, warned = run(QUARTIC[backend], data, [0.1, -0.2, 30.0, 0.3], step_size=1e-3)
    assert len(warned) == 1 and "1 of 4 chains diverged" in str(warned[0].message)
    assert "chain 2 at draw" in str(warned[0].message) and "diverged_posterior" in str(warned[0].message)
    post = arviz_compat.get_group(idata, "posterior")
    assert list(post.chain.values) == [0, 1, 3] and np.all(np.isfinite(post["theta"].values))
    record = json.loads(post.attrs["diverged_chains"])
    assert [d["chain"] for d in record] == [2] and record[0]["draw"] < 10
    aside = arviz_compat.get_group(idata, "diverged_posterior")["theta"].values
    assert aside.shape == (1, 100) and not np.all(np.isfinite(aside))
    # the healthy chains' summaries and az.loo are numbers
    table = arviz_compat.summary(idata, var_names=["theta"], kind="stats")
    assert np.isfinite(table.loc["theta", "mean"]) and abs(table.loc["theta", "mean"]) < 1.0
    stats = arviz_compat.get_group(idata, "sample_stats")
    assert not bool(stats["diverging"].values.any()) and np.all(np.isfinite(stats["lp"].values))


def nan_beyond_three(y):
    theta = numpyro.sample("theta", ndist.Normal(0.0, 1.0))
    numpyro.factor("edge", jnp.where(theta > 3.0, jnp.nan, 0.0))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", ndist.Normal(theta, 10.0), obs=y)


def test_a_nan_log_density_with_a_finite_gradient_is_flagged():
    idata, warned = run(nan_beyond_three, np.zeros(20, np.float32), [0.0, 0.5, 6.0], step_size=1e-2)
    assert len(warned) == 1 and "1 of 3 chains diverged" in str(warned[0].message) and "chain 2 at draw 0" in str(warned[0].message)
    assert list(arviz_compat.get_group(idata, "posterior").chain.values) == [0, 1]


def test_a_run_without_divergence_has_no_record_and_no_warning():
    idata, warned = run(numpyro_quartic, np.zeros(20, np.float32), [0.1, -0.2], step_size=1e-3)
    assert warned == [] and "diverged_chains" not in arviz_compat.get_group(idata, "posterior").attrs
    assert not arviz_compat.has_group(idata, "diverged_posterior")
