"""Agreement with NUTS on programs written as users write them for NUTS; effective draws per unit of work.

Every program in ``benchmarks/programs/`` (one module each: the NumPyro
``model``, its ``data()``, optionally the ``SITES`` to compare, an
``EXPECT_ERROR`` or a ``reference_model``; see that package's docstring) is
passed to ``ppzoo.sample`` exactly as written: data as arguments, used whole
in ``numpyro.plate("data", N)``, with improper priors, masks, factors,
deterministic sites, observations outside the data plate, latents inside it,
a user-fixed ``subsample_size`` and no data at all among them.

**Reference.** NumPyro NUTS, 4 chains (``chain_method="vectorized"``),
``--nuts-warmup`` (1000) warmup and ``--nuts-samples`` (2000) draws per chain,
seed 0, on ``reference_model`` where a program defines one (else ``model``),
all chains started at ``REFERENCE_INIT`` where a program defines one (a
multimodal posterior whose minor modes hold a negligible share of the mass).
A program with ``exact_draws`` (the funnel, whose posterior is its prior) is
compared with 4 x 10,000 independent draws instead, and NUTS is one more run
compared with them.
Its draws of the compared sites (``SITES``, default every posterior variable
NUTS returns: latent and deterministic sites), flattened to scalars
``w[0]``, ``W[0,1]``, ..., give the reference mean ``m_ref`` and sd
``s_ref`` of each scalar. Its work is ``G = N * sum(num_steps)``, summed over
chains and over warmup and sampling (one leapfrog step is one full gradient:
N per-datum gradients), with N the full size of the plate that holds the
observations (the largest, if several do; 1 for a program with none). Its
wall time covers warmup and sampling, compilation included.

**ppzoo runs.** ``ppzoo.sample(model, *args, **kwargs, seed=0,
progress_bar=False)`` with (a) ppzoo's defaults (no ``method``, no sizes),
(b) ``method="svrg-ld"``, (c) ``method="sgld-cv"``; ``--quick`` sets
``num_warmup=300, num_samples=200``. Each run records its wall time (set-up,
compilation, MAP search and warmup included), whether it raised a
``ppzoo.diagnostics.convergence.ConvergenceWarning``, and its work
``G = sum over chains of sample_stats.grad_evals[:, -1]`` (the counter is
cumulative per chain and counts set-up and warmup).

**Per run**, over the compared scalars ``i`` (ArviZ's numbers, through
``ppzoo.diagnostics.arviz_compat.summary``, for the run and the reference
alike):

* worst mean error ``max_i |m_i - m_ref,i| / s_ref,i``;
* worst sd ratio: the ``r_i = s_i / s_ref,i`` farthest from 1, and
  ``max_i |r_i - 1|``;
* worst mean error in Monte Carlo standard errors,
  ``max_i |m_i - m_ref,i| / sqrt(mcse_i^2 + mcse_ref,i^2)`` (about 3 or
  less when the error is Monte Carlo noise, more when it is bias);
* ``max_i R-hat_i`` (rank-normalised split R-hat) and ``min_i ESS_bulk,i``;
* bulk ESS per second ``min_i ESS_bulk,i / wall`` and per 1,000 per-datum
  gradient evaluations ``1000 * min_i ESS_bulk,i / G``;
* the verdict: ``within`` (worst mean error <= 0.1 and ``max_i |r_i - 1|``
  <= 0.1), ``warned`` (outside, but a ConvergenceWarning said so), or
  ``SILENT MISS`` (outside, and nothing said so). A run that raises is
  reported as ``error: <first line>``; the benchmark goes on.

A program with ``EXPECT_ERROR`` is not sampled by NUTS: each ppzoo run only
checks that ``ppzoo.sample`` raises an error containing that text
(``error as expected``, else ``NOT REFUSED`` or ``wrong error: ...``).

    python benchmarks/nuts_agreement.py [--quick] [--programs NAME ...] [--nuts-warmup 1000] [--nuts-samples 2000]

Writes ``benchmarks/results/nuts_agreement.{json,md}`` (or ``--out PREFIX``)
and prints the table as it goes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import sys
import time
import traceback
import warnings

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: ppzoo runs: label -> ``method=`` (None: ppzoo's default)
METHODS = {"default": None, "svrg-ld": "svrg-ld", "sgld-cv": "sgld-cv"}
NUM_CHAINS = 4
#: independent draws per chain of a program's ``exact_draws`` reference
EXACT_DRAWS = 10000
#: worst |mean error| / sd_ref and worst |sd / sd_ref - 1| for "within"
TARGET = (0.1, 0.1)
COLUMNS = ("program", "method", "worst Δmean/sd (abs.)", "worst sd ratio", "worst Δmean/MCSE", "R-hat",
           "bulk ESS/s", "bulk ESS per 1k grad evals", "wall s", "warned", "verdict")


def _programs():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks import programs

    return programs


# -- draws and their summary -----------------------------------------------------
def flatten(draws: dict, sites) -> dict:
    """``{site: (chain, draw, *shape)}`` -> ``{scalar name: (chain, draw)}``; names ``w``, ``w[0]``, ``W[0,1]``."""
    out = {}
    for site in sites:
        values = np.asarray(draws[site], dtype=np.float64)
        shape = values.shape[2:]
        if not shape:
            out[site] = values
            continue
        for idx in np.ndindex(*shape):
            out[f"{site}[{','.join(map(str, idx))}]"] = values[(slice(None), slice(None), *idx)]
    return out


def summarise(scalars: dict):
    """ArviZ's summary (mean, sd, mcse_mean, ess_bulk, r_hat, ...) of ``{name: (chain, draw)}``, one row per name."""
    from ppzoo.diagnostics import arviz_compat

    idata = arviz_compat.from_dict({"posterior": scalars})
    return arviz_compat.summary(idata, var_names=list(scalars))


