"""Peak memory of ``ppzoo.predict`` at N = 10^6.

    python benchmarks/predictive_memory.py --ppl numpyro --budget-mib 256
    python benchmarks/predictive_memory.py --ppl pyro --budget-mib 256 [--n 1000000] [--out PATH]

A linear regression (d = 5, the program as users write it, ``x @ w``) with 2 chains x 50
posterior draws is predicted at its N = 10^6 observed rows: ``posterior_predictive`` holds
``2 x 50 x 10^6`` float32 values (381 MiB). The process reports its peak resident memory (RSS)
before the call (data, result, the PPL warmed up on 10 rows) and after it; the difference is
what the call cost: the output, the program traced once on all the data, and one chunk's work.
One PPL per process (the peak is the process's). Writes ``benchmarks/results/predictive_memory_<ppl>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import resource
import time
import warnings

import numpy as np


def numpyro_regression(x, y=None):
    import numpyro
    import numpyro.distributions as dist

    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = numpyro.sample("b", dist.Normal(0.0, 1.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(x @ w + b, sigma), obs=y)


def pyro_regression(x, y=None):
    import pyro
    import pyro.distributions as dist

    w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = pyro.sample("b", dist.Normal(0.0, 1.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(x @ w + b, sigma), obs=y)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(ppl: str, budget_mib: int, n: int = 10**6, d: int = 5) -> dict:
    import ppzoo
    from ppzoo.diagnostics import arviz_compat

    model = {"numpyro": numpyro_regression, "pyro": pyro_regression}[ppl]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x @ np.ones(d) + rng.standard_normal(n)).astype(np.float32)
    post = {"w": rng.normal(1, 0.01, (2, 50, d)), "b": rng.normal(0, 0.01, (2, 50)),
            "sigma": rng.uniform(0.9, 1.1, (2, 50))}
    result = arviz_compat.from_dict({"posterior": post, "observed_data": {"y": y}}, dims={"y": ["data"]},
                                    attrs={"backend": ppl})
    warnings.simplefilter("ignore")  # Pyro runs x @ w one draw at a time, and says so
    small = arviz_compat.from_dict({"posterior": post, "observed_data": {"y": y[:10]}}, dims={"y": ["data"]})
    ppzoo.predict(small, model, x[:10], y=y[:10])
    before, start = peak_mib(), time.perf_counter()
    ppzoo.predict(result, model, x, y=y, memory_budget=budget_mib * 2**20)
    out = result.posterior_predictive["y"]
    row = {"ppl": ppl, "n": n, "d": d, "draws": 100, "memory_budget_mib": budget_mib,
           "peak_rss_before_mib": round(before), "peak_rss_after_mib": round(peak_mib()),
           "rise_mib": round(peak_mib() - before), "output_mib": round(out.nbytes / 2**20),
           "seconds": round(time.perf_counter() - start, 1)}
    print(f"{ppl}, memory_budget {budget_mib} MiB: peak RSS {row['peak_rss_before_mib']} MiB before, "
          f"{row['peak_rss_after_mib']} MiB after (+{row['rise_mib']} MiB); output {row['output_mib']} MiB "
          f"{tuple(out.shape)}; {row['seconds']} s")
    return row


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ppl", choices=["numpyro", "pyro"], default="numpyro")
    parser.add_argument("--budget-mib", type=int, default=256, help="ppzoo.predict's memory_budget, in MiB")
    parser.add_argument("--n", type=int, default=10**6, help="rows predicted")
    parser.add_argument("--out", default=None, help="result path without suffix")
    opts = parser.parse_args()
    row = main(opts.ppl, opts.budget_mib, opts.n)
    out = pathlib.Path(opts.out or pathlib.Path(__file__).resolve().parent / "results" / f"predictive_memory_{opts.ppl}")
    row["machine"] = f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}"
    out.with_suffix(".json").write_text(json.dumps(row, indent=1) + "\n")
    out.with_suffix(".md").write_text(
        "# ppzoo.predict's peak memory\n\n`python benchmarks/predictive_memory.py --ppl {ppl} --budget-mib "
        "{memory_budget_mib} --n {n}` on {machine}\n\n| PPL | N | draws | budget (MiB) | output (MiB) | peak RSS rise (MiB) "
        "| seconds |\n|---|---|---|---|---|---|---|\n| {ppl} | {n:,} | {draws} | {memory_budget_mib} | {output_mib} | "
        "{rise_mib} | {seconds} |\n".format(**row))
