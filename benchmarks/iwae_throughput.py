"""IWAE training steps per second and memory of ``log p(x)``: ppzoo against hand-written loops on a small VAE.

The data are scikit-learn's bundled digits (1797 images of 8 x 8 pixels)
scaled to [0, 1] and binarised at 0.5. The VAE has one stochastic layer,
written four times with the same architecture and the same initial weights:
encoder 64 -> 100 -> 100 (tanh) -> location and softplus scale of a
10-dimensional Gaussian; decoder 10 -> 100 -> 100 (tanh) -> 64 Bernoulli
logits; prior N(0, I). Training: the IWAE bound with K = 50 particles, B = 100
data per step drawn uniformly with replacement, Adam with learning rate 1e-3.

Throughput, measured side by side in one run:

* Pyro backend: ``ppzoo.fit(..., objective="iwae")`` on a Pyro model and
  guide (``pyro.module`` around ``torch.nn`` modules) against a hand-written
  torch loop (the bound written out in torch, ``torch.optim.Adam``); ppzoo's
  steps run as one compiled graph after the first (``jit_compile=True``, the
  default), and for comparison also eagerly (``jit_compile=False``);
* NumPyro backend: ``ppzoo.fit`` on a NumPyro model and guide (the MLP weights
  are ``numpyro.param`` sites) against a hand-written JAX loop (the bound in
  ``jax.numpy``, ``optax.adam``), with its step under ``jax.jit`` and called
  from a Python loop (the usual way to write it; the headline reference), and
  also with all the steps in one ``jax.jit`` + ``lax.scan``.

Every runner is called once to warm up (compile), then ``--repeats`` rounds
call each in turn for ``--steps`` steps (interleaved, so that all see the same
machine load). A hand-written loop continues from its last state;
``ppzoo.fit`` starts from the initial weights and builds its programs (and
compiles its steps) inside every call. Two rates come out:

* steady state, the headline: timestamps at step boundaries (``fit``'s
  ``callback``; a mark per step in the torch loop; every 50 steps, after
  waiting for the device, in the JAX loop; the whole call for ``lax.scan``),
  and the median over all rounds of steps / seconds between consecutive
  marks, leaving out the first 50 steps of every ``fit`` (setup, the eager
  first step, compilation). On NumPyro ``fit`` reports in compiled blocks of
  50 steps, so its marks are 50 steps apart. A median over many short
  intervals is robust to the bursts of slowness of a shared machine, which
  move a total time by tens of percent;
* per call, ``steps / t`` of the fastest call (ppzoo's setup and compilation
  included).

The ratio is ppzoo / hand-written (target: at least 0.8 in the steady state).

Memory: the peak resident memory of ``ppzoo.log_marginal_likelihood`` on all
1797 digits with freshly initialised weights, K = ``--lml-samples`` (5000)
particles drawn ``chunk_size`` at a time, for each of ``--chunk-sizes``, and
K / 5 at the smallest chunk size, each in a fresh subprocess: the peak
resident memory during the call (Linux ``VmHWM``, reset just before it) minus
the resident memory after imports, model setup and a tiny warm-up call. It
should grow with the chunk size and not with K.

    python benchmarks/iwae_throughput.py [--steps 500] [--repeats 3] [--chunk-sizes 50 200 1000]

Writes ``benchmarks/results/iwae_throughput.json`` and ``.md`` (or into ``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import subprocess
import sys
import time

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
LATENT = 10
HIDDEN = 100
LEARNING_RATE = 1e-3
TARGET = 0.8


def load_digits_binarised():
    from sklearn.datasets import load_digits

    return (load_digits().data / 16.0 > 0.5).astype(np.float32)


def init_weights(num_pixels, seed=0):
    """``{"encoder.i.w": (in, out), "encoder.i.b": (out,), "decoder...."}``: torch's default ``nn.Linear`` init."""
    rng = np.random.default_rng(seed)
    sizes = {"encoder": [num_pixels, HIDDEN, HIDDEN, 2 * LATENT], "decoder": [LATENT, HIDDEN, HIDDEN, num_pixels]}
    weights = {}
    for net, dims in sizes.items():
        for i, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
            bound = 1 / math.sqrt(fan_in)
            weights[f"{net}.{i}.w"] = rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32)
            weights[f"{net}.{i}.b"] = rng.uniform(-bound, bound, fan_out).astype(np.float32)
    return weights


