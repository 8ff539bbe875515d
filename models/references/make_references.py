"""Make the zoo's reference posteriors (kept in the repository, run by hand).

    python models/references/make_references.py

``logistic_regression_breast_cancer.json``: NumPyro NUTS on
:mod:`ppzoo.models.logistic_regression` with the standardised breast-cancer
data, 4 chains x 10,000 draws after 2,000 warmup steps (target acceptance
0.9, seed 0). Stores each parameter's posterior mean, standard deviation and
Monte Carlo standard error of the mean, plus R-hat, in the constrained space,
flattened in C order under ``"w[0]"``, ``"w[1]"``, ..., ``"b"``.
"""

from __future__ import annotations

import json
import pathlib
import sys
from functools import partial

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS

HERE = pathlib.Path(__file__).resolve().parent


def _flatten(idata):
    summary = az.summary(idata, kind="all", round_to="none")
    return {
        name: {
            "mean": float(row["mean"]),
            "sd": float(row["sd"]),
            "mcse_mean": float(row["mcse_mean"]),
            "r_hat": float(row["r_hat"]),
        }
        for name, row in summary.iterrows()
    }


def nuts_reference(model, args, kwargs, *, num_warmup=2000, num_samples=10000, num_chains=4, seed=0):
    """Posterior summary of ``model`` by NumPyro NUTS (chains vectorised)."""
    mcmc = MCMC(
        NUTS(model, target_accept_prob=0.9),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    to_jax = partial(jax.tree_util.tree_map, jnp.asarray)  # x[idx] needs a JAX array under NUTS's jit
    mcmc.run(jax.random.PRNGKey(seed), *to_jax(args), **to_jax(kwargs))
    idata = az.from_numpyro(mcmc)
    return _flatten(idata), {
        "method": "numpyro NUTS",
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "num_chains": num_chains,
        "seed": seed,
        "target_accept_prob": 0.9,
        "divergences": int(np.asarray(idata.sample_stats.diverging).sum()),
    }


def logistic_regression_breast_cancer():
    from ppzoo.models import logistic_regression

    args, kwargs = logistic_regression.load_data()
    params, how = nuts_reference(logistic_regression.numpyro_model, args, kwargs)
    return {"model": "logistic_regression", "data": "breast_cancer (standardised)", "how": how, "params": params}


REFERENCES = {"logistic_regression_breast_cancer": logistic_regression_breast_cancer}


def main(names):
    for name in names or REFERENCES:
        result = REFERENCES[name]()
        path = HERE / f"{name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        tmp.replace(path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
