"""Make the NUTS reference for the Poisson GLM of ``benchmarks/programs/poisson_regression.py``.

    python tests/references/make_poisson_regression.py

The model: ``b0 ~ N(0, 2^2)``, ``w ~ N(0, I_4)``, ``y_i ~ Poisson(exp(b0 + x_i . w))``
on the program's 500 simulated rows. NumPyro NUTS, 4 chains x 10,000 draws after
2,000 warmup steps (seed 0). Writes ``poisson_regression.json`` beside this
script: per scalar parameter (``"b0"``, ``"w[0]"``, ...) the posterior ``mean``,
``sd``, ``mcse_mean``, ``ess_bulk`` and ``r_hat``, and under ``"how"`` the
settings, the number of divergences and the run time. The file is written
through a temporary file renamed into place.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS

from ppzoo.diagnostics import arviz_compat

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "poisson_regression.json"
SETTINGS = {"num_warmup": 2000, "num_samples": 10000, "num_chains": 4, "seed": 0}


def main():
    sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))
    from programs import poisson_regression

    (x,), kwargs = poisson_regression.data()
    mcmc = MCMC(
        NUTS(poisson_regression.model),
        num_warmup=SETTINGS["num_warmup"],
        num_samples=SETTINGS["num_samples"],
        num_chains=SETTINGS["num_chains"],
        chain_method="vectorized",
        progress_bar=False,
    )
    start = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(SETTINGS["seed"]), jnp.asarray(x), y=jnp.asarray(kwargs["y"]))
    seconds = time.perf_counter() - start
    idata = az.from_numpyro(mcmc)
    summary = arviz_compat.summary(idata, var_names=["b0", "w"])
    params = {
        name: {key: float(row[key]) for key in ("mean", "sd", "mcse_mean", "ess_bulk", "r_hat")}
        for name, row in summary.iterrows()
    }
    how = {
        "method": "numpyro NUTS",
        **SETTINGS,
        "divergences": int(np.asarray(idata.sample_stats.diverging).sum()),
        "seconds": round(seconds, 1),
    }
    result = {
        "model": "poisson_regression",
        "data": "benchmarks/programs/poisson_regression.py",
        "how": how,
        "params": params,
    }
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    tmp.replace(OUT)
    worst_rhat = max(p["r_hat"] for p in params.values())
    least_ess = min(p["ess_bulk"] for p in params.values())
    print(
        f"wrote {OUT}: max r_hat {worst_rhat:.4f}, min ess_bulk {least_ess:.0f}, "
        f"{how['divergences']} divergences, {seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