def timed(fns, repeats=3):
    """``{name: (seconds, results, all_seconds)}``: each of ``fns`` (name -> callable) run once to compile
    (and warm up), then ``repeats`` timed runs, the calls interleaved so that all see the same machine
    load; ``seconds`` is the fastest run, ``results`` what the timed runs returned."""
    for fn in fns.values():
        fn()
    seconds = {name: [] for name in fns}
    results = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            results[name].append(fn())
            seconds[name].append(time.perf_counter() - start)
    return {name: (min(seconds[name]), results[name], seconds[name]) for name in fns}


class Clock:
    """Timestamps at step boundaries: ``intervals`` are ``(steps, seconds)`` between consecutive marks."""

    def __init__(self):
        self.marks = [(0, time.perf_counter())]

    def mark(self, steps_done):
        self.marks.append((steps_done, time.perf_counter()))

    def intervals(self, skip_steps=0):
        return [(s1 - s0, t1 - t0) for (s0, t0), (s1, t1) in zip(self.marks[:-1], self.marks[1:]) if s0 >= skip_steps]


def median_rate(runs):
    """Steps per second in the steady state: the median over all timed runs' intervals of steps / seconds
    (robust to a slow burst on a shared machine, which a total time is not)."""
    rates = [n / sec for run in runs for n, sec in run["intervals"] if sec > 0]
    return float(np.median(rates)) if rates else None


# -- the four implementations ----------------------------------------------


def torch_nets(weights):
    """Encoder and decoder as ``torch.nn.Sequential`` with the given initial weights."""
    import torch

    def net(name):
        layers = []
        for i in range(3):
            w, b = weights[f"{name}.{i}.w"], weights[f"{name}.{i}.b"]
            linear = torch.nn.Linear(*w.shape)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(w.T))
                linear.bias.copy_(torch.from_numpy(b))
            layers += [linear, torch.nn.Tanh()]
        return torch.nn.Sequential(*layers[:-1])

    return net("encoder"), net("decoder")


def torch_encode(encoder, x):
    import torch

    h = encoder(x)
    return h[..., :LATENT], torch.nn.functional.softplus(h[..., LATENT:])


