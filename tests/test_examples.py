"""Every tutorial and benchmark script runs with tiny arguments; none is left unlisted."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCRIPTS = {
    "tutorials/custom_models.py": ["--quick"],
    "benchmarks/sgld_throughput.py": ["--steps", "50", "--num-data", "2000", "--dims", "3", "--out", "{tmp}/throughput"],
    "benchmarks/variance_reduction.py": [
        "--num-data", "400", "--dims", "2", "--epochs", "4", "--seeds", "0", "--reference-samples", "200",
        "--throughput-steps", "50", "--out", "{tmp}/variance_reduction",
    ],
    "benchmarks/iwae_throughput.py": [
        "--steps", "5", "--repeats", "1", "--num-particles", "5", "--batch-size", "10", "--lml-samples", "20",
        "--chunk-sizes", "10", "--out", "{tmp}/iwae",
    ],
}


def test_every_script_is_listed():
    found = {str(p.relative_to(ROOT)) for folder in ("tutorials", "benchmarks") for p in (ROOT / folder).glob("*.py")}
    assert found == set(SCRIPTS), f"list these scripts in tests/test_examples.py: {found ^ set(SCRIPTS)}"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_script_runs(script, tmp_path):
    args = [a.format(tmp=tmp_path) for a in SCRIPTS[script]]
    out = subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip()
