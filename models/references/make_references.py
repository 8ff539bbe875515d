"""Make zoo entries' references (kept in the repository, run by hand), and the catalog.

    python models/references/make_references.py [NAME ...]

Writes ``models/references/<name>.json`` for each named zoo entry (every entry
when none is named), by the entry's own ``ModelSpec.reference_recipe``, then
rewrites ``models/references/catalog.json`` (what ``ppzoo list`` shows). A new
entry is one file in ``models/`` and this one command.

A sampled entry's reference holds, per scalar parameter (constrained space,
flattened in C order as ``"w[0]"``, ``"w[1]"``, ...), the posterior ``mean``
and ``sd``, and under ``"how"`` how they were made. Entries whose parameters
are not identifiable (``ModelSpec.derived`` set: ``bnn_regression``,
``probabilistic_pca``) store their derived quantities instead, computed draw
by draw from the NUTS draws (``ModelSpec.quantities``), and say so under
``"how"["quantities"]``. The recipes:

* a function (``linear_regression``: the closed form,
  :func:`ppzoo.models.linear_regression.closed_form_reference`);
* otherwise NumPyro NUTS on the entry's NumPyro program and default data, 4
  chains x 10,000 draws after 2,000 warmup steps (target acceptance 0.9, or
  the entry's ``reference_recipe`` settings; seed 0), with each parameter's
  Monte Carlo standard error and R-hat, and the number of divergences.

A deep entry's reference is a NumPyro fit with the entry's defaults
(:func:`fit_entry`): the held-out digits' negative log-likelihood per image,
active units and KL per latent dimension.
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


def nuts_entry(spec, **settings):
    """The NUTS reference of sampled entry ``spec`` on its default data."""
    args, kwargs = spec.load_data()
    quantities = spec.quantities if spec.derived is not None else None
    params, how = nuts_reference(spec.numpyro_model, args, kwargs, quantities=quantities, **settings)
    if quantities is not None:
        how["quantities"] = (
            f"derived (ModelSpec.derived, {spec.derived.__module__}.{spec.derived.__qualname__}): "
            + (spec.derived.__doc__ or "").strip().splitlines()[0]
        )
    return params, how


#: importance samples per held-out image in a deep entry's reference log-likelihood
DEEP_LML_SAMPLES = 1000


def fit_entry(spec):
    """A deep entry's reference: a NumPyro fit with its defaults (``ModelSpec.fit_settings``, seed 0)
    on the training digits, then the held-out digits' ``-log p(x)`` per image (importance-sampled,
    ``K`` = :data:`DEEP_LML_SAMPLES`) and the collapse diagnostics on the training digits."""
    import time

    from ppzoo.models.vae import load_test_data

    import ppzoo

    (x,), _ = spec.load_data()
    (x_test,), _ = load_test_data()
    model, guide = spec.fit_programs("numpyro")
    settings = spec.fit_settings("numpyro")
    start = time.perf_counter()
    fit = ppzoo.fit(model, guide, x, seed=0, progress_bar=False, **settings)
    seconds = time.perf_counter() - start
    lml = ppzoo.log_marginal_likelihood(model, guide, fit.params, x_test, num_samples=DEEP_LML_SAMPLES,
                                        chunk_size=100, backend="numpyro")
    report = fit.collapse(num_samples=5)
    params = {
        "test_nll_per_datum": {"mean": float(-lml.total / len(x_test)), "se": float(lml.standard_error / len(x_test))},
        "active_units": {"mean": int(report.active_units)},
        "kl_per_dim": {"mean": [float(v) for v in report.kl]},
        "rate": {"mean": float(report.rate)},
    }
    how = {"method": "ppzoo.fit (numpyro), the entry's fit_defaults, seed 0; held-out digits' log p(x) by "
                     f"importance sampling (K = {DEEP_LML_SAMPLES})",
           "fit_settings": {k: v for k, v in spec.fit_defaults.items()}, "program_options":
           {k: list(v) if isinstance(v, tuple) else v for k, v in spec.program_options.items()},
           "num_steps": len(fit.losses), "fit_seconds": round(seconds, 1), "converged": fit.converged}
    return params, how


def make_reference(spec) -> dict:
    """The reference of entry ``spec`` by its ``reference_recipe`` (``ModelSpec``)."""
    recipe = spec.reference_recipe
    if spec.kind == "deep":
        params, how = fit_entry(spec)
    elif callable(recipe):
        params, how = recipe()
    else:
        params, how = nuts_entry(spec, **(recipe or {}))
    return {"model": spec.name, "data": spec.data, "how": how, "params": params}


def main(names):
    from ppzoo.models import registry

    from ppzoo import models

    known = models.list_models()
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise SystemExit(f"unknown zoo entries {unknown}; known: {known}")
    for name in names or known:
        result = make_reference(models.get(name))
        path = HERE / f"{name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        tmp.replace(path)
        print(f"wrote {path}")
    registry.CATALOG.write_text(json.dumps(registry.catalog(), indent=1) + "\n")
    print(f"wrote {registry.CATALOG}")


if __name__ == "__main__":
    main(sys.argv[1:])