def pyro_programs(weights):
    """A Pyro model and guide; particles broadcast over a new leftmost dimension."""
    import pyro
    import pyro.distributions as dist

    encoder, decoder = torch_nets(weights)

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]) as idx:
            z = pyro.sample("z", dist.Normal(x.new_zeros(LATENT), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=x[idx])

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", x.shape[0]) as idx:
            loc, scale = torch_encode(encoder, x[idx])
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    return model, guide


def jax_mlp(params, net, h):
    import jax.numpy as jnp

    for i in range(3):
        h = h @ params[f"{net}.{i}.w"] + params[f"{net}.{i}.b"]
        if i < 2:
            h = jnp.tanh(h)
    return h


def jax_encode(params, x):
    import jax

    h = jax_mlp(params, "encoder", x)
    return h[..., :LATENT], jax.nn.softplus(h[..., LATENT:])


def numpyro_programs(weights):
    """A NumPyro model and guide; the MLP weights are ``numpyro.param`` sites."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def params_of(net):
        return {name: numpyro.param(name, value) for name, value in weights.items() if name.startswith(net)}

    def model(x):
        params = params_of("decoder")
        with numpyro.plate("data", x.shape[0]) as idx:
            z = numpyro.sample("z", dist.Normal(jnp.zeros(LATENT), 1.0).to_event(1))
            numpyro.sample("x", dist.Bernoulli(logits=jax_mlp(params, "decoder", z)).to_event(1), obs=x[idx])

    def guide(x):
        params = params_of("encoder")
        with numpyro.plate("data", x.shape[0]) as idx:
            loc, scale = jax_encode(params, x[idx])
            numpyro.sample("z", dist.Normal(loc, scale).to_event(1))

    return model, guide


#: steps of a ppzoo.fit call left out of its steady state: setup, the eager first step, compilation
SKIP_STEPS = 50


def ppzoo_fit(backend, x, weights, num_particles, batch_size, seed=0, jit_compile=True):
    """``run(num_steps)``: one ``ppzoo.fit`` call from the initial weights.

    Returns ``{"losses", "compiled_as", "intervals"}``; the intervals come from
    ``fit``'s callback: one per step on Pyro, one per compiled block of 50 on
    NumPyro (its callback runs when a block ends), the first
    :data:`SKIP_STEPS` steps left out.
    """
    import ppzoo

    def run(num_steps):
        # ppzoo's default optimiser: Adam with learning rate 1e-3 (LEARNING_RATE), as in the hand-written loops
        model, guide = (pyro_programs if backend == "pyro" else numpyro_programs)(weights)
        clock = Clock()
        block = 1 if backend == "pyro" else 50
        fit = ppzoo.fit(
            model, guide, x, objective="iwae", num_particles=num_particles, num_steps=num_steps,
            batch_size=batch_size, seed=seed, backend=backend, progress_bar=False, jit_compile=jit_compile,
            callback=lambda t, loss: clock.mark(t + 1) if (t + 1) % block == 0 else None,
        )
        assert fit.stop_reason is None and len(fit.losses) == num_steps, fit.stop_reason
        # short runs (a smoke test) keep their second half
        skip = min(SKIP_STEPS, num_steps // 2)
        return {"losses": fit.losses, "compiled_as": fit.compiled_as, "intervals": clock.intervals(skip)}

    return run


def torch_loop(x, weights, num_particles, batch_size, seed=0):
    """``run(num_steps)``: the hand-written torch IWAE loop, continuing from its last state."""
    import torch

    encoder, decoder = torch_nets(weights)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=LEARNING_RATE)
    xt = torch.from_numpy(x)
    n = x.shape[0]
    torch.manual_seed(seed)

    def loss_fn(xb):
        loc, scale = torch_encode(encoder, xb)
        eps = torch.randn((num_particles, *loc.shape))
        z = loc + scale * eps
        logits = decoder(z)
        log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
            logits, xb.expand_as(logits), reduction="none").sum(-1)
        # log N(z; 0, 1) - log N(z; loc, scale): the 2 pi constants cancel
        log_w = log_px - 0.5 * (z * z).sum(-1) + 0.5 * (eps * eps).sum(-1) + torch.log(scale).sum(-1)
        bound = n / xb.shape[0] * (torch.logsumexp(log_w, 0) - math.log(num_particles)).sum()
        return -bound

    def run(num_steps):
        losses, clock = [], Clock()
        for t in range(num_steps):
            idx = torch.randint(n, (batch_size,))
            loss = loss_fn(xt[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            clock.mark(t + 1)
        return {"losses": np.asarray(losses), "intervals": clock.intervals()}

    return run


def jax_loop(x, weights, num_particles, batch_size, seed=0, scan=False):
    """``run(num_steps)``: the hand-written JAX/optax IWAE loop, continuing from its last state.

    ``scan=False``: a ``jax.jit`` step called from a Python loop (losses kept on
    the device, fetched at the end); ``scan=True``: all steps in one
    ``jax.jit`` + ``lax.scan`` (recompiled for each new ``num_steps``).
    """
    import jax
    import jax.numpy as jnp
    import optax

    xj = jnp.asarray(x)
    n = x.shape[0]
    optimizer = optax.adam(LEARNING_RATE)

    def loss_fn(params, key, xb):
        loc, scale = jax_encode(params, xb)
        eps = jax.random.normal(key, (num_particles, *loc.shape))
        z = loc + scale * eps
        logits = jax_mlp(params, "decoder", z)
        log_px = (xb * logits - jnp.logaddexp(0.0, logits)).sum(-1)
        log_w = log_px - 0.5 * (z * z).sum(-1) + 0.5 * (eps * eps).sum(-1) + jnp.log(scale).sum(-1)
        bound = n / xb.shape[0] * (jax.nn.logsumexp(log_w, 0) - math.log(num_particles)).sum()
        return -bound

    def step(carry, _=None):
        params, opt_state, key = carry
        key, k_idx, k_eps = jax.random.split(key, 3)
        idx = jax.random.randint(k_idx, (batch_size,), 0, n)
        loss, grads = jax.value_and_grad(loss_fn)(params, k_eps, xj[idx])
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, key), loss

    params = {k: jnp.asarray(v) for k, v in weights.items()}
    state = [(params, optimizer.init(params), jax.random.PRNGKey(seed))]
    jit_step = jax.jit(step)
    jit_scan = jax.jit(lambda carry, num_steps: jax.lax.scan(step, carry, length=num_steps), static_argnums=1)

    def run(num_steps):
        carry, clock = state[0], Clock()
        if scan:
            carry, losses = jit_scan(carry, num_steps)
            losses.block_until_ready()
            clock.mark(num_steps)
        else:
            losses = []
            for t in range(num_steps):
                carry, loss = jit_step(carry)
                losses.append(loss)
                if (t + 1) % 50 == 0:  # wait for the device every 50 steps, as ppzoo's NumPyro blocks do
                    loss.block_until_ready()
                    clock.mark(t + 1)
            losses = jnp.stack(losses)
        state[0] = carry
        return {"losses": np.asarray(losses), "intervals": clock.intervals()}

    return run


# -- throughput ------------------------------------------------------------


def throughput(backends, x, weights, opts):
    k, b, steps = opts.num_particles, opts.batch_size, opts.steps
    rows = []
    for backend in backends:
        runners = {"ppzoo": ppzoo_fit(backend, x, weights, k, b)}
        if backend == "pyro":
            runners["ppzoo eager"] = ppzoo_fit(backend, x, weights, k, b, jit_compile=False)
            refs = {"hand-written torch loop (torch.optim.Adam)": torch_loop(x, weights, k, b)}
        else:
            refs = {"hand-written JAX loop (jit step, Python loop)": jax_loop(x, weights, k, b),
                    "hand-written JAX loop (jit + lax.scan over all steps)": jax_loop(x, weights, k, b, scan=True)}
        times = timed({name: lambda run=run: run(steps) for name, run in {**runners, **refs}.items()}, opts.repeats)
        runs = times["ppzoo"][1]
        steady, per_call = median_rate(runs), steps / times["ppzoo"][0]
        eager = median_rate(times["ppzoo eager"][1]) if "ppzoo eager" in runners else None
        last = min(steps, 50)
        for i, name in enumerate(refs):
            ref_steady, ref_per_call = median_rate(times[name][1]), steps / times[name][0]
            rows.append({
                "backend": backend, "reference": name, "headline": i == 0, "compiled_as": runs[0]["compiled_as"],
                "ppzoo_steps_per_s": steady, "ppzoo_per_call_steps_per_s": per_call,
                "ppzoo_eager_steps_per_s": eager,
                "reference_steps_per_s": ref_steady, "reference_per_call_steps_per_s": ref_per_call,
                "ratio": _ratio(steady, ref_steady), "ratio_per_call": per_call / ref_per_call,
                "ratio_eager": _ratio(eager, ref_steady), "target": TARGET,
                # mean loss over the last steps of the first `steps` steps from the initial weights:
                # a check that both fit the same bound (the values differ by the random draws only)
                "ppzoo_final_loss": float(np.mean(runs[0]["losses"][-last:])),
                "reference_final_loss": float(np.mean(times[name][1][0]["losses"][-last:])),
                "seconds_of_each_call": {n: times[n][2] for n in times if n in runners or n == name},
            })
            r = rows[-1]
            print(f"{backend}: ppzoo.fit {_fmt(steady, 1)} steps/s (steady; {r['compiled_as']}), {per_call:.1f} per call; "
                  f"{name} {_fmt(ref_steady, 1)} steps/s (steady), {ref_per_call:.1f} per call; "
                  f"ratio {_fmt(r['ratio'], 2)} (per call {r['ratio_per_call']:.2f})"
                  + (f"; eager ppzoo {_fmt(eager, 1)} steps/s, ratio {_fmt(r['ratio_eager'], 2)}" if "ppzoo eager" in runners
                     else ""),
                  flush=True)
    return rows


def _ratio(a, b):
    return None if a is None or b is None else a / b


def _fmt(value, digits):
    return "n/a" if value is None else f"{value:.{digits}f}"


# -- memory of log_marginal_likelihood ---------------------------------------


def _status_kib(field):
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process in KiB, from Linux's ``/proc``."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def _reset_peak():
    """Set the peak resident memory (``VmHWM``) to the current one; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def lml_child(backend, num_samples, chunk_size):
    """In a fresh process: peak memory of one ``log_marginal_likelihood`` call, printed as JSON.

    The peak is the process's ``VmHWM``, reset just before the call where the
    kernel allows it. ``ru_maxrss`` is not used: on Linux a child started by
    ``fork`` + ``exec`` inherits the parent's peak in it.
    """
    import ppzoo

    x = load_digits_binarised()
    weights = init_weights(x.shape[1])
    if backend == "pyro":
        model, guide = pyro_programs(weights)
        params = None  # the torch modules registered with pyro.module hold the weights
    else:
        model, guide = numpyro_programs(weights)
        params = weights

    def call(k, c):
        return ppzoo.log_marginal_likelihood(model, guide, params, x, num_samples=k, chunk_size=c, backend=backend)

    call(2, 2)  # lazy imports and kernels outside the measurement
    baseline = _status_kib("VmRSS")
    reset = _reset_peak()
    start = time.perf_counter()
    result = call(num_samples, chunk_size)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    print(json.dumps({"backend": backend, "num_samples": num_samples, "chunk_size": chunk_size,
                      "baseline_mib": baseline / 1024, "peak_mib": peak / 1024, "delta_mib": (peak - baseline) / 1024,
                      "peak_reset_before_call": reset, "seconds": seconds, "log_marginal_likelihood": result.total}))


def memory(backends, opts):
    rows = []
    small = opts.lml_compare_samples or max(1, opts.lml_samples // 5)
    cases = [(opts.lml_samples, c) for c in opts.chunk_sizes] + [(small, min(opts.chunk_sizes))]
    num_data, num_pixels = load_digits_binarised().shape
    for backend in backends:
        for k, c in cases:
            cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--lml-child", backend, str(k), str(c)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                raise RuntimeError(f"memory measurement {backend} K={k} chunk={c} failed:\n{out.stderr[-3000:]}")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            # float32 activations of one chunk: decoder hidden layers and logits over every datum and particle
            row["activations_mib"] = min(k, c) * num_data * (2 * HIDDEN + num_pixels) * 4 / 2**20
            rows.append(row)
            print(f"{backend}: log_marginal_likelihood K={k} chunk_size={c}: peak +{row['delta_mib']:.0f} MiB "
                  f"({row['seconds']:.1f} s, log p(x) = {row['log_marginal_likelihood']:.1f})", flush=True)
    return rows


# -- main ------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="timed training steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-particles", type=int, default=50, help="IWAE K")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lml-samples", type=int, default=5000, help="K of log_marginal_likelihood")
    parser.add_argument("--lml-compare-samples", type=int, default=None,
                        help="the smaller K run at the smallest chunk size (default: lml-samples / 5)")
    parser.add_argument("--chunk-sizes", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--backends", nargs="+", choices=("pyro", "numpyro"), default=["pyro", "numpyro"])
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--out", default=str(RESULTS), help="output directory")
    parser.add_argument("--lml-child", nargs=3, metavar=("BACKEND", "K", "CHUNK"), help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)

    if opts.lml_child:
        backend, k, c = opts.lml_child
        return lml_child(backend, int(k), int(c))

    load_before = os.getloadavg()
    x = load_digits_binarised()
    weights = init_weights(x.shape[1])
    start = time.perf_counter()
    rows = throughput(opts.backends, x, weights, opts)
    middle = time.perf_counter()
    mem = [] if opts.skip_memory else memory(opts.backends, opts)
    end = time.perf_counter()

    import jax
    import torch

    meta = {
        "data": "sklearn digits, /16, > 0.5", "num_data": int(x.shape[0]), "num_pixels": int(x.shape[1]),
        "latent": LATENT, "hidden": HIDDEN, "num_particles": opts.num_particles, "batch_size": opts.batch_size,
        "learning_rate": LEARNING_RATE, "steps": opts.steps, "repeats": opts.repeats,
        "lml_weights": "fresh initialisation (torch's nn.Linear default, same in both backends)",
        "machine": platform.machine(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "jax": jax.__version__, "jax_devices": [str(d) for d in jax.devices()],
        "torch": torch.__version__, "torch_num_threads": torch.get_num_threads(),
        # 1-minute load averages: other processes on the machine make every timing slower and noisier
        "load_average_before": load_before[0], "load_average_after": os.getloadavg()[0],
        "throughput_seconds": middle - start, "memory_seconds": end - middle,
    }
    out = pathlib.Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "iwae_throughput.json").write_text(json.dumps({"meta": meta, "throughput": rows, "memory": mem}, indent=1) + "\n")

    lines = [
        f"IWAE K={opts.num_particles}, B={opts.batch_size}, {opts.steps} steps per call, {opts.repeats} interleaved "
        "rounds; steady = median over all rounds of steps / seconds between step marks (ppzoo: fit's callback, "
        f"its first {SKIP_STEPS} steps left out); per call = steps / fastest call, ppzoo's setup and compilation "
        "included.",
        "",
        "| backend | ppzoo runs as | ppzoo steps/s (steady) | ppzoo steps/s (per call) | reference | reference steps/s "
        "(steady) | reference steps/s (per call) | ratio (steady) | ratio per call | ppzoo eager: steps/s, ratio | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        eager = "" if r["backend"] != "pyro" else (
            f"{_fmt(r['ppzoo_eager_steps_per_s'], 1)}, {_fmt(r['ratio_eager'], 2)}")
        lines.append(f"| {r['backend']} | {r['compiled_as']} | {_fmt(r['ppzoo_steps_per_s'], 1)} | "
                     f"{r['ppzoo_per_call_steps_per_s']:.1f} | {r['reference']} | {_fmt(r['reference_steps_per_s'], 1)} | "
                     f"{r['reference_per_call_steps_per_s']:.1f} | {_fmt(r['ratio'], 2)} | {r['ratio_per_call']:.2f} | "
                     f"{eager} | >= {r['target']} |")
    if mem:
        lines += [
            "",
            f"`log_marginal_likelihood` on all {x.shape[0]} digits, fresh weights: peak resident memory above the "
            "baseline (fresh process per row); activations = one chunk's float32 decoder activations.",
            "",
            "| backend | K | chunk_size | peak above baseline (MiB) | activations (MiB) | seconds | log p(x) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in mem:
            lines.append(f"| {r['backend']} | {r['num_samples']} | {r['chunk_size']} | {r['delta_mib']:.0f} | "
                         f"{r['activations_mib']:.0f} | {r['seconds']:.1f} | {r['log_marginal_likelihood']:.1f} |")
    (out / "iwae_throughput.md").write_text("\n".join(lines) + "\n\n" + json.dumps(meta) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
