"""Make the NUTS reference for logistic regression on the raw breast-cancer features.

    python tests/references/make_raw_breast_cancer.py

The model is the zoo's ``logistic_regression`` (``w ~ N(0, I_30)``, ``b ~ N(0, 1)``,
Bernoulli likelihood) on scikit-learn's breast-cancer data **without**
standardising the features (``ppzoo.data.load_breast_cancer(standardized=False)``:
feature scales from about 0.001 to 4,000, so the posterior sds span about four
orders of magnitude and the posterior is strongly correlated). NumPyro NUTS
with a dense mass matrix, 4 chains x 10,000 draws after 5,000 warmup steps
(target acceptance 0.95, seed 0). Writes ``raw_breast_cancer.json`` beside this
script: per scalar parameter (``"w[0]"``, ..., ``"b"``) the posterior ``mean``,
``sd``, ``mcse_mean``, ``ess_bulk`` and ``r_hat``, and under ``"how"`` the
settings, the number of divergences and the run time. The file is written
through a temporary file renamed into place.
"""

from __future__ import annotations

import json
import pathlib
import time

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS

from ppzoo.diagnostics import arviz_compat

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "raw_breast_cancer.json"
SETTINGS = {"num_warmup": 5000, "num_samples": 10000, "num_chains": 4, "seed": 0, "target_accept_prob": 0.95}


def main():
    from ppzoo.models import logistic_regression

    (x,), kwargs = logistic_regression.load_data(standardized=False)
    kernel = NUTS(logistic_regression.numpyro_model, dense_mass=True, target_accept_prob=SETTINGS["target_accept_prob"])
    mcmc = MCMC(
        kernel, num_warmup=SETTINGS["num_warmup"], num_samples=SETTINGS["num_samples"],
        num_chains=SETTINGS["num_chains"], chain_method="vectorized", progress_bar=False,
    )
    start = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(SETTINGS["seed"]), jnp.asarray(x), y=jnp.asarray(kwargs["y"]))
    seconds = time.perf_counter() - start
    idata = az.from_numpyro(mcmc)
    summary = arviz_compat.summary(idata, var_names=["w", "b"])
    params = {
        name: {
            "mean": float(row["mean"]),
            "sd": float(row["sd"]),
            "mcse_mean": float(row["mcse_mean"]),
            "ess_bulk": float(row["ess_bulk"]),
            "r_hat": float(row["r_hat"]),
        }
        for name, row in summary.iterrows()
    }
    how = {
        "method": "numpyro NUTS, dense mass matrix",
        **SETTINGS,
        "divergences": int(np.asarray(idata.sample_stats.diverging).sum()),
        "seconds": round(seconds, 1),
    }
    result = {"model": "logistic_regression", "data": "breast cancer (raw features)", "how": how, "params": params}
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    tmp.replace(OUT)
    worst_rhat = max(p["r_hat"] for p in params.values())
    least_ess = min(p["ess_bulk"] for p in params.values())
    print(f"wrote {OUT}: max r_hat {worst_rhat:.4f}, min ess_bulk {least_ess:.0f}, {how['divergences']} divergences, {seconds:.0f} s")


if __name__ == "__main__":
    main()
