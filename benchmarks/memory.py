"""Peak memory of a run against N, and the cost of starting ppzoo.

    python benchmarks/memory.py            # N = 10^4, 10^5, 10^6
    python benchmarks/memory.py --quick    # N = 10^3, 10^4 (a smoke run)

Bayesian logistic regression (d = 20, correlated features, the NumPyro program as users write
it) is sampled with ppzoo's defaults (SGLD-CV, adapted, ``log_likelihood="auto"``), 4 chains,
each N in a fresh process. Each process reports its resident memory (RSS) after importing
and loading the data (``baseline``), and its peak RSS over the run (``peak``); ``peak -
baseline`` is what sampling and the result cost. At N = 10^6 the default stores no per-datum
log-likelihood (it would be 4 x draws x N values), so what grows with N is the data and the
full-data passes, not the draws.

Also measured, each in fresh processes (median of 5): ``python -c "import ppzoo"`` and
``ppzoo list``.

Writes ``benchmarks/results/memory.{json,md}`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results"

CHILD = r"""
import json, resource, sys, warnings
import numpy as np
import numpyro, numpyro.distributions as dist
import jax.numpy as jnp

def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

def model(x, y=None):
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = numpyro.sample("b", dist.Normal(0.0, 1.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=x @ w + b), obs=y)

n, d, samples, warmup = (int(a) for a in sys.argv[1:5])
import ppzoo
rng = np.random.default_rng(0)
cov = 0.5 ** np.abs(np.subtract.outer(np.arange(d), np.arange(d)))
x = (rng.standard_normal((n, d)) @ np.linalg.cholesky(cov).T).astype(np.float32)
w = rng.standard_normal(d) / np.sqrt(d)
y = (rng.random(n) < 1 / (1 + np.exp(-(x @ w)))).astype(np.float32)
x, y = jnp.asarray(x), jnp.asarray(y)
baseline = rss_mib()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    idata = ppzoo.sample(model, x, y=y, num_samples=samples, num_warmup=warmup, progress_bar=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
from ppzoo.diagnostics import arviz_compat
print(json.dumps({"n": n, "baseline_mib": baseline, "peak_mib": peak,
                  "log_likelihood_stored": arviz_compat.has_group(idata, "log_likelihood"),
                  "data_mib": (x.nbytes + y.nbytes) / 2**20,
                  "warnings": [str(w.message)[:120] for w in caught if issubclass(w.category, RuntimeWarning)]}))
"""


def measure(n, d, samples, warmup):
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), str(d), str(samples), str(warmup)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def seconds(cmd, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def markdown(rows, startup, meta):
    lines = [
        "# Peak memory against N (logistic regression, d = {d}, 4 chains, defaults)".format(**meta), "",
        f"{meta['samples']} draws after {meta['warmup']} warmup steps; `python benchmarks/memory.py`.", "",
        "| N | data (MiB) | after loading (MiB) | peak (MiB) | peak - baseline (MiB) | log-likelihood stored |",
        "|---:|---:|---:|---:|---:|:---|",
    ]
    for r in rows:
        lines.append(f"| {r['n']:,} | {r['data_mib']:.1f} | {r['baseline_mib']:.0f} | {r['peak_mib']:.0f} | "
                     f"{r['peak_mib'] - r['baseline_mib']:.0f} | {'yes' if r['log_likelihood_stored'] else 'no'} |")
    lines += ["", f"| start-up (median of {meta['repeats']} fresh processes) | seconds |", "|---|---:|"]
    lines += [f"| `{name}` | {value:.2f} |" for name, value in startup.items()]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 10^3 and 10^4, few draws")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="the N to run (default: by --quick)")
    parser.add_argument("--dims", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS / "memory")
    opts = parser.parse_args(argv)
    sizes = opts.sizes or ([10**3, 10**4] if opts.quick else [10**4, 10**5, 10**6])
    samples, warmup = (50, 200) if opts.quick else (1000, 2000)
    rows = []
    for n in sizes:
        rows.append(measure(n, opts.dims, samples, warmup))
        print(json.dumps(rows[-1]), flush=True)
    ppzoo = shutil.which("ppzoo")
    startup = {'python -c "import ppzoo"': seconds([sys.executable, "-c", "import ppzoo"], opts.repeats)}
    if ppzoo:
        startup["ppzoo list"] = seconds([ppzoo, "list"], opts.repeats)
    print(json.dumps(startup))
    meta = {"d": opts.dims, "samples": samples, "warmup": warmup, "repeats": opts.repeats}
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows, "startup": startup}, indent=1))
    opts.out.with_suffix(".md").write_text(markdown(rows, startup, meta))


if __name__ == "__main__":
    main()
