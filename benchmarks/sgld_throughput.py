"""SGLD steps per second: ppzoo against hand-written loops on the same model.

Synthetic Bayesian logistic regression, N = 10^5, d = 10 and d = 100,
B = ceil(sqrt(N)) = 317, 4 chains, 10,000 steps, every step kept:

* NumPyro backend: the ppzoo driver (``run_chains``, the code path of
  ``ppzoo.sample``) against BlackJAX's ``sgld`` kernel with a hand-written
  log density, under ``jax.jit`` + ``lax.scan`` + ``vmap`` over chains;
* Pyro backend: the ppzoo driver against a hand-written torch loop
  (chain-batched potential, autograd gradient, the same update).

Each is run once to compile, then ``--repeats`` timed runs of ppzoo and of
the hand-written loop alternate and the fastest of each counts; the ratio is
hand-written time / ppzoo time (higher is better for ppzoo).

    python benchmarks/sgld_throughput.py [--steps 10000] [--dims 10 100] [--device cpu]

Writes ``benchmarks/results/sgld_throughput.json`` and ``.md``.
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
NUM_CHAINS = 4
STEP_SIZE = 1e-5


def make_data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    w = rng.standard_normal(d) / np.sqrt(d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ w)))).astype(np.float32)
    return x, y


def side_by_side(ours, reference, repeats):
    """Seconds of the fastest of ``repeats`` timed runs of each, after one run each to compile and warm
    up; the two are interleaved so that both see the same machine load."""
    ours(), reference()
    best = [math.inf, math.inf]
    for _ in range(repeats):
        for k, fn in enumerate((ours, reference)):
            start = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def ppzoo_driver(model, x, y, steps, batch_size, backend, device=None):
    from ppzoo.inference import SGLD, run_chains

    from ppzoo.backends import make_backend

    oracle = make_backend(model, (x,), {"y": y}, backend=backend, device=device)
    kernel = SGLD(step_size=STEP_SIZE, batch_size=batch_size)

    def go():
        run = run_chains(kernel, oracle, num_samples=steps, num_chains=NUM_CHAINS, progress_bar=False)
        assert np.isfinite(run.positions).all()

    return go


def blackjax_loop(x, y, steps, batch_size):
    import blackjax
    import jax
    import jax.numpy as jnp

    xj, yj = jnp.asarray(x), jnp.asarray(y)
    n, d = x.shape

    def logprior(p):
        return jax.scipy.stats.norm.logpdf(p["w"]).sum() + jax.scipy.stats.norm.logpdf(p["b"])

    def loglik(p, datum):
        xi, yi = datum
        logit = xi @ p["w"] + p["b"]
        return yi * logit - jnp.logaddexp(0.0, logit)

    sgld = blackjax.sgld(blackjax.sgmcmc.gradients.grad_estimator(logprior, loglik, n))

    @jax.jit
    def run(key, position):
        def one_step(position, key):
            k_idx, k_noise = jax.random.split(key)
            idx = jax.random.randint(k_idx, (batch_size,), 0, n)
            new = sgld.step(k_noise, position, (xj[idx], yj[idx]), STEP_SIZE)
            return new, new

        def chain(key, position):
            return jax.lax.scan(one_step, position, jax.random.split(key, steps))[1]

        return jax.vmap(chain)(jax.random.split(key, NUM_CHAINS), position)

    position = {"w": jnp.zeros((NUM_CHAINS, d)), "b": jnp.zeros(NUM_CHAINS)}

    def go():
        out = run(jax.random.PRNGKey(0), position)
        jax.block_until_ready(out)
        np.asarray(out["w"])  # bring the draws to the host, as ppzoo does

    return go


def torch_loop(x, y, steps, batch_size, device=None):
    import torch

    device = torch.device(device or "cpu")
    xt, yt = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)
    n, d = x.shape
    gen = torch.Generator(device=device).manual_seed(0)

    def potential(theta, idx):
        b, w = theta[:, 0], theta[:, 1:]
        logits = torch.einsum("cbd,cd->cb", xt[idx], w) + b[:, None]
        loglik = -torch.nn.functional.binary_cross_entropy_with_logits(logits, yt[idx], reduction="none").sum(1)
        return 0.5 * (theta**2).sum(1) - n / idx.shape[1] * loglik

    def go():
        theta = torch.zeros(NUM_CHAINS, d + 1, device=device)
        draws = []
        for _ in range(steps):
            idx = torch.randint(n, (NUM_CHAINS, batch_size), generator=gen, device=device)
            noise = torch.randn(theta.shape, generator=gen, device=device)
            theta.requires_grad_(True)
            (grad,) = torch.autograd.grad(potential(theta, idx).sum(), theta)
            with torch.no_grad():
                theta = theta - STEP_SIZE * grad + math.sqrt(2 * STEP_SIZE) * noise
            draws.append(theta.detach())
        torch.stack(draws).cpu().numpy()

    return go


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--num-data", type=int, default=100_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--device", default=None, help="torch device for the Pyro rows (JAX uses its default)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each; the fastest counts")
    parser.add_argument("--skip-pyro", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "sgld_throughput"), help="result path without suffix")
    opts = parser.parse_args(argv)

    from ppzoo.models import logistic_regression as lr

    batch_size = math.ceil(math.sqrt(opts.num_data))
    rows = []
    for d in opts.dims:
        x, y = make_data(opts.num_data, d)
        t_ours, t_ref = side_by_side(ppzoo_driver(lr.numpyro_model, x, y, opts.steps, batch_size, "numpyro"),
                                     blackjax_loop(x, y, opts.steps, batch_size), opts.repeats)
        rows.append({"backend": "numpyro", "reference": "blackjax.sgld (jit + scan + vmap)", "d": d,
                     "ppzoo_steps_per_s": opts.steps / t_ours, "reference_steps_per_s": opts.steps / t_ref,
                     "ratio": t_ref / t_ours, "target": 0.9})
        print(rows[-1])
        if not opts.skip_pyro:
            t_ours, t_ref = side_by_side(ppzoo_driver(lr.pyro_model, x, y, opts.steps, batch_size, "pyro", opts.device),
                                         torch_loop(x, y, opts.steps, batch_size, opts.device), opts.repeats)
            rows.append({"backend": "pyro", "reference": "hand-written torch loop (autograd)", "d": d,
                         "ppzoo_steps_per_s": opts.steps / t_ours, "reference_steps_per_s": opts.steps / t_ref,
                         "ratio": t_ref / t_ours, "target": 0.8})
            print(rows[-1])

    import jax
    import torch

    meta = {
        "num_data": opts.num_data, "batch_size": batch_size, "num_chains": NUM_CHAINS, "steps": opts.steps,
        "repeats": opts.repeats,
        "machine": platform.machine(), "processor": platform.processor(), "cpu_count": __import__("os").cpu_count(),
        "jax": jax.__version__, "jax_devices": [str(dv) for dv in jax.devices()], "torch": torch.__version__,
        "torch_device": opts.device or "cpu",
    }
    out = pathlib.Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    lines = ["| backend | d | ppzoo steps/s | reference | reference steps/s | ratio | target |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['d']} | {r['ppzoo_steps_per_s']:.0f} | {r['reference']} | "
                     f"{r['reference_steps_per_s']:.0f} | {r['ratio']:.2f} | >= {r['target']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n\n" + json.dumps(meta) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
