"""Variance-reduced Langevin against SGLD per unit of work, and SGLD-CV throughput against BlackJAX.

Bayesian logistic regression in the standard SG-MCMC setup: synthetic data,
N = 10^5, d = 10 and d = 100, B = m = ceil(sqrt(N)) = 317, 4 chains. Step
sizes are fractions of 1 / lambda_max (the largest Hessian eigenvalue at the
reference mean), from ``--step-fractions``; each method is reported at the
fraction that gives it the smallest final error (its best). The reference is
NumPyro NUTS on the same model. For each method, fraction and seed one run is
made with a budget of
``--epochs`` passes of per-datum gradients (setup, MAP search and warmup
included); the error of the draws made up to each checkpoint (after the
first 10% of the budget) is

* mean error: RMS over coordinates of (mean - ref_mean) / ref_sd,
* covariance error: ||cov - ref_cov||_F / ||ref_cov||_F,

plotted against epochs. With ``--start mode`` every chain instead starts at the reference
posterior mean (idealised: no burn-in, so the curves show the stationary
error alone; SGLD-CV still pays for its MAP search). ``--sarah-inner-loops``
tries several inner loops for SARAH-LD with every step fraction and keeps
its best. The summary reports, for SVRG-LD and SARAH-LD,
the fraction of SGLD's budget they need to reach SGLD's final error
(target: at most one third).

Throughput: steps per second of the ppzoo driver running SGLD-CV against
BlackJAX's ``sgld`` with its ``control_variates`` gradient estimator, under
``jit`` + ``lax.scan`` + ``vmap`` (target: at least 0.9x), the fastest of
five interleaved timed runs of each.

    python benchmarks/variance_reduction.py [--dims 10 100] [--epochs 60] [--seeds 0 1 2]

Writes ``benchmarks/results/variance_reduction.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import platform
import time

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
METHODS = ("sgld", "sgld-cv", "svrg-ld", "sarah-ld")
NUM_CHAINS = 4


def logistic_model(x, y=None):
    import numpyro
    import numpyro.distributions as dist

    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("data", x.shape[0], subsample_size=None) as idx:
        numpyro.sample("y", dist.Bernoulli(logits=x[idx] @ w), obs=None if y is None else y[idx])


def make_data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    w = rng.standard_normal(d) / np.sqrt(d) * 2
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ w)))).astype(np.float32)
    return x, y


def nuts_reference(x, y, num_samples=1000):
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(NUTS(logistic_model), num_warmup=500, num_samples=num_samples, num_chains=2,
                chain_method="vectorized", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), jnp.asarray(x), jnp.asarray(y))
    w = np.asarray(mcmc.get_samples()["w"], dtype=np.float64)
    return w.mean(0), np.cov(w, rowvar=False)


def cost_per_step(method, n, b, m):
    """Per-datum gradients per step; ``m`` is the inner loop of SVRG-LD and SARAH-LD."""
    return {"sgld": b, "sgld-cv": 2 * b}.get(method, (n + (m - 1) * 2 * b) / m)


def error_curve(draws, grad_evals, ref_mean, ref_cov, n, checkpoints):
    """Errors of the draws up to each checkpoint (in epochs), after a 10% burn-in."""
    ref_sd = np.sqrt(np.diag(ref_cov))
    epochs = grad_evals / n
    start = epochs[-1] * 0.1
    rows = []
    for c in checkpoints:
        keep = (epochs >= start) & (epochs <= c)
        if keep.sum() < 10:
            rows.append((c, math.nan, math.nan))
            continue
        w = draws[:, keep].reshape(-1, draws.shape[-1]).astype(np.float64)
        mean_err = float(np.sqrt(np.mean(((w.mean(0) - ref_mean) / ref_sd) ** 2)))
        cov_err = float(np.linalg.norm(np.cov(w, rowvar=False) - ref_cov) / np.linalg.norm(ref_cov))
        rows.append((c, mean_err, cov_err))
    return rows


def run_method(method, x, y, h, epochs, seed, inner_loop=None, start=None):
    """Draws ``(C, S, d)`` and cumulative per-datum gradients ``(S,)`` of one run of ``epochs`` passes.

    ``start``: ``None`` for ppzoo's default start (uniform in ``[-2, 2]``,
    ``ppzoo.sample``), or a point ``(d,)`` where every chain starts.
    """
    from ppzoo.inference import get_sampler, run_chains

    import ppzoo
    from ppzoo.backends import make_backend

    n = x.shape[0]
    b = math.ceil(math.sqrt(n))
    steps = int(epochs * n / cost_per_step(method, n, b, inner_loop or b))
    thinning = max(1, steps // 1000)
    extra = {"inner_loop": inner_loop} if inner_loop is not None else {}
    if start is None:
        idata = ppzoo.sample(logistic_model, x, y=y, method=method, step_size=h, num_warmup=0, **extra,
                             num_samples=steps // thinning, thinning=thinning, num_chains=NUM_CHAINS, seed=seed,
                             progress_bar=False, log_likelihood=False)
        return idata.posterior["w"].values, idata.sample_stats["grad_evals"].values[0]
    run = run_chains(get_sampler(method)(step_size=h, batch_size=b, **extra), make_backend(logistic_model, (x,), {"y": y}),
                     num_samples=steps // thinning, thinning=thinning, num_chains=NUM_CHAINS, seed=seed,
                     progress_bar=False, init_positions=np.repeat(np.asarray(start)[None], NUM_CHAINS, 0))
    return run.positions, run.stats["grad_evals"][0]


def _label(fraction, inner_loop=None):
    return f"h = {fraction}/lambda" + ("" if inner_loop is None else f", m = {inner_loop}")


def budget_to_reach(curve, target):
    for c, mean_err, cov_err in curve:
        if mean_err + cov_err <= target:
            return c
    return math.inf


def throughput_vs_blackjax_cv(x, y, steps=5000, repeats=5):
    import blackjax
    import jax
    import jax.numpy as jnp
    from ppzoo.inference import SGLDCV, run_chains

    from ppzoo.backends import make_backend

    n, d = x.shape
    b = math.ceil(math.sqrt(n))
    h = 1e-6
    backend = make_backend(logistic_model, (x,), {"y": y})
    kernel = SGLDCV(step_size=h, batch_size=b, map_steps=1)

    def ours():
        run_chains(kernel, backend, num_samples=steps, num_chains=NUM_CHAINS, progress_bar=False)

    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def logprior(w):
        return jax.scipy.stats.norm.logpdf(w).sum()

    def loglik(w, datum):
        xi, yi = datum
        logit = xi @ w
        return yi * logit - jnp.logaddexp(0.0, logit)

    estimator = blackjax.sgmcmc.gradients.grad_estimator(logprior, loglik, n)
    centre = jnp.zeros(d)
    cv = blackjax.sgmcmc.gradients.control_variates(estimator, centre, (xj, yj))
    sgld = blackjax.sgld(cv)

    @jax.jit
    def theirs_run(key):
        def one_step(w, key):
            k_idx, k_noise = jax.random.split(key)
            idx = jax.random.randint(k_idx, (b,), 0, n)
            new = sgld.step(k_noise, w, (xj[idx], yj[idx]), h)
            return new, new

        def chain(key):
            return jax.lax.scan(one_step, centre, jax.random.split(key, steps))[1]

        return jax.vmap(chain)(jax.random.split(key, NUM_CHAINS))

    def theirs():
        np.asarray(jax.block_until_ready(theirs_run(jax.random.PRNGKey(0))))

    times = {"ppzoo": math.inf, "blackjax": math.inf}
    ours(), theirs()  # compile
    for _ in range(repeats):  # interleaved, so that both see the same machine load; the fastest counts
        for name, fn in (("ppzoo", ours), ("blackjax", theirs)):
            start = time.perf_counter()
            fn()
            times[name] = min(times[name], time.perf_counter() - start)
    return {"repeats": repeats, "steps": steps, "ppzoo_steps_per_s": steps / times["ppzoo"],
            "blackjax_steps_per_s": steps / times["blackjax"], "ratio": times["blackjax"] / times["ppzoo"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-data", type=int, default=100_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--epochs", type=float, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--reference-samples", type=int, default=1000)
    parser.add_argument("--throughput-steps", type=int, default=5000)
    parser.add_argument("--step-fractions", type=float, nargs="+", default=[0.01, 0.05, 0.2])
    parser.add_argument("--start", choices=("random", "mode"), default="random",
                        help="random: ppzoo's default start, burn-in counted; mode: every chain starts at the "
                             "reference posterior mean (idealised: no burn-in, the stationary error alone)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="methods to compare (sgld is always run: it sets the target)")
    parser.add_argument("--sarah-inner-loops", type=int, nargs="+", default=None,
                        help="SARAH-LD inner loops m to try with every step fraction (default: ceil(sqrt(N)))")
    parser.add_argument("--out", default=str(RESULTS / "variance_reduction"))
    opts = parser.parse_args(argv)
    opts.methods = ["sgld"] + [m for m in opts.methods if m != "sgld"]
    if opts.sarah_inner_loops is None:
        opts.sarah_inner_loops = [math.ceil(math.sqrt(opts.num_data))]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ppzoo.inference.sgmcmc.step_size import largest_curvature

    from ppzoo.backends import make_backend

    checkpoints = np.linspace(opts.epochs / 5, opts.epochs, 9)
    report = {"settings": vars(opts), "dims": {}}
    fig, axes = plt.subplots(2, len(opts.dims), figsize=(5 * len(opts.dims), 7), squeeze=False)
    for col, d in enumerate(opts.dims):
        x, y = make_data(opts.num_data, d)
        start = time.perf_counter()
        ref_mean, ref_cov = nuts_reference(x, y, opts.reference_samples)
        print(f"d={d}: NUTS reference in {time.perf_counter() - start:.0f} s")
        start = ref_mean if opts.start == "mode" else None
        lam = float(largest_curvature(make_backend(logistic_model, (x,), {"y": y}), ref_mean[None])[0][0])
        curves, best_fraction, best_inner_loop, all_finals = {}, {}, {}, {}
        for method in opts.methods:
            candidates = {}
            loops = opts.sarah_inner_loops if method == "sarah-ld" else [None]
            for fraction in opts.step_fractions:
                for loop in loops:
                    per_seed = [
                        error_curve(*run_method(method, x, y, fraction / lam, opts.epochs, seed, loop, start),
                                    ref_mean, ref_cov, opts.num_data, checkpoints)
                        for seed in opts.seeds
                    ]
                    candidates[fraction, loop] = np.mean(np.array(per_seed), axis=0)
            key = min(candidates, key=lambda k: candidates[k][-1, 1] + candidates[k][-1, 2])
            curve, best_fraction[method] = candidates[key], key[0]
            if key[1] is not None:
                best_inner_loop[method] = key[1]
            curves[method] = [tuple(map(float, row)) for row in curve]
            finals = {_label(*k): round(float(c[-1, 1] + c[-1, 2]), 3) for k, c in candidates.items()}
            all_finals[method] = finals
            print(f"  {method:9s} {_label(*key)}: final mean error {curve[-1, 1]:.3f}  "
                  f"covariance error {curve[-1, 2]:.3f}  (final errors by setting: {finals})")
            axes[0, col].plot(curve[:, 0], curve[:, 1], marker="o", label=f"{method} ({_label(*key)})")
            axes[1, col].plot(curve[:, 0], curve[:, 2], marker="o", label=f"{method} ({_label(*key)})")
        sgld_final = curves["sgld"][-1][1] + curves["sgld"][-1][2]
        fractions = {m: budget_to_reach(curves[m], sgld_final) / opts.epochs for m in opts.methods if m != "sgld"}
        speed = throughput_vs_blackjax_cv(x, y, opts.throughput_steps)
        report["dims"][str(d)] = {"lambda_max": lam, "best_step_fraction": best_fraction,
                                  "best_inner_loop": best_inner_loop, "final_error_by_setting": all_finals,
                                  "curves": curves,
                                  "fraction_of_sgld_budget_to_reach_sgld_final_error": fractions,
                                  "sgld_cv_throughput_vs_blackjax": speed}
        print(f"  fraction of SGLD's budget to reach its final error: {fractions}")
        print(f"  SGLD-CV steps/s: ppzoo {speed['ppzoo_steps_per_s']:.0f}, BlackJAX {speed['blackjax_steps_per_s']:.0f}, ratio {speed['ratio']:.2f}")
        for row, label in ((0, "mean error (RMS, posterior sds)"), (1, "covariance error (relative Frobenius)")):
            axes[row, col].set_yscale("log")
            axes[row, col].set_xlabel("epochs of per-datum gradients")
            axes[row, col].set_ylabel(label)
            axes[row, col].set_title(f"logistic regression, N={opts.num_data:,}, d={d}")
            axes[row, col].legend()
    import jax

    report["meta"] = {"machine": platform.machine(), "cpu_count": __import__("os").cpu_count(),
                      "jax": jax.__version__, "devices": [str(dv) for dv in jax.devices()]}
    out = pathlib.Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=100)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["| d | method | best setting | final mean error | final covariance error | fraction of SGLD budget to reach SGLD's final error |",
             "|---|---|---|---|---|---|"]
    for d, entry in report["dims"].items():
        for m in opts.methods:
            _, me, ce = entry["curves"][m][-1]
            frac = entry["fraction_of_sgld_budget_to_reach_sgld_final_error"].get(m, 1.0)
            setting = _label(entry["best_step_fraction"][m], entry["best_inner_loop"].get(m))
            lines.append(f"| {d} | {m} | {setting} | {me:.3f} | {ce:.3f} | {frac:.2f} |")
        s = entry["sgld_cv_throughput_vs_blackjax"]
        lines.append(f"| {d} | SGLD-CV steps/s vs BlackJAX | | ppzoo {s['ppzoo_steps_per_s']:.0f} | BlackJAX {s['blackjax_steps_per_s']:.0f} | ratio {s['ratio']:.2f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
