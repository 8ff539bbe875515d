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
  torch loop (the bound written out in torch, ``torch.optim.Adam``);
* NumPyro backend: ``ppzoo.fit`` on a NumPyro model and guide (the MLP weights
  are ``numpyro.param`` sites) against a hand-written JAX loop (the bound in
  ``jax.numpy``, ``optax.adam``), with its step under ``jax.jit`` and called
  from a Python loop (the usual way to write it; the headline reference), and
  also with all the steps in one ``jax.jit`` + ``lax.scan``.

Every runner is called once to warm up (compile), then ``--repeats`` rounds
call each in turn (interleaved, so that all see the same machine load) and the
fastest call of each is kept. A hand-written loop runs ``--steps`` steps per
call, continuing from its last state. ``ppzoo.fit`` starts from the initial
weights and builds its programs (and, on NumPyro, compiles its block of steps)
inside every call, so it is timed two ways: per call (``fit(num_steps=steps)``,
setup and compilation included) and in the steady state,
``2 * steps / (t(3 * steps) - t(steps))`` (the fixed cost of a call cancels).
The headline ratio is the steady-state one, ppzoo / hand-written (target: at
least 0.8).

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
    """``{name: (seconds, result, all_seconds)}``: each of ``fns`` (name -> callable) run once to compile
    (and warm up), then the fastest of ``repeats`` timed runs, the calls interleaved so that all see the
    same machine load; ``result`` is what the first (warm-up) call returned."""
    results = {name: fn() for name, fn in fns.items()}
    seconds = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
    return {name: (min(seconds[name]), results[name], seconds[name]) for name in fns}


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


def ppzoo_fit(backend, x, weights, num_particles, batch_size, seed=0):
    """``run(num_steps)``: one ``ppzoo.fit`` call from the initial weights; returns its losses."""
    import ppzoo

    def run(num_steps):
        # ppzoo's default optimiser: Adam with learning rate 1e-3 (LEARNING_RATE), as in the hand-written loops
        model, guide = (pyro_programs if backend == "pyro" else numpyro_programs)(weights)
        fit = ppzoo.fit(
            model, guide, x, objective="iwae", num_particles=num_particles, num_steps=num_steps,
            batch_size=batch_size, seed=seed, backend=backend, progress_bar=False,
        )
        assert fit.stop_reason is None and len(fit.losses) == num_steps, fit.stop_reason
        return fit.losses

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
        losses = []
        for _ in range(num_steps):
            idx = torch.randint(n, (batch_size,))
            loss = loss_fn(xt[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return np.asarray(losses)

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
        carry = state[0]
        if scan:
            carry, losses = jit_scan(carry, num_steps)
        else:
            losses = []
            for _ in range(num_steps):
                carry, loss = jit_step(carry)
                losses.append(loss)
            losses = jnp.stack(losses)
        state[0] = carry
        return np.asarray(losses)

    return run


# -- throughput ------------------------------------------------------------


def throughput(backends, x, weights, opts):
    k, b, steps = opts.num_particles, opts.batch_size, opts.steps
    rows = []
    for backend in backends:
        fit = ppzoo_fit(backend, x, weights, k, b)
        if backend == "pyro":
            refs = {"hand-written torch loop (torch.optim.Adam)": torch_loop(x, weights, k, b)}
        else:
            refs = {"hand-written JAX loop (jit step, Python loop)": jax_loop(x, weights, k, b),
                    "hand-written JAX loop (jit + lax.scan over all steps)": jax_loop(x, weights, k, b, scan=True)}
        fns = {"ppzoo": lambda fit=fit: fit(steps), "ppzoo x3": lambda fit=fit: fit(3 * steps)}
        fns.update({name: lambda run=run: run(steps) for name, run in refs.items()})
        times = timed(fns, opts.repeats)
        t_call, losses, _ = times["ppzoo"]
        extra = times["ppzoo x3"][0] - t_call
        steady = 2 * steps / extra if extra > 0 else None  # None: lost in the noise (too few steps)
        last = min(steps, 50)
        for i, name in enumerate(refs):
            t_ref, ref_losses, _ = times[name]
            ref = steps / t_ref
            rows.append({
                "backend": backend, "reference": name, "headline": i == 0,
                "ppzoo_steps_per_s": steady, "ppzoo_per_call_steps_per_s": steps / t_call, "ppzoo_per_call_s": t_call,
                "ppzoo_x3_per_call_s": times["ppzoo x3"][0], "reference_steps_per_s": ref,
                "ratio": steady and steady / ref, "ratio_per_call": steps / t_call / ref, "target": TARGET,
                # mean loss over the last steps of the first `steps` steps from the initial weights:
                # a check that both fit the same bound (the values differ by the random draws only)
                "ppzoo_final_loss": float(np.mean(losses[-last:])),
                "reference_final_loss": float(np.mean(ref_losses[-last:])),
                "seconds_of_each_call": {n: times[n][2] for n in ("ppzoo", "ppzoo x3", name)},
            })
            r = rows[-1]
            print(f"{backend}: ppzoo.fit {_fmt(steady, 1)} steps/s (steady), {steps / t_call:.1f} steps/s per call; "
                  f"{name} {ref:.1f} steps/s; ratio {_fmt(r['ratio'], 2)} (per call {r['ratio_per_call']:.2f})",
                  flush=True)
    return rows


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
        f"IWAE K={opts.num_particles}, B={opts.batch_size}, {opts.steps} timed steps, best of {opts.repeats}; "
        "ppzoo steady state = 2 steps / (t(3 steps) - t(steps)); per call includes setup and compilation.",
        "",
        "| backend | ppzoo steps/s (steady) | ppzoo steps/s (per call) | reference | reference steps/s | ratio | ratio per call | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['backend']} | {_fmt(r['ppzoo_steps_per_s'], 1)} | {r['ppzoo_per_call_steps_per_s']:.1f} | "
                     f"{r['reference']} | {r['reference_steps_per_s']:.1f} | {_fmt(r['ratio'], 2)} | "
                     f"{r['ratio_per_call']:.2f} | >= {r['target']} |")
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
