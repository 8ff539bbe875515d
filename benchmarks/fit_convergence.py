"""How far ``ppzoo.fit`` gets with its defaults: steps until it stops, and its error against the exact or NUTS posterior.

Each zoo entry (``ppzoo.models``) with a reference posterior (NumPyro NUTS,
``models/references/``), plus a one-parameter conjugate model whose posterior
is exact, is fitted with an autoguide of NumPyro (``AutoNormal``,
``AutoMultivariateNormal``) and, for a few entries, of Pyro, under two
settings side by side in one run:

* ``default``: what ``ppzoo.fit(model, guide, *data)`` does: Adam from
  learning rate 1e-2, lowered tenfold when the loss levels off (twice), and
  stopped when it levels off at 1e-4 (``num_steps=None``, at most 30,000;
  see ``ppzoo.diagnostics.fit_convergence.PlateauSchedule``);
* ``default, refine=False``: the same stochastic steps without the refinement on
  fixed draws that ends a default fit (``ppzoo.refinement``): what the plateau
  schedule alone reaches, and a verdict judged on the loss alone;
* ``adam 1e-3 x 1000``: the previous default, a constant Adam 1e-3 for 1,000 steps.

Reported per fit, over the entry's compared quantities (``spec.summarize`` of
2,000 guide draws against the reference, as ``benchmarks/zoo_accuracy.py``):

* ``steps``: optimisation steps run, and the steps at which the learning rate was lowered;
* ``from optimum``: ``max |mean - opt_mean| / ref_sd``, where ``opt_mean`` is
  the mean of the same guide family fitted for 30,000 steps (NumPyro, Adam
  1e-2, 1e-3 and 1e-4 for 10,000 steps each): how far the optimiser stopped
  from where the guide family is going, the part the defaults control;
* ``mean err``: ``max |mean - ref_mean| / ref_sd`` (in posterior sds);
* ``sd ratio``: the ``sd / ref_sd`` farthest from 1 (a mean-field guide of a
  correlated posterior is too narrow at its optimum: that is the guide family,
  not the optimiser);
* ``converged``: ``Fit.converged``, the fit's own verdict, and the wall time.

The gap between the optimiser and the guide family's optimum is what the
defaults control; ``AutoMultivariateNormal`` on the near-Gaussian posteriors
shows it directly. Mixture and PCA entries are compared on their derived,
identifiable quantities.

    python benchmarks/fit_convergence.py [--models NAME ...] [--long-phase 10000] [--quick]

Writes ``benchmarks/results/fit_convergence.{json,md}`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import time
import warnings

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
GUIDES = ("AutoNormal", "AutoMultivariateNormal")
#: entries also fitted with Pyro's autoguides
PYRO_MODELS = ("conjugate_normal", "linear_regression", "logistic_regression")
SEED = 0
DRAWS = 2000
#: steps per learning rate of the reference fit of each guide family (NumPyro)
LONG_PHASE = 10_000


def conjugate_normal():
    """``mu ~ N(0, 10^2)``, ``y_i ~ N(mu, 1)``, 100 data: ``(numpyro_model, pyro_model, data, exact posterior)``."""
    import numpyro
    import numpyro.distributions as nd
    import pyro
    import pyro.distributions as pd
    import torch

    y = np.random.default_rng(7).normal(3.0, 1.0, size=100).astype(np.float32)

    def numpyro_model(y):
        mu = numpyro.sample("mu", nd.Normal(0.0, 10.0))
        with numpyro.plate("data", y.shape[0]):
            numpyro.sample("y", nd.Normal(mu, 1.0), obs=y)

    def pyro_model(y):
        mu = pyro.sample("mu", pd.Normal(0.0, 10.0))
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", pd.Normal(mu, 1.0), obs=y)

    precision = 1 / 100 + len(y)
    exact = {"mu": {"mean": float(y.sum() / precision), "sd": float(precision**-0.5)}}
    return numpyro_model, pyro_model, y, exact, lambda _: torch.as_tensor(y)


def correlated_regression():
    """Two coefficients on correlated columns, known noise: ``w ~ N(0, 3^2 I)``, ``y ~ N(X w, 0.5^2)``,
    40 data. ``(numpyro_model, pyro_model, (X, y), exact posterior, mean-field ELBO optimum, to_torch)``:
    the posterior is ``N(m, Lambda^-1)``; a mean-field guide's ELBO optimum has mean ``m`` and
    variances ``1 / Lambda_ii``."""
    import numpyro
    import numpyro.distributions as nd
    import pyro
    import pyro.distributions as pd
    import torch

    rng = np.random.default_rng(20261207)
    x = np.stack([np.ones(40), rng.normal(2.0, 1.0, 40)], axis=1).astype(np.float32)
    y = (x @ np.array([0.5, -1.0]) + 0.5 * rng.normal(size=40)).astype(np.float32)

    def numpyro_model(x, y):
        w = numpyro.sample("w", nd.Normal(0.0, 3.0).expand([2]).to_event(1))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("y", nd.Normal(x @ w, 0.5), obs=y)

    def pyro_model(x, y):
        w = pyro.sample("w", pd.Normal(0.0, 3.0).expand([2]).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", pd.Normal(x @ w, 0.5), obs=y)

    precision = x.T.astype(np.float64) @ x / 0.25 + np.eye(2) / 9.0
    mean = np.linalg.solve(precision, x.T.astype(np.float64) @ y / 0.25)
    full, meanfield = np.sqrt(np.diag(np.linalg.inv(precision))), 1 / np.sqrt(np.diag(precision))
    exact = {f"w[{i}]": {"mean": float(mean[i]), "sd": float(full[i])} for i in range(2)}
    mf = {f"w[{i}]": {"mean": float(mean[i]), "sd": float(meanfield[i])} for i in range(2)}
    return numpyro_model, pyro_model, (x, y), exact, mf, lambda a: torch.as_tensor(a)


#: entries whose guide families' optima are known in closed form (see ``cases``)
CLOSED_FORM = ("conjugate_normal", "correlated_regression")


def errors(table, reference):
    """``(worst mean error in sds, the sd ratio farthest from 1)`` over the reference's quantities."""
    means, ratios = [], []
    for name, ref in reference.items():
        if name in table.index:
            means.append(abs(table.loc[name, "mean"] - ref["mean"]) / ref["sd"])
            ratios.append(table.loc[name, "sd"] / ref["sd"])
    return float(max(means)), float(max(ratios, key=lambda r: abs(np.log(r))))


