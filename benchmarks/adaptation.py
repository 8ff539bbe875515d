"""Warmup adaptation on and off: error against the reference, effective draws per unit of work, divergences.

For every zoo entry (``ppzoo.models.list_models()``) and for logistic
regression on the raw (unstandardised) breast-cancer features (feature scales
0.001 to 4,000; reference: NUTS with a dense mass matrix,
``tests/references/raw_breast_cancer.json``), every method in ``--methods``
runs on the NumPyro backend with the entry's sampler defaults for warmup,
draws, thinning and batch size (the entry's own method is one of those
compared), ``--chains`` chains, seed 0, in two settings:

* **adapt=True**, ppzoo's defaults: Laplace start at the MAP, a dense (or
  diagonal) preconditioner refined from warmup draws, ``h = 0.1 / lambda_max``
  of the preconditioned Hessian (:mod:`ppzoo.inference.sgmcmc.adaptation`);
* **adapt=False**: no preconditioner (``M = I``) and ppzoo's non-adapted
  default step ``h = 1 / lambda_max`` of the potential's Hessian at the
  starting points and the origin. This is the generic step: no entry keeps a
  hand-tuned one.

Per run: the worst ``|mean - ref_mean| / ref_sd`` and the worst
``|sd / ref_sd - 1|`` over the compared quantities (the raw parameters, or
the entry's derived quantities where it defines them, via
``ModelSpec.summarize``; an entry whose quantities do not match its
reference's names is reported as "no raw-parameter reference"), and the
worst mean error in units of the run's own Monte Carlo standard error (about
3 or less when the error is Monte Carlo noise, more when it is bias); the smallest
bulk ESS; ESS per 1,000 per-datum gradient evaluations (all chains' work,
MAP search, adaptation and warmup included); divergent draws (the sampler's
flag: a non-finite position) and draws with non-finite values; wall time.

Alternatives to ppzoo's scheme (``--variants``, run for ``--variant-methods``,
default SVRG-LD, whose error is small enough that what is left is the
adaptation's): ``stan``: no Laplace start (chains from their random starts,
``M = I``, ``h = 0.1 / lambda_max`` there), then the three windows with Stan's
regularised pooled covariance, not averaged with the previous ``M^-1``;
``unblended``: the Laplace start, then Stan's windows; ``laplace``: the
Laplace start only, ``h`` re-estimated once after the initial buffer, no
windows. They are made by replacing the driver's steps for one run
(:func:`variant`), not by settings users have.

    python benchmarks/adaptation.py [--quick] [--methods sgld psgld ...] [--entries NAME ...] [--variants stan ...]

Writes ``benchmarks/results/adaptation.{json,md}`` (or ``--out PREFIX``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import pathlib
import platform
import time
import traceback

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RAW_REFERENCE = ROOT / "tests" / "references" / "raw_breast_cancer.json"
METHODS = ("sgld", "psgld", "svrg-ld", "sarah-ld", "sgld-cv")
RAW = "logistic_regression (raw features)"
#: the targets the tests hold the variance-reduced methods to
TARGET = (0.1, 0.1)


class _RawBreastCancer:
    """Logistic regression on the raw breast-cancer features, shaped like a zoo entry."""

    name = RAW
    derived = None

    def __init__(self):
        from ppzoo.models import logistic_regression

        self.numpyro_model = logistic_regression.numpyro_model
        self.sampler_defaults = dict(logistic_regression.SPEC.sampler_defaults)
        self._load = logistic_regression.load_data
        self.params = json.loads(RAW_REFERENCE.read_text())["params"]

    def load_data(self):
        return self._load(standardized=False)

    def summarize(self, idata):
        from ppzoo.diagnostics import arviz_compat

        return arviz_compat.summary(idata)


def _entries(names):
    from ppzoo import models

    out = []
    for name in names:
        if name == "raw_breast_cancer":
            spec = _RawBreastCancer()
            out.append((spec.name, spec, spec.params, None))
            continue
        try:
            spec = models.get(name)
        except Exception as err:  # an entry that cannot be loaded is reported, not run
            out.append((name, None, None, f"{type(err).__name__}: {err}"))
            continue
        try:
            params = spec.reference.params
        except FileNotFoundError:  # run it anyway: ESS, work and divergences need no reference
            params = None
        out.append((name, spec, params, None))
    return out


def _summary(spec, idata):
    summarize = getattr(spec, "summarize", None)
    if summarize is not None:
        return summarize(idata)
    from ppzoo.diagnostics import arviz_compat

    return arviz_compat.summary(idata)


VARIANTS = ("stan", "unblended", "laplace")


@contextlib.contextmanager
def variant(name):
    """Replace parts of warmup adaptation in the driver for the runs inside (see the module docstring)."""
    from ppzoo.inference.sgmcmc import driver
    from ppzoo.inference.sgmcmc.preconditioner import Preconditioner

    saved = {k: getattr(driver, k) for k in ("laplace_start", "window_inverse_mass", "warmup_plan")}

    def identity_start(backend, position, rng, *, batch_size, dense, seed, map_steps=None, learning_rate=0.05):
        # M^-1 = I and no modes: the driver then chooses h at the random starts and the origin
        dim = backend.dim
        return position, None, Preconditioner(np.eye(dim) if dense else np.ones(dim)), rng, 0

    def unblended(draws, dense, previous=None):
        return saved["window_inverse_mass"](draws, dense, previous=None)

    def no_windows(num_warmup, block=1):
        return [(steps, action if action == "retune" else None) for steps, action in saved["warmup_plan"](num_warmup, block)]

    if name == "stan":
        driver.laplace_start, driver.window_inverse_mass = identity_start, unblended
    elif name == "unblended":
        driver.window_inverse_mass = unblended
    elif name == "laplace":
        driver.warmup_plan = no_windows
    elif name != "default":
        raise ValueError(f"unknown variant {name!r}; known: default, {', '.join(VARIANTS)}")
    try:
        yield
    finally:
        for key, value in saved.items():
            setattr(driver, key, value)


def run_one(spec, params, method, adapt, chains, sizes, scheme="default"):
    import ppzoo

    args, kwargs = spec.load_data()
    settings = {k: v for k, v in spec.sampler_defaults.items() if k != "method"}
    settings.update(sizes)
    start = time.perf_counter()
    with variant(scheme):
        idata = ppzoo.sample(
            spec.numpyro_model, *args, method=method, adapt=adapt, num_chains=chains, seed=0, backend="numpyro",
            progress_bar=False, log_likelihood=False, **settings, **kwargs,
        )
    seconds = time.perf_counter() - start
    stats = idata.sample_stats
    work = int(stats["grad_evals"].values[:, -1].sum())
    num_draws = idata.posterior.sizes["draw"]
    bad = np.zeros((chains, num_draws), dtype=bool)
    for name in idata.posterior.data_vars:
        bad |= ~np.isfinite(idata.posterior[name].values.reshape(chains, num_draws, -1)).all(axis=2)
    nonfinite = int(bad.sum())
    row = {
        "step_size": float(stats["step_size"].values[0, -1]),
        "grad_evals": work,
        "divergent": int(stats["diverging"].values.sum()),
        "nonfinite_draws": nonfinite,
        "seconds": round(seconds, 1),
        "num_draws": int(num_draws) * chains,
    }
    summary = _summary(spec, idata)
    ess = float(np.nanmin(summary["ess_bulk"].to_numpy())) if "ess_bulk" in summary else math.nan
    row["ess_bulk_min"] = round(ess, 1)
    row["ess_per_1k_grads"] = round(1000.0 * ess / work, 4) if np.isfinite(ess) else None
    if params is None:
        row["note"] = "no reference file"
        return row
    if set(summary.index) != set(params):
        row["note"] = "no raw-parameter reference"
        return row
    names = list(params)
    ref_mean = np.array([params[k]["mean"] for k in names])
    ref_sd = np.array([params[k]["sd"] for k in names])
    mean = summary.loc[names, "mean"].to_numpy()
    sd = summary.loc[names, "sd"].to_numpy()
    z = np.abs(mean - ref_mean) / ref_sd
    ratio = sd / ref_sd
    mcse = summary.loc[names, "mcse_mean"].to_numpy() if "mcse_mean" in summary else np.full(len(names), np.nan)
    if not (np.all(np.isfinite(z)) and np.all(np.isfinite(ratio))):
        row["note"] = "non-finite summary"
        return row
    row.update({
        "mean_error_sd": round(float(z.max()), 4),
        "worst_mean": names[int(np.argmax(z))],
        # the worst |mean - ref| in units of the run's own Monte Carlo standard error: about 3 or
        # less when the error is Monte Carlo noise, more when it is bias
        "mean_error_mcse": round(float(np.max(np.abs(mean - ref_mean) / mcse)), 2),
        "sd_error": round(float(np.abs(ratio - 1).max()), 4),
        "sd_ratio_min": round(float(ratio.min()), 4),
        "sd_ratio_max": round(float(ratio.max()), 4),
        "within_target": bool(z.max() < TARGET[0] and np.abs(ratio - 1).max() < TARGET[1]),
    })
    return row


def _fmt(value, digits=3):
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def markdown(report):
    lines = [
        "Warmup adaptation on and off (NumPyro backend, "
        f"{report['settings']['num_chains']} chains, seed 0; each entry's warmup, draws and thinning). "
        "Errors against the entry's reference: worst |mean - ref| in reference sds, worst |sd / ref_sd - 1|; "
        "ESS: smallest bulk ESS; work: per-datum gradient evaluations of all chains, setup included. "
        "adapt=False: M = I and h = 1 / lambda_max (ppzoo's non-adapted default).",
        "",
    ]
    lines += report["headline"] + [""]
    lines.append(
        "| model | method | adapt | mean err (sd) | mean err (MCSE) | sd err | ESS min | ESS / 1k grads | divergent "
        "| non-finite | h | s | note |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in report["runs"]:
        scheme = ("on" if r["adapt"] else "off") if r.get("variant", "default") == "default" else r["variant"]
        lines.append(
            f"| {r['model']} | {r['method']} | {scheme} | {_fmt(r.get('mean_error_sd'))} | "
            f"{_fmt(r.get('mean_error_mcse'))} | {_fmt(r.get('sd_error'))} | {_fmt(r.get('ess_bulk_min'), 4)} | {_fmt(r.get('ess_per_1k_grads'))} | "
            f"{_fmt(r.get('divergent'))} | {_fmt(r.get('nonfinite_draws'))} | {_fmt(r.get('step_size'))} | "
            f"{_fmt(r.get('seconds'))} | {r.get('note', '')} |"
        )
    lines += ["", json.dumps(report["settings"])]
    return "\n".join(lines) + "\n"


def headline(all_runs):
    runs = [r for r in all_runs if r.get("variant", "default") == "default"]
    out = []
    pairs = {}
    for r in runs:
        if "mean_error_sd" in r:
            pairs.setdefault((r["model"], r["method"]), {})[r["adapt"]] = r
    both = [p for p in pairs.values() if True in p and False in p]
    if both:
        better = sum(p[True]["mean_error_sd"] < p[False]["mean_error_sd"] for p in both)
        gains = [
            p[True]["ess_per_1k_grads"] / p[False]["ess_per_1k_grads"] for p in both
            if p[True].get("ess_per_1k_grads") and p[False].get("ess_per_1k_grads")
        ]
        out.append(
            f"- Adaptation lowers the worst mean error in {better} of {len(both)} (model, method) pairs with a "
            f"reference; median ratio of ESS per gradient evaluation, on / off: {float(np.median(gains)):.3g}."
        )
    for method in sorted({r["method"] for r in runs}):
        rows = [r for r in runs if r["method"] == method and r["adapt"] and "mean_error_sd" in r]
        if rows:
            out.append(
                f"- {method}, adapt=on: median worst mean error {float(np.median([r['mean_error_sd'] for r in rows])):.3g} sd "
                f"({float(np.median([r['mean_error_mcse'] for r in rows])):.3g} MCSE), median worst sd error "
                f"{float(np.median([r['sd_error'] for r in rows])):.3g}, over {len(rows)} models."
            )
    for adapt in (True, False):
        rows = [r for r in runs if r["adapt"] == adapt and "mean_error_sd" in r]
        done = [r for r in runs if r["adapt"] == adapt and "error" not in r]
        failed = [r for r in runs if r["adapt"] == adapt and "error" in r]
        within = sum(r["within_target"] for r in rows)
        ess = [r["ess_per_1k_grads"] for r in done if r.get("ess_per_1k_grads") is not None]
        median = float(np.median(ess)) if ess else math.nan
        med_err = float(np.median([r["mean_error_sd"] for r in rows])) if rows else math.nan
        out.append(
            f"- adapt={'on' if adapt else 'off'}: {within} of {len(rows)} runs with a reference within "
            f"{TARGET[0]} sd (means) and {int(100 * TARGET[1])}% (sds); median worst mean error {med_err:.3g} sd; "
            f"median ESS per 1,000 gradient evaluations {median:.3g}; "
            f"{sum(r.get('divergent', 0) > 0 for r in done)} runs with divergent draws; {len(failed)} runs stopped with an error."
        )
    schemes = sorted({r["variant"] for r in all_runs if r.get("variant", "default") != "default"})
    for method in sorted({r["method"] for r in all_runs if r.get("variant", "default") != "default"}):
        for scheme in ["default", *schemes]:
            rows = [r for r in all_runs if r["method"] == method and r["adapt"] and "mean_error_sd" in r
                    and r.get("variant", "default") == scheme]
            if not rows:
                continue
            out.append(
                f"- {method}, {'ppzoo' if scheme == 'default' else scheme}: {sum(r['within_target'] for r in rows)} of "
                f"{len(rows)} models within target; median worst mean error "
                f"{float(np.median([r['mean_error_sd'] for r in rows])):.3g} sd, median worst sd error "
                f"{float(np.median([r['sd_error'] for r in rows])):.3g}, median ESS per 1,000 gradient evaluations "
                f"{float(np.median([r['ess_per_1k_grads'] for r in rows if r.get('ess_per_1k_grads') is not None])):.3g}."
            )
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", nargs="+", default=None, help="zoo entries (default: all) and/or raw_breast_cancer")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS,
                        help="alternative adaptation schemes to compare (default: all; none to skip)")
    parser.add_argument("--variant-methods", nargs="+", default=["svrg-ld"], choices=METHODS)
    parser.add_argument("--quick", action="store_true", help="linear regression, psgld, tiny sizes: a smoke test")
    parser.add_argument("--out", default=str(RESULTS / "adaptation"))
    opts = parser.parse_args(argv)

    import os
    import warnings

    import jax

    from ppzoo import models

    warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor.*")
    names = opts.entries or [*models.list_models(), "raw_breast_cancer"]
    methods = opts.methods
    sizes = {}
    chains = opts.chains
    if opts.quick:
        names = opts.entries or ["linear_regression"]
        methods = opts.methods if opts.methods != list(METHODS) else ["psgld"]
        sizes = {"num_warmup": 100, "num_samples": 20, "thinning": 1}
        chains = 2
    variant_methods = methods if opts.quick else opts.variant_methods
    runs = []
    for model, spec, params, problem in _entries(names):
        cases = [(method, adapt, "default") for method in methods for adapt in (True, False)]
        cases += [(method, True, scheme) for method in variant_methods for scheme in opts.variants]
        for method, adapt, scheme in cases:
            row = {"model": model, "method": method, "adapt": adapt, "variant": scheme}
            if problem is not None:
                row["error"] = problem
                row["note"] = "not run: " + problem
            else:
                try:
                    row.update(run_one(spec, params, method, adapt, chains, sizes, scheme))
                except Exception as err:  # report and go on: one failing run should not end the benchmark
                    row["error"] = f"{type(err).__name__}: {err}"
                    row["note"] = "stopped: " + row["error"][:120]
                    traceback.print_exc()
            runs.append(row)
            print(json.dumps(row), flush=True)
    report = {
        "settings": {
            "num_chains": chains, "seed": 0, "backend": "numpyro", "methods": methods, "quick": opts.quick,
            "sizes_override": sizes, "target": TARGET, "variants": opts.variants,
            "variant_methods": variant_methods, "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "jax": jax.__version__,
            "jax_devices": [str(d) for d in jax.devices()],
        },
        "runs": runs,
    }
    report["headline"] = headline(runs)
    out = pathlib.Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(report, indent=1) + "\n"), (".md", markdown(report))):
        tmp = out.with_name(out.name + suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(out.with_name(out.name + suffix))
    print("\n".join(report["headline"]))


if __name__ == "__main__":
    main()
