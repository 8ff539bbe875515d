"""The full-data gradient pass against the device's memory bandwidth.

The gradient of Bayesian logistic regression on all N data (the pass SGLD-CV
makes at its centre, SVRG-LD at every snapshot and SARAH-LD at every
refresh) reads the design matrix once: ``N * d`` float32 values, plus the
``N`` labels. For each backend, ``Backend.full_grad`` of 4 chains (ppzoo sums
it over chunks of the data, ``FULL_DATA_CHUNK`` = 4,096, so its memory stays
bounded) is timed (median of ``--repeats`` after one untimed call) against a
plain one-shot ``jax.grad`` / ``torch.autograd`` of the same potential
on the whole array; the effective bandwidth is ``4 (N d + N) / time`` and its
fraction of ``--peak-gbs`` (default: the device's published figure where
known: H100 SXM 3,350 GB/s, H200 4,800 GB/s; on a CPU none is assumed).

    python benchmarks/full_gradient_bandwidth.py [--sizes 1000000] [--dim 100] [--device cuda]

Writes ``benchmarks/results/full_gradient_bandwidth.{json,md}`` (``--out PREFIX``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import time

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
#: published memory bandwidth, GB/s, by a word of the device's name
PEAK_GBS = {"H200": 4800.0, "H100": 3350.0, "A100": 2039.0}
NUM_CHAINS = 4


def numpyro_model(x, y=None):
    import numpyro
    import numpyro.distributions as dist

    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=x @ w), obs=y)


def pyro_model(x, y=None):
    import pyro
    import pyro.distributions as dist

    w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Bernoulli(logits=x @ w), obs=y)


def median_time(fn, sync, repeats):
    sync(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def device_name(backend, device):
    if backend == "pyro":
        import torch

        if str(device).startswith("cuda") and torch.cuda.is_available():
            return torch.cuda.get_device_name(torch.device(device))
        return platform.processor() or platform.machine()
    import jax

    dev = jax.devices()[0]
    return getattr(dev, "device_kind", str(dev))


def measure(backend, n, d, device, repeats):
    from ppzoo.backends import make_backend

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    theta = np.zeros((NUM_CHAINS, d), dtype=np.float32)
    if backend == "pyro":
        import torch

        dev = torch.device(device or "cpu")
        xs, ys = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
        oracle = make_backend(pyro_model, (xs,), {"y": ys}, device=dev)
        th = torch.from_numpy(theta).to(dev)

        def sync(out):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            return out

        def plain():
            w = th.clone().requires_grad_(True)
            logits = xs @ w.T  # (N, C)
            u = -(ys[:, None] * logits - torch.nn.functional.softplus(logits)).sum() + 0.5 * (w * w).sum()
            return torch.autograd.grad(u, w)[0]
    else:
        import jax
        import jax.numpy as jnp

        xs, ys = jnp.asarray(x), jnp.asarray(y)
        oracle = make_backend(numpyro_model, (xs,), {"y": ys}, device=device)
        th = jnp.asarray(theta)

        def sync(out):
            return jax.block_until_ready(out)

        @jax.jit
        def plain_grad(w):
            def u(w):
                logits = xs @ w.T
                return -(ys[:, None] * logits - jnp.logaddexp(0.0, logits)).sum() + 0.5 * (w * w).sum()

            return jax.grad(u)(w)

        def plain():
            return plain_grad(th)
    ours = median_time(lambda: oracle.full_grad(oracle.asarray(theta)), sync, repeats)
    theirs = median_time(plain, sync, repeats)
    bytes_read = 4.0 * (n * d + n)
    return {"backend": backend, "n": n, "d": d, "device": device_name(backend, device), "ppzoo_s": ours,
            "plain_s": theirs, "ppzoo_gbs": bytes_read / ours / 1e9, "plain_gbs": bytes_read / theirs / 1e9}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--backends", nargs="+", choices=("numpyro", "pyro"), default=["numpyro", "pyro"])
    parser.add_argument("--device", default=None, help="torch device for Pyro, JAX platform for NumPyro")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peak-gbs", type=float, default=None, help="the device's memory bandwidth, GB/s")
    parser.add_argument("--out", default=str(RESULTS / "full_gradient_bandwidth"))
    opts = parser.parse_args(argv)
    rows = []
    for backend in opts.backends:
        for n in opts.sizes:
            row = measure(backend, n, opts.dim, opts.device, opts.repeats)
            peak = opts.peak_gbs or next((v for k, v in PEAK_GBS.items() if k in row["device"]), None)
            row["peak_gbs"] = peak
            row["ppzoo_fraction"] = None if peak is None else row["ppzoo_gbs"] / peak
            row["plain_fraction"] = None if peak is None else row["plain_gbs"] / peak
            rows.append(row)
            frac = "" if peak is None else f" = {row['ppzoo_fraction']:.1%} of {peak:.0f} GB/s"
            print(f"{backend:8s} N = {n:>10,} d = {opts.dim} on {row['device']}: ppzoo {row['ppzoo_s'] * 1e3:.2f} ms "
                  f"({row['ppzoo_gbs']:.1f} GB/s{frac}), one-shot {row['plain_s'] * 1e3:.2f} ms "
                  f"({row['plain_gbs']:.1f} GB/s)", flush=True)
    out = pathlib.Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"num_chains": NUM_CHAINS, "rows": rows}, indent=1))
    lines = ["# Full-data gradient pass against memory bandwidth", "",
             f"{NUM_CHAINS} chains, logistic regression, bytes read = 4 (N d + N).", "",
             "| backend | N | d | device | ppzoo ms | ppzoo GB/s | of peak | one-shot ms | one-shot GB/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        frac = "n/a" if r["ppzoo_fraction"] is None else f"{r['ppzoo_fraction']:.1%}"
        lines.append(f"| {r['backend']} | {r['n']:,} | {r['d']} | {r['device']} | {r['ppzoo_s'] * 1e3:.2f} | "
                     f"{r['ppzoo_gbs']:.1f} | {frac} | {r['plain_s'] * 1e3:.2f} | {r['plain_gbs']:.1f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return rows


if __name__ == "__main__":
    main()