def data_plate_size(model, args, kwargs) -> int:
    """Full size of the plate holding the observed sites (the largest, if several do); 1 if none does."""
    import jax
    from numpyro.infer.util import initialize_model

    # traced at NUTS's initial values: a plain seeded trace cannot draw from an improper prior
    trace = initialize_model(jax.random.PRNGKey(0), model, model_args=args, model_kwargs=kwargs).model_trace
    sizes = [1]
    for site in trace.values():
        if site["type"] == "sample" and site.get("is_observed"):
            for frame in site["cond_indep_stack"]:
                plate = trace.get(frame.name)
                sizes.append(int(plate["args"][0]) if plate is not None else int(frame.size))
    return max(sizes)


# -- the reference --------------------------------------------------------------
def run_nuts(module, args, kwargs, num_warmup, num_samples):
    """NUTS draws of the compared sites, flattened, their summary, wall time and gradient evaluations."""
    import jax
    from numpyro.infer import MCMC, NUTS, init_to_value

    model = getattr(module, "reference_model", module.model)
    n = data_plate_size(model, args, kwargs)
    fields = ("num_steps", "diverging")
    init = getattr(module, "REFERENCE_INIT", None)
    kernel = NUTS(model) if init is None else NUTS(model, init_strategy=init_to_value(values=init))
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=NUM_CHAINS,
                chain_method="vectorized", progress_bar=False)
    start = time.perf_counter()
    mcmc.warmup(jax.random.PRNGKey(0), *args, extra_fields=fields, collect_warmup=True, **kwargs)
    warm = mcmc.get_extra_fields(group_by_chain=True)
    mcmc.run(mcmc.post_warmup_state.rng_key, *args, extra_fields=fields, **kwargs)
    samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    wall = time.perf_counter() - start
    extra = mcmc.get_extra_fields(group_by_chain=True)
    steps = int(np.sum(warm["num_steps"])) + int(np.sum(extra["num_steps"]))
    sites = tuple(getattr(module, "SITES", None) or sorted(samples))
    draws = flatten({k: np.asarray(v) for k, v in samples.items()}, sites)
    return {
        "sites": sites, "shapes": {s: list(np.shape(samples[s])[2:]) for s in sites}, "draws": draws,
        "table": summarise(draws), "wall_s": wall, "N": n, "leapfrog_steps": steps, "grad_evals": steps * n,
        "divergences": int(np.sum(extra["diverging"])),
    }


