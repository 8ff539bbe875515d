"""Every zoo entry, on both backends, with every sampler, against the entry's reference posterior.

For each entry of ``ppzoo.models.list_models()``, each backend and each
sampler method ``ppzoo.sample`` accepts, one run with the entry's
``sampler_defaults`` (only ``method`` replaced), 4 chains, seed 1 (the
settings ``tests/test_zoo.py`` uses; Pyro runs keep half the draws, as
there). Reported per run, over the quantities the entry is compared on
(its parameters, or its derived quantities when ``ModelSpec.derived`` is
set):

* mean error: ``max |mean - ref_mean| / ref_sd``, in reference posterior sds;
* sd ratio: the ``sd / ref_sd`` farthest from 1;
* ESS per 1,000 gradients: the smallest bulk ESS over the quantities per
  1,000 per-datum gradient evaluations (``sample_stats.grad_evals`` at the
  last draw, summed over chains: MAP search, adaptation, warmup and
  sampling included);
* the largest R-hat, the step size, divergent draws and wall time.

A run that raises is recorded with its error and the benchmark goes on.

    python benchmarks/zoo_accuracy.py [--models NAME ...] [--backends numpyro pyro]
                                      [--methods sgld ...] [--scale 1.0] [--quick]

Torch runs with one intra-op thread (``--torch-threads``), as the test
suite's workers do: on a busy two-core machine, probabilistic PCA's small
Cholesky factors ran ten times slower on two threads.

``--scale`` multiplies every entry's ``num_warmup`` and ``num_samples``
(``--quick``: eight schools, NumPyro, SGLD, scale 0.05: a few seconds).
Writes ``benchmarks/results/zoo_accuracy.{json,md}`` (``--out`` to change)
after every run; ``--resume`` keeps the rows already there and runs the rest.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import platform
import time
import traceback

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
BACKENDS = ("numpyro", "pyro")
NUM_CHAINS = 4
SEED = 1


def sampler_methods() -> list[str]:
    """The method names ``ppzoo.sample(method=...)`` accepts."""
    from ppzoo.inference.sgmcmc import SAMPLERS

    return sorted(SAMPLERS)


def settings_for(spec, backend: str, method: str, scale: float) -> dict:
    """The entry's sampler defaults with ``method`` replaced, warmup and draws scaled by ``scale``
    (at least 1 draw, warmup at least 0), and Pyro's draws halved as in ``tests/test_zoo.py``."""
    settings = dict(spec.sampler_defaults)
    settings["method"] = method
    settings["num_warmup"] = max(0, int(round(settings.get("num_warmup", 1000) * scale)))
    samples = settings.get("num_samples", 1000)
    if backend == "pyro":
        samples //= 2
    settings["num_samples"] = max(1, int(round(samples * scale)))
    return settings


def accuracy(spec, idata) -> dict:
    """Mean error, sd ratio, ESS and R-hat of ``idata`` on the entry's compared quantities."""
    summary = spec.summarize(idata)
    reference = spec.reference.params
    missing = sorted(set(reference) ^ set(summary.index))
    if missing:
        raise ValueError(f"the run and the reference name different quantities: {missing[:5]}")
    names = list(summary.index)
    ref_mean = np.array([reference[k]["mean"] for k in names])
    ref_sd = np.array([reference[k]["sd"] for k in names])
    z = np.abs(summary["mean"].to_numpy() - ref_mean) / ref_sd
    ratio = summary["sd"].to_numpy() / ref_sd
    ess = summary["ess_bulk"].to_numpy()
    stats = idata.sample_stats
    grad_evals = int(stats["grad_evals"].isel(draw=-1).sum())
    worst_ratio = int(np.nanargmax(np.abs(np.log(ratio))))
    return {
        "mean_error_sd": float(np.nanmax(z)),
        "worst_mean": names[int(np.nanargmax(z))],
        "sd_ratio": float(ratio[worst_ratio]),
        "worst_sd": names[worst_ratio],
        "min_ess_bulk": float(np.nanmin(ess)),
        "max_r_hat": float(np.nanmax(summary["r_hat"].to_numpy())),
        "grad_evals": grad_evals,
        "ess_per_1000_grads": float(np.nanmin(ess) / grad_evals * 1000) if grad_evals > 0 else math.nan,
        "step_size": float(stats["step_size"].isel(draw=-1).mean()),
        "divergent": int(stats["diverging"].sum()) if "diverging" in stats else 0,
    }