def autoguide(backend, name, model):
    if backend == "numpyro":
        from numpyro.infer import autoguide as module
    else:
        from pyro.infer import autoguide as module
    return getattr(module, name)(model)


def settings():
    import numpyro.optim
    import pyro.optim

    return {
        "default": lambda backend: {},
        "default, refine=False": lambda backend: {"refine": False},
        "adam 1e-3 x 1000": lambda backend: {
            "num_steps": 1000,
            "optimizer": numpyro.optim.Adam(1e-3) if backend == "numpyro" else pyro.optim.Adam({"lr": 1e-3}),
        },
    }


def cases(names):
    """``(entry, backend, model, args, kwargs, summarize, reference)`` for each entry and backend."""
    import torch

    from ppzoo import models
    from ppzoo.diagnostics import arviz_compat

    for name in names:
        if name == "conjugate_normal":
            nm, pm, y, exact, to_torch = conjugate_normal()
            summarize = lambda idata: arviz_compat.summary(idata, var_names=["mu"], kind="stats")  # noqa: E731
            optima = dict.fromkeys(GUIDES, exact)
            yield name, "numpyro", nm, (y,), {}, summarize, exact, optima
            yield name, "pyro", pm, (to_torch(y),), {}, summarize, exact, optima
            continue
        if name == "correlated_regression":
            nm, pm, data, exact, meanfield, to_torch = correlated_regression()
            summarize = lambda idata: arviz_compat.summary(idata, var_names=["w"], kind="stats")  # noqa: E731
            optima = {"AutoNormal": meanfield, "AutoMultivariateNormal": exact}
            yield name, "numpyro", nm, data, {}, summarize, exact, optima
            yield name, "pyro", pm, tuple(to_torch(a) for a in data), {}, summarize, exact, optima
            continue
        spec = models.get(name)
        reference = spec.reference.params  # the derived quantities where the entry has them
        args, kwargs = spec.load_data()
        yield name, "numpyro", spec.numpyro_model, args, kwargs, spec.summarize, reference, None
        if name in PYRO_MODELS:
            convert = lambda v: torch.as_tensor(np.asarray(v)) if isinstance(v, np.ndarray) or hasattr(v, "__array__") else v  # noqa: E731
            yield (name, "pyro", spec.pyro_model, tuple(convert(a) for a in args),
                   {k: convert(v) for k, v in kwargs.items()}, spec.summarize, reference, None)