# -- the ppzoo runs --------------------------------------------------------------
def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def run_ppzoo(module, args, kwargs, method, sizes, expect=None):
    """One ``ppzoo.sample`` call: result (or error), wall time, ConvergenceWarnings raised."""
    import ppzoo
    from ppzoo.diagnostics.convergence import ConvergenceWarning

    options = dict(sizes)
    if method is not None:
        options["method"] = method
    error = idata = None
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            idata = ppzoo.sample(module.model, *args, **kwargs, seed=0, progress_bar=False, **options)
        except Exception as err:  # reported in the table, never ends the benchmark
            error = err
            if expect is None or expect not in str(err):
                traceback.print_exc()
    wall = time.perf_counter() - start
    warned = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    return idata, error, wall, warned


def compare(ref, idata, wall):
    """The per-run numbers of the module docstring, against the reference ``ref``."""
    from ppzoo.diagnostics import arviz_compat

    posterior = arviz_compat.get_group(idata, "posterior")
    missing = [s for s in ref["sites"] if s not in posterior.data_vars]
    if missing:
        raise KeyError(f"posterior lacks the compared sites {missing}")
    draws = {s: posterior[s].values for s in ref["sites"]}
    for s in ref["sites"]:
        if list(draws[s].shape[2:]) != ref["shapes"][s]:
            raise ValueError(f"site {s!r} has shape {list(draws[s].shape[2:])}, NUTS {ref['shapes'][s]}")
    table = summarise(flatten(draws, ref["sites"]))
    grads = float(np.asarray(arviz_compat.get_group(idata, "sample_stats")["grad_evals"].values)[:, -1].sum())
    ess = float(table["ess_bulk"].min())
    attrs = dict(posterior.attrs)
    return {
        **errors(table, ref["table"]),
        "max_r_hat": float(table["r_hat"].max()), "min_ess_bulk": ess, "grad_evals": grads,
        "ess_per_s": ess / wall, "ess_per_1k_grad": 1000 * ess / grads if grads > 0 else float("nan"),
        "ppzoo_method": attrs.get("method"), "thinning": attrs.get("thinning"),
    }


def errors(table, reference) -> dict:
    """Worst mean error (in reference sds and in MCSEs) and worst sd ratio of the summary ``table``
    against the summary ``reference``, over the scalars whose reference sd is positive."""
    rt = reference.loc[table.index]
    keep = np.isfinite(rt["sd"].to_numpy()) & (rt["sd"].to_numpy() > 0)
    err = (table["mean"] - rt["mean"]).abs()
    mean_err = (err / rt["sd"])[keep]
    ratio = (table["sd"] / rt["sd"])[keep]
    z = (err / np.sqrt(table["mcse_mean"] ** 2 + rt["mcse_mean"] ** 2))[keep]
    worst_ratio = ratio.iloc[int(np.nanargmax((ratio - 1).abs().to_numpy()))] if len(ratio) else float("nan")
    return {
        "worst_mean_error": float(mean_err.max()), "worst_mean_at": str(mean_err.idxmax()),
        "worst_sd_ratio": float(worst_ratio), "worst_sd_error": float((ratio - 1).abs().max()),
        "worst_sd_at": str((ratio - 1).abs().idxmax()), "worst_mean_mcse": float(z.max()),
        "num_scalars": int(keep.sum()),
    }


def within(row) -> bool:
    """The target: worst mean error at most 0.1 reference sd and every sd within 10%."""
    return row["worst_mean_error"] <= TARGET[0] and row["worst_sd_error"] <= TARGET[1]


def verdict(row) -> str:
    if "error" in row:
        return "error: " + row["error"]
    return "within" if within(row) else ("warned" if row["warned"] else "SILENT MISS")


# -- the table ---------------------------------------------------------------------
def _fmt(value, digits=3):
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def table_line(row) -> str:
    cells = [row["program"], row["method"], row.get("worst_mean_error"), row.get("worst_sd_ratio"),
             row.get("worst_mean_mcse"), row.get("max_r_hat"), row.get("ess_per_s"), row.get("ess_per_1k_grad"),
             row.get("wall_s"), row.get("warned"), row["verdict"]]
    return "| " + " | ".join(_fmt(c).replace("|", "\\|") for c in cells) + " |"


def table_header() -> str:
    return "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)


