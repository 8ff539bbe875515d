"""Peak memory of ``ppzoo.predict`` at N = 10^6.

    python benchmarks/predictive_memory.py numpyro 256    # PPL, memory_budget in MiB
    python benchmarks/predictive_memory.py pyro 256

A linear regression (d = 5, the program as users write it, ``x @ w``) with 2 chains x 50
posterior draws is predicted at its N = 10^6 observed rows: ``posterior_predictive`` holds
``2 x 50 x 10^6`` float32 values (381 MiB). The process reports its peak resident memory (RSS)
before the call (data, result, the PPL warmed up on 10 rows) and after it; the difference is
what the call cost: the output, the program traced once on all the data, and one chunk's work.
"""

from __future__ import annotations

import resource
import sys
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


def main(ppl: str, budget_mib: int, n: int = 10**6, d: int = 5) -> None:
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
    print(f"{ppl}, memory_budget {budget_mib} MiB: peak RSS {before:.0f} MiB before, {peak_mib():.0f} MiB after "
          f"(+{peak_mib() - before:.0f} MiB); output {out.nbytes / 2**20:.0f} MiB {out.shape}; "
          f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "numpyro", int(sys.argv[2]) if len(sys.argv) > 2 else 256)
