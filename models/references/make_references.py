"""Make the zoo's reference posteriors (kept in the repository, run by hand).

    python models/references/make_references.py [NAME ...]

Writes ``models/references/<name>.json`` for each zoo entry: per scalar
parameter (constrained space, flattened in C order as ``"w[0]"``, ``"w[1]"``,
...) the posterior ``mean`` and ``sd``, and under ``"how"`` how they were made.
Entries whose parameters are not identifiable (``ModelSpec.derived`` set:
``bnn_regression``, ``probabilistic_pca``) store their derived quantities
instead, computed draw by draw from the NUTS draws
(``ModelSpec.quantities``), and say so under ``"how"["quantities"]``.

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

from ppzoo.diagnostics import arviz_compat

HERE = pathlib.Path(__file__).resolve().parent


def _flatten(idata):
    summary = arviz_compat.summary(idata)
    return {
        name: {
            "mean": float(row["mean"]),
            "sd": float(row["sd"]),
            "mcse_mean": float(row["mcse_mean"]),
            "r_hat": float(row["r_hat"]),
        }
        for name, row in summary.iterrows()
    }


def nuts_reference(
    model, args, kwargs, *, num_warmup=2000, num_samples=10000, num_chains=4, seed=0, target_accept_prob=0.9,
    quantities=None,
):
    """Posterior summary of ``model`` by NumPyro NUTS (chains vectorised).

    ``quantities``: ``None`` (summarise the parameters) or a function from the
    draws ``{site: (chain, draw, ...)}`` to the quantities to summarise
    (``ModelSpec.quantities``).
    """
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
    if quantities is not None:
        summarised = arviz_compat.from_dict({"posterior": quantities(mcmc.get_samples(group_by_chain=True))})
    else:
        summarised = idata
    return _flatten(summarised), {
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
    quantities = spec.quantities if spec.derived is not None else None
    params, how = nuts_reference(spec.numpyro_model, args, kwargs, quantities=quantities, **settings)
    if quantities is not None:
        how["quantities"] = (
            f"derived (ModelSpec.derived, {spec.derived.__module__}.{spec.derived.__qualname__}): "
            + (spec.derived.__doc__ or "").strip().splitlines()[0]
        )
    return {"model": name, "data": spec.data, "how": how, "params": params}


def linear_regression():
    from ppzoo.models import linear_regression as lr

    (x,), kwargs = lr.load_data()
    params = lr.closed_form_posterior(x, kwargs["y"])
    how = {"method": "closed form (normal-inverse-gamma conjugacy)", "a0": lr.A0, "b0": lr.B0, "v0": lr.V0}
    return {"model": "linear_regression", "data": lr.SPEC.data, "how": how, "params": params}


REFERENCES = {
    "bnn_regression": partial(nuts_entry, "bnn_regression"),
    "eight_schools": partial(nuts_entry, "eight_schools"),
    "gaussian_mixture": partial(nuts_entry, "gaussian_mixture"),
    # three groups leave tau_a weakly identified (a funnel at small tau_a): a smaller NUTS step avoids divergences
    "hierarchical_regression": partial(nuts_entry, "hierarchical_regression", target_accept_prob=0.99),
    "linear_regression": linear_regression,
    "logistic_regression": partial(nuts_entry, "logistic_regression"),
    "probabilistic_pca": partial(nuts_entry, "probabilistic_pca"),
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
