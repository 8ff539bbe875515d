"""Make the zoo's reference posteriors (kept in the repository, run by hand).

    python models/references/make_references.py [NAME ...]

Writes ``models/references/<name>.json`` for each zoo entry: per scalar
parameter (constrained space, flattened in C order as ``"w[0]"``, ``"w[1]"``,
...) the posterior ``mean`` and ``sd``, and under ``"how"`` how they were made:

* ``linear_regression``: the closed form (normal-inverse-gamma conjugacy,
  :func:`ppzoo.models.linear_regression.closed_form_posterior`).
* every other entry: NumPyro NUTS on the entry's NumPyro program and default
  data, 4 chains x 10,000 draws after 2,000 warmup steps (target acceptance
  0.9, 0.99 for ``hierarchical_regression``; seed 0), with each parameter's
  Monte Carlo standard error and R-hat, and the number of divergences.
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


def nuts_reference(model, args, kwargs, *, num_warmup=2000, num_samples=10000, num_chains=4, seed=0, target_accept_prob=0.9):
    """Posterior summary of ``model`` by NumPyro NUTS (chains vectorised)."""
    mcmc = MCMC(
        NUTS(model, target_accept_prob=target_accept_prob),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    # x[idx] needs a JAX array under NUTS's jit; sizes (ints) stay static
    to_jax = partial(jax.tree_util.tree_map, lambda v: jnp.asarray(v) if isinstance(v, np.ndarray) else v)
    mcmc.run(jax.random.PRNGKey(seed), *to_jax(args), **to_jax(kwargs))
    idata = az.from_numpyro(mcmc)
    return _flatten(idata), {
        "method": "numpyro NUTS",
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "num_chains": num_chains,
        "seed": seed,
        "target_accept_prob": target_accept_prob,
        "divergences": int(np.asarray(idata.sample_stats.diverging).sum()),
    }


def nuts_entry(name, **settings):
    """The NUTS reference of zoo entry ``name`` on its default data."""
    from ppzoo import models

    spec = models.get(name)
    args, kwargs = spec.load_data()
    params, how = nuts_reference(spec.numpyro_model, args, kwargs, **settings)
    return {"model": name, "data": spec.data, "how": how, "params": params}


def linear_regression():
    from ppzoo.models import linear_regression as lr

    (x,), kwargs = lr.load_data()
    params = lr.closed_form_posterior(x, kwargs["y"])
    how = {"method": "closed form (normal-inverse-gamma conjugacy)", "a0": lr.A0, "b0": lr.B0, "v0": lr.V0}
    return {"model": "linear_regression", "data": lr.SPEC.data, "how": how, "params": params}


REFERENCES = {
    "eight_schools": partial(nuts_entry, "eight_schools"),
    # three groups leave tau_a weakly identified (a funnel at small tau_a): a smaller NUTS step avoids divergences
    "hierarchical_regression": partial(nuts_entry, "hierarchical_regression", target_accept_prob=0.99),
    "linear_regression": linear_regression,
    "logistic_regression": partial(nuts_entry, "logistic_regression"),
    "robust_regression": partial(nuts_entry, "robust_regression"),
}


def main(names):
    unknown = sorted(set(names) - set(REFERENCES))
    if unknown:
        raise SystemExit(f"no reference recipe for {unknown}; known: {sorted(REFERENCES)}")
    for name in names or REFERENCES:
        result = REFERENCES[name]()
        path = HERE / f"{name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        tmp.replace(path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