def headline(runs, programs_run):
    sampled = [p for p in programs_run if not p["expect_error"]]
    defaults = {r["program"]: r for r in runs if r["method"] == "default"}
    within = [p["program"] for p in sampled if defaults.get(p["program"], {}).get("verdict") == "within"]
    lines = [f"defaults within target (|Δmean| <= {TARGET[0]} sd, sd within {TARGET[1]:.0%}): "
             f"{len(within)} of {len(sampled)} programs"]
    for label in dict.fromkeys(r["method"] for r in runs):
        if label == "default":
            continue
        ok = sum(r["verdict"] == "within" for r in runs if r["method"] == label and not r["expect_error"])
        lines.append(f"{label} within target: {ok} of {len(sampled)} programs")
    silent = [f"{r['program']} ({r['method']})" for r in runs if r["verdict"] == "SILENT MISS"]
    lines.append(f"silent misses: {len(silent)}" + (": " + ", ".join(silent) if silent else ""))
    warned = [f"{r['program']} ({r['method']})" for r in runs if r["verdict"] == "warned"]
    lines.append(f"misses with a ConvergenceWarning: {len(warned)}" + (": " + ", ".join(warned) if warned else ""))
    errors = [f"{r['program']} ({r['method']}): {r['error']}" for r in runs
              if r["verdict"].startswith("error") and not r["expect_error"]]
    lines.append(f"errors: {len(errors)}" + ("".join("\n  - " + e for e in errors)))
    for p in programs_run:
        if p["expect_error"]:
            rs = [r for r in runs if r["program"] == p["program"]]
            ok = sum(r["verdict"] == "error as expected" for r in rs)
            lines.append(f"{p['program']}: refused as expected in {ok} of {len(rs)} runs")
    return lines