def run_one(spec, backend: str, method: str, scale: float) -> dict:
    import ppzoo

    args, kwargs = spec.load_data()
    settings = settings_for(spec, backend, method, scale)
    row = {"model": spec.name, "backend": backend, "method": method,
           "settings": {k: v for k, v in settings.items() if k != "inverse_mass"}}
    start = time.perf_counter()
    try:
        idata = ppzoo.sample(
            spec.model(backend), *args, **settings, num_chains=NUM_CHAINS, seed=SEED, backend=backend,
            log_likelihood=False, progress_bar=False, **kwargs,
        )
        row.update(accuracy(spec, idata))
    except Exception as err:  # a failed run is a result too
        row["error"] = f"{type(err).__name__}: {err}"
        row["traceback"] = traceback.format_exc(limit=3)
    row["seconds"] = time.perf_counter() - start
    return row


def run_all(names, backends, methods, scale, done=(), save=None) -> list[dict]:
    """One :func:`run_one` per entry, backend and method, each reported as it finishes.

    ``done``: rows of an earlier run (kept, and their runs skipped); ``save(rows)`` is
    called after every run, so an interrupted benchmark keeps what it measured.
    """
    import gc

    import jax

    from ppzoo import models

    rows = list(done)
    finished = {(r["model"], r["backend"], r["method"]) for r in rows}
    for i, name in enumerate(names):
        if i:  # the previous entry's compiled programs go, so memory stays bounded over the zoo
            jax.clear_caches()
            gc.collect()
        spec = models.get(name)
        for backend in backends:
            for method in methods:
                if (name, backend, method) in finished:
                    continue
                row = run_one(spec, backend, method, scale)
                rows.append(row)
                if save is not None:
                    save(rows)
                if "error" in row:
                    print(f"{name:24s} {backend:8s} {method:9s} failed ({row['seconds']:.0f} s): {row['error'][:120]}",
                          flush=True)
                else:
                    print(f"{name:24s} {backend:8s} {method:9s} mean error {row['mean_error_sd']:5.2f} sd, "
                          f"sd ratio {row['sd_ratio']:.2f}, min ESS {row['min_ess_bulk']:6.0f}, "
                          f"ESS/1000 grads {row['ess_per_1000_grads']:.3f}, R-hat {row['max_r_hat']:.3f}, "
                          f"{row['seconds']:.0f} s", flush=True)
    return rows


def _fmt(value, digits=2):
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def headline(rows) -> list[str]:
    """One line per method: runs within their entry's tolerance (``ModelSpec.tolerance``, the
    one ``tests/test_zoo.py`` applies), median worst mean error and median ESS per 1,000 gradients."""
    from ppzoo import models

    lines = []
    for method in sorted({r["method"] for r in rows}):
        group = [r for r in rows if r["method"] == method]
        ok = [r for r in group if "error" not in r]
        within = 0
        for r in ok:
            mean_tol, sd_tol = models.get(r["model"]).tolerance
            within += r["mean_error_sd"] < mean_tol and abs(r["sd_ratio"] - 1) < sd_tol
        errors = [r["mean_error_sd"] for r in ok]
        speed = [r["ess_per_1000_grads"] for r in ok]
        lines.append(
            f"- {method}: {within} of {len(group)} runs within their entry's tolerance; median worst mean error "
            f"{_fmt(float(np.median(errors)) if errors else None)} sd; median ESS per 1,000 gradients "
            f"{_fmt(float(np.median(speed)) if speed else None, 3)}"
            + (f"; {len(group) - len(ok)} failed" if len(ok) < len(group) else "")
        )
    return lines


