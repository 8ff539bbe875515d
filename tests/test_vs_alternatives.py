"""The time-to-target benchmark's scoring: its error measure and its "from then on" rule."""

import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from benchmarks import vs_alternatives as bench  # noqa: E402


class NoCompiling:
    def before(self, t):
        return 0.0


def test_errors_measure_the_worst_coordinate_in_reference_sds():
    rng = np.random.default_rng(0)
    ref = {"mean": np.array([0.0, 1.0]), "sd": np.array([1.0, 2.0])}
    draws = ref["mean"] + ref["sd"] * rng.standard_normal((4, 50_000, 2))
    draws[..., 1] += 0.5 * 2.0  # half a reference sd off in the second coordinate
    draws[..., 0] *= 1.3  # the first coordinate's sd 30% too wide
    mean_err, sd_err = bench.errors(draws, ref)
    # 200,000 draws: the Monte Carlo error of a mean is 0.0022 sd and of an sd ratio 0.0016
    assert mean_err == pytest.approx(0.5, abs=5 * 0.0022 * 1.3)
    assert sd_err == pytest.approx(0.3, abs=5 * 0.0016 * 1.3)


def test_time_to_target_is_the_first_checkpoint_from_which_every_later_one_is_within():
    rng = np.random.default_rng(1)
    ref = {"mean": np.zeros(3), "sd": np.ones(3)}
    good = rng.standard_normal((4, 20_000, 3))
    bad = good + 1.0
    pattern = [bad, good, bad, good, good]  # within at checkpoints 1, 3 and 4
    run = {"start": 10.0, "end": 16.0, "draws": good[:, :200],
           "points": [(11.0 + k, 100.0 * (k + 1), w) for k, w in enumerate(pattern)]}
    scored = bench.score(run, ref, NoCompiling())
    assert scored["to_target_s"] == pytest.approx(4.0)  # checkpoint 3, not checkpoint 1
    assert scored["to_target_grad_evals"] == pytest.approx(400.0)
    run["points"].append((17.0, 600.0, bad))
    assert bench.score(run, ref, NoCompiling())["to_target_s"] is None


def test_stored_curves_are_thinned_log_evenly_keeping_both_ends():
    curve = [{"t": float(k)} for k in range(1000)]
    thinned = bench.thin(curve, at_most=200)
    times = [c["t"] for c in thinned]
    assert len(thinned) <= 200 and times[0] == 0.0 and times[-1] == 999.0
    assert times == sorted(set(times))
    assert sum(t < 100 for t in times) > sum(t >= 900 for t in times)  # denser early, where the plot's log axis is
    assert bench.thin(curve[:150], at_most=200) == curve[:150]


@pytest.mark.slow
def test_nuts_stepped_under_a_budget_keeps_its_draws_or_says_it_stopped(monkeypatch):
    monkeypatch.setattr(bench, "NUM_WARMUP", 30)
    x, y = bench.make_data(500, 3)
    full = bench.run_nuts(x, y, draws=20, budget=1e6)
    assert full["draws"].shape == (bench.NUM_CHAINS, 20, 3) and np.isfinite(full["draws"]).all()
    assert not full["stopped_by_budget"] and full["iterations"] == 30 + 20
    assert [p[2].shape[1] for p in full["points"]] == list(range(1, 21))  # one checkpoint per draw
    grads = np.array([p[1] for p in full["points"]])
    # each draw costs N per leapfrog step of each chain: at least one step per chain
    assert (np.diff(grads) >= 500 * bench.NUM_CHAINS).all() and grads[0] >= 500 * bench.NUM_CHAINS * 31
    # draws after warmup move (a chain stuck at its start would repeat one value)
    assert (full["draws"].std(axis=1) > 0).all()

    stopped = bench.run_nuts(x, y, draws=20, budget=0.0)  # stops after its first warmup iteration
    assert stopped["stopped_by_budget"] and stopped["points"] == [] and stopped["iterations"] == 1
    assert stopped["draws"].shape == (bench.NUM_CHAINS, 0, 3)
    scored = bench.score(stopped, {"mean": np.zeros(3), "sd": np.ones(3)}, NoCompiling())
    assert scored["to_target_s"] is None and scored["stopped_by_budget"]