def long_options(phase=LONG_PHASE):
    """The guide family's optimum, for reference: Adam 1e-2, 1e-3, 1e-4 for ``phase`` steps each (NumPyro)."""
    import numpyro.optim
    import optax

    schedule = optax.piecewise_constant_schedule(1e-2, {phase: 0.1, 2 * phase: 0.1})
    return {"num_steps": 3 * phase, "optimizer": numpyro.optim.optax_to_numpyro(optax.adam(schedule))}


def run_one(backend, model, args, kwargs, guide_name, options, summarize, reference):
    import ppzoo

    guide = autoguide(backend, guide_name, model)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = ppzoo.fit(model, guide, *args, **kwargs, seed=SEED, progress_bar=False, **options)
        idata = fit.to_arviz(DRAWS, seed=SEED)
    wall = time.perf_counter() - start
    table = summarize(idata)
    mean_err, sd_ratio = errors(table, reference)
    return {
        "means": {k: float(table.loc[k, "mean"]) for k in reference if k in table.index},
        "sds": {k: float(table.loc[k, "sd"]) for k in reference if k in table.index},
        "steps": len(fit.losses), "lowered_at": [s for s, _ in fit.learning_rates[1:]],
        "mean_err": mean_err, "sd_ratio": sd_ratio, "converged": fit.converged, "judged_on": fit.judged_on,
        "diverged": fit.diverged,
        "warnings": sorted({type(w.message).__name__ for w in caught}), "wall_s": wall,
    }