def markdown(rows, meta) -> str:
    lines = headline(rows) + [
        "",
        "| entry | backend | method | mean error (sd) | sd ratio | min ESS | grad evals | ESS / 1000 grads | max R-hat | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['backend']} | {r['method']} | failed: {r['error'][:80]} | | | | | | "
                         f"{r['seconds']:.0f} |")
            continue
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['method']} | {_fmt(r['mean_error_sd'])} | {_fmt(r['sd_ratio'])} | "
            f"{r['min_ess_bulk']:.0f} | {r['grad_evals']:,} | {_fmt(r['ess_per_1000_grads'], 3)} | "
            f"{_fmt(r['max_r_hat'], 3)} | {r['seconds']:.0f} |"
        )
    lines += ["", "Per entry and backend, the best and the worst method by mean error:", "",
              "| entry | backend | best method (mean error, ESS / 1000 grads) | worst method (mean error, ESS / 1000 grads) |",
              "|---|---|---|---|"]
    for model, backend in sorted({(r["model"], r["backend"]) for r in rows}):
        group = [r for r in rows if r["model"] == model and r["backend"] == backend]
        ok = sorted((r for r in group if "error" not in r), key=lambda r: r["mean_error_sd"])
        failed = [r["method"] for r in group if "error" in r]
        if not ok:
            lines.append(f"| {model} | {backend} | every method failed | |")
            continue
        best, worst = ok[0], ok[-1]
        worst_text = (f"{worst['method']} ({_fmt(worst['mean_error_sd'])}, {_fmt(worst['ess_per_1000_grads'], 3)})"
                      + (f"; failed: {', '.join(failed)}" if failed else ""))
        lines.append(f"| {model} | {backend} | {best['method']} ({_fmt(best['mean_error_sd'])}, "
                     f"{_fmt(best['ess_per_1000_grads'], 3)}) | {worst_text} |")
    return "\n".join(lines) + "\n\n" + json.dumps(meta) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, help="zoo entries (default: all)")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--methods", nargs="+", default=None, help="sampler methods (default: all)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies num_warmup and num_samples")
    parser.add_argument("--quick", action="store_true", help="eight schools, NumPyro, SGLD, scale 0.05")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads (default 1: the zoo's models are small, and on a busy "
                             "machine thread synchronisation costs more than it saves)")
    parser.add_argument("--out", default=str(RESULTS / "zoo_accuracy"), help="result path without suffix")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows of OUT.json made at the same --scale and run only the missing ones")
    opts = parser.parse_args(argv)
    if opts.torch_threads < 1:
        parser.error(f"--torch-threads must be at least 1, got {opts.torch_threads}")
    if not (opts.scale > 0 and math.isfinite(opts.scale)):
        parser.error(f"--scale must be a positive number, got {opts.scale}")

    import torch

    from ppzoo import models

    names = opts.models or models.list_models()
    methods = opts.methods or sampler_methods()
    backends = opts.backends
    if opts.quick:
        names, backends, opts.scale = (opts.models or ["eight_schools"]), ["numpyro"], min(opts.scale, 0.05)
        methods = opts.methods or ["sgld"]
    for name in names:  # unknown names fail before any run
        try:
            models.get(name)
        except ValueError as err:
            parser.error(str(err))
    unknown = sorted(set(methods) - set(sampler_methods()))
    if unknown:
        parser.error(f"unknown methods {unknown}; known: {sampler_methods()}")

    import jax

    meta = {
        "num_chains": NUM_CHAINS, "seed": SEED, "scale": opts.scale, "pyro_draws": "half the entry's num_samples",
        "machine": platform.machine(), "processor": platform.processor(), "cpu_count": __import__("os").cpu_count(),
        "jax": jax.__version__, "torch": torch.__version__, "torch_threads": opts.torch_threads,
    }
    out = pathlib.Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = []
    if opts.resume and out.with_suffix(".json").exists():
        earlier = json.loads(out.with_suffix(".json").read_text())
        if earlier.get("meta", {}).get("scale") == opts.scale:
            done = [r for r in earlier["rows"] if r["model"] in names and r["backend"] in backends and r["method"] in methods]

    def save(rows):
        for suffix, text in ((".json", json.dumps({"meta": meta, "headline": headline(rows), "rows": rows}, indent=1) + "\n"),
                             (".md", markdown(rows, meta))):
            tmp = out.with_suffix(suffix + ".tmp")
            tmp.write_text(text)
            tmp.replace(out.with_suffix(suffix))

    threads = torch.get_num_threads()
    torch.set_num_threads(opts.torch_threads)
    try:
        rows = run_all(names, backends, methods, opts.scale, done=done, save=save)
    finally:
        torch.set_num_threads(threads)
    save(rows)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
