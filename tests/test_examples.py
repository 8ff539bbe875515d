"""Every tutorial and benchmark script runs with tiny arguments; none is left unlisted.

The scripts run in this process (``runpy``, as ``__main__`` with their own
``sys.argv``), so the suite pays for importing JAX, torch and the PPLs once
rather than once per script.
"""

import pathlib
import runpy
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCRIPTS = {
    "tutorials/custom_models.py": ["--quick"],
    "benchmarks/sgld_throughput.py": [
        "--steps", "50", "--num-data", "2000", "--dims", "3", "--repeats", "1", "--out", "{tmp}/throughput",
    ],
    "benchmarks/variance_reduction.py": [
        "--num-data", "400", "--dims", "2", "--epochs", "4", "--seeds", "0", "--reference-samples", "200",
        "--throughput-steps", "50", "--step-fractions", "0.05", "--out", "{tmp}/variance_reduction",
    ],
    "benchmarks/adaptation.py": ["--quick", "--variants", "stan", "--out", "{tmp}/adaptation"],
    "benchmarks/il_vae_sweep.py": [
        "--steps", "3", "--batch-size", "10", "--constants", "1", "--lml-samples", "4", "--chunk-size", "4", "--train-size", "50",
        "--latent-dim", "2", "--hidden", "8", "--out", "{tmp}/il",
    ],
    "benchmarks/iwae_digits.py": [
        "--steps", "3", "--batch-size", "10", "--ks", "2", "--lml-samples", "4", "--chunk-size", "4", "--train-size", "50",
        "--latent-dim", "2", "--hidden", "8", "--out", "{tmp}/iwd",
    ],
    "benchmarks/linear_vae.py": [
        "--n", "200", "--spectrum", "3", "0.5", "--betas", "0.5", "1", "2", "--steps", "20", "--anneal-steps", "20",
        "--warmups", "5", "--out", "{tmp}/lv",
    ],
    "benchmarks/linear_vae_highdim.py": ["--quick", "--seeds", "2", "--n", "40", "--t-scale", "0.1", "--out", "{tmp}/lvhd"],
    "benchmarks/zoo_accuracy.py": ["--quick", "--out", "{tmp}/zoo_accuracy"],
    "benchmarks/fit_convergence.py": ["--quick", "--out", "{tmp}/fit_convergence"],
    "benchmarks/memory.py": ["--quick", "--sizes", "1000", "--repeats", "1", "--out", "{tmp}/memory"],
    "benchmarks/nuts_agreement.py": [
        "--quick", "--programs", "flat_prior_regression", "discrete_latent", "--methods", "default",
        "--nuts-warmup", "100", "--nuts-samples", "100", "--out", "{tmp}/nuts_agreement",
    ],
    "benchmarks/vs_alternatives.py": [
        "--quick", "--methods", "ppzoo sgld-cv (numpyro)", "ppzoo svrg-ld (pyro)", "NUTS", "BlackJAX sgld",
        "--out", "{tmp}/vs",
    ],
    "benchmarks/full_gradient_bandwidth.py": ["--sizes", "3000", "--dim", "3", "--repeats", "1", "--out", "{tmp}/fgb"],
    "benchmarks/svi_overhead.py": ["--quick", "--out", "{tmp}/svi_overhead"],
    "benchmarks/predictive_memory.py": ["--ppl", "numpyro", "--n", "2000", "--out", "{tmp}/predictive_memory"],
    "benchmarks/iwae_throughput.py": [
        "--steps", "5", "--repeats", "1", "--num-particles", "5", "--batch-size", "10", "--lml-samples", "20",
        "--chunk-sizes", "10", "--backends", "pyro", "--out", "{tmp}/iwae",
    ],
}


def test_every_script_is_listed():
    found = {str(p.relative_to(ROOT)) for folder in ("tutorials", "benchmarks") for p in (ROOT / folder).glob("*.py")}
    assert found == set(SCRIPTS), f"list these scripts in tests/test_examples.py: {found ^ set(SCRIPTS)}"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_script_runs(script, tmp_path, monkeypatch, capsys):
    args = [a.format(tmp=tmp_path) for a in SCRIPTS[script]]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(ROOT / script), *args])
    try:
        runpy.run_path(str(ROOT / script), run_name="__main__")
    except SystemExit as stop:
        assert stop.code in (None, 0), f"{script} exited with {stop.code}"
    assert capsys.readouterr().out.strip()