def markdown(rows, meta) -> str:
    lines = [
        "# ppzoo.fit with its defaults, across the zoo",
        "",
        f"`python benchmarks/fit_convergence.py{meta['args']}` on {meta['machine']}. Reference: NumPyro NUTS "
        "(`models/references/`), or the exact posterior (conjugate normal). Errors over "
        f"{DRAWS} guide draws; seed {SEED}.",
        "",
        "| entry | backend | guide | setting | steps (lowered at) | from optimum (sd) | closed-form optimum: mean (sd) / sd err | mean err (sd) | sd ratio | converged | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['entry']} | {r['backend']} | {r['guide']} | {r['setting']} | error: {r['error']} ||||||")
            continue
        lowered = f" ({', '.join(str(s) for s in r['lowered_at'])})" if r["lowered_at"] else ""
        lines.append(
            f"| {r['entry']} | {r['backend']} | {r['guide']} | {r['setting']} | {r['steps']:,}{lowered} | "
            f"{'n/a' if r['optimum_err'] is None else format(r['optimum_err'], '.3f')} | "
            + (f"{r['family_mean_err']:.3f} / {100 * r['family_sd_err']:.1f}% | " if "family_mean_err" in r else "| ")
            + f"{r['mean_err']:.3f} | {r['sd_ratio']:.2f} | {r['converged']} ({r.get('judged_on', 'loss')}) | {r['wall_s']:.1f} |"
        )
    ok = [r for r in rows if "error" not in r]
    for setting in sorted({r["setting"] for r in ok}):
        sel = [r for r in ok if r["setting"] == setting]
        mvn = [r for r in sel if r["guide"] == "AutoMultivariateNormal"]
        lines += [
            "",
            f"**{setting}**: {len(sel)} fits; median steps {int(np.median([r['steps'] for r in sel])):,}; "
            f"mean error <= 0.1 sd in {sum(r['mean_err'] <= 0.1 for r in sel)} of {len(sel)} "
            f"(AutoMultivariateNormal: {sum(r['mean_err'] <= 0.1 for r in mvn)} of {len(mvn)}, "
            f"sd within 10% in {sum(abs(r['sd_ratio'] - 1) <= 0.1 for r in mvn)}); "
            f"median mean error {np.median([r['mean_err'] for r in sel]):.3f} sd; "
            f"within 0.1 sd of the guide family's optimum: "
            f"{sum(r['optimum_err'] is not None and r['optimum_err'] <= 0.1 for r in sel)} of "
            f"{sum(r['optimum_err'] is not None for r in sel)}; "
            f"said it converged: {sum(r['converged'] is True for r in sel)}, "
            f"warned it had not: {sum('FitConvergenceWarning' in r['warnings'] for r in sel)}; "
            f"total wall {sum(r['wall_s'] for r in sel):.0f} s.",
        ]
        closed = [r for r in sel if "family_mean_err" in r]
        if closed:
            hit = [r for r in closed if r["family_mean_err"] <= 0.05 and r["family_sd_err"] <= 0.05]
            silent = [r for r in closed if r not in hit and "FitConvergenceWarning" not in r["warnings"]]
            lines[-1] += (f" Closed-form optima: within 0.05 sd and 5% in {len(hit)} of {len(closed)}; "
                          f"missed without a warning: {len(silent)}.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    from ppzoo import models

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: the conjugate model, NumPyro, AutoNormal, a reference fit of 3 x 1,000 steps")
    parser.add_argument("--long-phase", type=int, default=LONG_PHASE, help="steps per learning rate of the reference fits")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS / "fit_convergence")
    opts = parser.parse_args(argv)
    names = opts.models or (["conjugate_normal"] if opts.quick else [*CLOSED_FORM, *models.list_models()])
    names = [n for n in names if n != "vae"]  # no NUTS reference: its fits are judged in iwae_digits
    guides = GUIDES[:1] if opts.quick else GUIDES
    long_phase = 1000 if opts.quick else opts.long_phase
    rows = []
    optimum = {}  # (entry, guide) -> the means of the guide family's optimum (the long NumPyro fit)
    for entry, backend, model, args, kwargs, summarize, reference, optima in cases(names):
        if opts.quick and backend != "numpyro":
            continue
        for guide_name in guides:
            if backend == "numpyro":
                try:
                    optimum[entry, guide_name] = run_one(backend, model, args, kwargs, guide_name,
                                                         long_options(long_phase), summarize, reference)["means"]
                except Exception as err:  # noqa: BLE001
                    print(f"no optimum for {entry} {guide_name}: {err}", flush=True)
            for setting, options in settings().items():
                row = {"entry": entry, "backend": backend, "guide": guide_name, "setting": setting}
                try:
                    row.update(run_one(backend, model, args, kwargs, guide_name, options(backend), summarize, reference))
                    best = optimum.get((entry, guide_name))
                    row["optimum_err"] = None if best is None else max(
                        abs(row["means"][k] - best[k]) / reference[k]["sd"] for k in best
                    )
                    if optima is not None:  # the guide family's own optimum, in closed form
                        family = optima[guide_name]
                        row["family_mean_err"] = max(
                            abs(row["means"][k] - family[k]["mean"]) / family[k]["sd"] for k in family)
                        row["family_sd_err"] = max(abs(row["sds"][k] / family[k]["sd"] - 1) for k in family)
                except Exception as err:  # noqa: BLE001 - recorded, and the benchmark goes on
                    row["error"] = f"{type(err).__name__}: {err}"[:200]
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "means"}), flush=True)
    meta = {"machine": f"{platform.machine()} {platform.processor() or ''} ({platform.python_version()})".strip(),
            "args": "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv))}
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    opts.out.with_suffix(".md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))
    return rows


if __name__ == "__main__":
    main()