def markdown(report) -> str:
    s = report["settings"]
    lines = [
        "# Agreement with NUTS on programs written for NUTS",
        "",
        f"Reference: NumPyro NUTS, {s['num_chains']} chains, {s['nuts_warmup']} warmup + {s['nuts_samples']} draws each. "
        f"ppzoo: `ppzoo.sample(model, *args, **kwargs, seed=0)` with {s['ppzoo_sizes'] or 'its default sizes'}. "
        "Worst errors over every compared scalar; ESS is the smallest bulk ESS; gradient evaluations are "
        "per datum, warmup and set-up included (`python benchmarks/nuts_agreement.py`, module docstring).",
        "",
        "| program | idioms | N | scalars | NUTS wall s | NUTS divergences | NUTS max R-hat |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in report["programs"]:
        lines.append(f"| {p['program']} | {', '.join(p['idioms'])} | {_fmt(p.get('N'))} | {_fmt(p.get('num_scalars'))} | "
                     f"{_fmt(p.get('nuts_wall_s'))} | {_fmt(p.get('nuts_divergences'))} | {_fmt(p.get('nuts_max_r_hat'))} |")
    lines += ["", table_header()]
    lines += [table_line(r) for r in report["rows"]]
    lines += ["", "## Summary", ""] + [f"- {line}" for line in report["headline"]]
    lines += ["", json.dumps(s)]
    return "\n".join(lines) + "\n"


# -- the benchmark --------------------------------------------------------------------
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", nargs="+", default=None, help="program modules (default: all)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--nuts-warmup", type=int, default=1000)
    parser.add_argument("--nuts-samples", type=int, default=2000)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: NUTS 300/300, ppzoo num_warmup=300, num_samples=200")
    parser.add_argument("--out", default=str(RESULTS / "nuts_agreement"))
    opts = parser.parse_args(argv)

    import arviz
    import jax
    import numpyro

    import ppzoo

    warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor.*")
    programs = _programs()
    names = opts.programs or programs.names()
    unknown = sorted(set(names) - set(programs.names()))
    if unknown:
        parser.error(f"unknown programs {unknown}; there are {programs.names()}")
    nuts_warmup, nuts_samples, sizes = opts.nuts_warmup, opts.nuts_samples, {}
    if opts.quick:
        nuts_warmup, nuts_samples, sizes = 300, 300, {"num_warmup": 300, "num_samples": 200}

    rows, programs_run = [], []
    print(table_header(), flush=True)
    for name in names:
        module = programs.load(name)
        expect = getattr(module, "EXPECT_ERROR", None)
        args, kwargs = module.data()
        info = {"program": name, "description": module.DESCRIPTION, "idioms": list(module.IDIOMS),
                "expect_error": expect}
        programs_run.append(info)
        ref = None
        if expect is None:
            try:
                ref = run_nuts(module, args, kwargs, nuts_warmup, nuts_samples)
            except Exception as err:  # no reference: the program's ppzoo runs cannot be compared
                traceback.print_exc()
                info["nuts_error"] = _first_line(err)
            else:
                nuts_table = ref["table"]
                if hasattr(module, "exact_draws"):  # the reference is exact; NUTS is compared with it
                    exact = flatten(module.exact_draws(np.random.default_rng(0), NUM_CHAINS, EXACT_DRAWS), ref["sites"])
                    nuts_errors = errors(summarise(ref["draws"]), summarise(exact))
                    ref = {**ref, "draws": exact, "table": summarise(exact)}
                t = ref["table"]
                info.update({
                    "N": ref["N"], "sites": list(ref["sites"]), "num_scalars": len(t), "nuts_wall_s": ref["wall_s"],
                    "nuts_grad_evals": ref["grad_evals"], "nuts_leapfrog_steps": ref["leapfrog_steps"],
                    "nuts_divergences": ref["divergences"], "nuts_max_r_hat": float(t["r_hat"].max()),
                    "nuts_min_ess_bulk": float(t["ess_bulk"].min()),
                    "reference": {k: {"mean": float(v["mean"]), "sd": float(v["sd"]), "ess_bulk": float(v["ess_bulk"]),
                                      "r_hat": float(v["r_hat"])} for k, v in t.iterrows()},
                })
                ess = float(nuts_table["ess_bulk"].min())
                nuts_row = {
                    "program": name, "method": "nuts", "expect_error": None, "wall_s": ref["wall_s"],
                    "max_r_hat": float(nuts_table["r_hat"].max()), "min_ess_bulk": ess, "ess_per_s": ess / ref["wall_s"],
                    "ess_per_1k_grad": 1000 * ess / ref["grad_evals"], "grad_evals": ref["grad_evals"],
                    "verdict": f"reference ({ref['divergences']} divergent)",
                }
                if hasattr(module, "exact_draws"):
                    nuts_row.update(nuts_errors)
                    nuts_row["verdict"] = (f"{'within' if within(nuts_row) else 'outside'} vs exact draws "
                                           f"({ref['divergences']} divergent)")
                rows.append(nuts_row)
                print(table_line(nuts_row), flush=True)
        for label in opts.methods:
            row = {"program": name, "method": label, "expect_error": expect}
            idata, error, wall, warned = run_ppzoo(module, args, kwargs, METHODS[label], sizes, expect)
            row.update({"wall_s": wall, "warned": bool(warned), "warnings": [w[:300] for w in warned]})
            if expect is not None:
                if error is None:
                    row["verdict"] = "NOT REFUSED"
                else:
                    row["error"] = f"{type(error).__name__}: {error}"
                    row["verdict"] = "error as expected" if expect in str(error) else "wrong error: " + _first_line(error)
            elif error is not None:
                row["error"] = _first_line(error)
                row["error_full"] = f"{type(error).__name__}: {error}"
                row["verdict"] = verdict(row)
            elif ref is None:
                row["error"] = "no NUTS reference: " + info.get("nuts_error", "?")
                row["verdict"] = verdict(row)
            else:
                try:
                    row.update(compare(ref, idata, wall))
                except Exception as err:  # a result that cannot be compared is reported, not fatal
                    traceback.print_exc()
                    row["error"] = _first_line(err)
                row["verdict"] = verdict(row)
            rows.append(row)
            print(table_line(row), flush=True)

    report = {
        "settings": {
            "num_chains": NUM_CHAINS, "seed": 0, "nuts_warmup": nuts_warmup, "nuts_samples": nuts_samples,
            "nuts_chain_method": "vectorized", "ppzoo_sizes": sizes, "methods": opts.methods, "quick": opts.quick,
            "target": TARGET, "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "jax": jax.__version__, "numpyro": numpyro.__version__, "arviz": arviz.__version__,
            "ppzoo": getattr(ppzoo, "__version__", None), "jax_devices": [str(d) for d in jax.devices()],
        },
        "programs": programs_run,
        "rows": rows,
    }
    report["headline"] = headline([r for r in rows if r["method"] != "nuts"], programs_run)
    out = pathlib.Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(report, indent=1) + "\n"), (".md", markdown(report))):
        tmp = out.with_name(out.name + suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(out.with_name(out.name + suffix))
    print("\n".join(report["headline"]), flush=True)


if __name__ == "__main__":
    main()
