"""Every zoo entry, on both backends, against its stored reference posterior.

Each entry's sampler defaults (``ModelSpec.sampler_defaults``) are run with
4 chains; posterior means must lie within ``tolerance[0]`` reference
posterior sds of the reference means and sds within a factor
``1 +- tolerance[1]`` of the reference sds. The tolerances include the run's
own Monte Carlo error: with ``S`` effective draws a mean is off by about
``sd / sqrt(S)`` (0.1 sd at S = 100), plus the step-size bias of Langevin
dynamics. Pyro runs keep half the draws (its steps are slower; the effective
sample sizes stay above 200 for every entry but logistic regression).
"""

import arviz as az
import numpy as np
import pytest

import ppzoo
from ppzoo import models

ENTRIES = models.list_models()


def test_every_entry_has_a_reference_and_a_description():
    assert len(ENTRIES) >= 5
    for name in ENTRIES:
        spec = models.get(name)
        assert spec.name == name and spec.description
        params = spec.reference.params
        assert params and all({"mean", "sd"} <= set(v) for v in params.values()), name


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="known models: eight_schools, "):
        models.get("no_such_model")


def _flat_summary(idata):
    return az.summary(idata, kind="stats", round_to="none")


@pytest.mark.parametrize("backend", ["numpyro", "pyro"])
@pytest.mark.parametrize("name", ENTRIES)
def test_entry_matches_its_reference(name, backend):
    spec = models.get(name)
    args, kwargs = spec.load_data()
    settings = dict(spec.sampler_defaults)
    if backend == "pyro":
        settings["num_samples"] = settings.get("num_samples", 1000) // 2
    idata = ppzoo.sample(
        spec.model(backend), *args, **settings, num_chains=4, seed=1, backend=backend,
        log_likelihood=False, progress_bar=False, **kwargs,
    )
    summary = _flat_summary(idata)
    reference = spec.reference.params
    assert set(summary.index) == set(reference), "the run and the reference name different parameters"
    mean_tol, sd_tol = spec.tolerance
    ref_mean = np.array([reference[k]["mean"] for k in summary.index])
    ref_sd = np.array([reference[k]["sd"] for k in summary.index])
    z = np.abs(summary["mean"].to_numpy() - ref_mean) / ref_sd
    ratio = summary["sd"].to_numpy() / ref_sd
    worst = summary.index[int(np.argmax(z))]
    assert z.max() < mean_tol, f"{name} ({backend}): {worst} is {z.max():.2f} sd off"
    assert np.all(np.abs(ratio - 1) < sd_tol), f"{name} ({backend}): sd ratios {dict(zip(summary.index, ratio.round(2)))}"
