"""What ``ppzoo.fit`` costs over the PPL's own SVI loop, on Pyro and NumPyro, for the same fit.

Bayesian logistic regression on the bundled breast-cancer data
(``ppzoo.data.load_breast_cancer()``: 569 rows, 30 standardised features),
``y_i ~ Bernoulli(logits = b0 + x_i w)``, ``b0 ~ N(0, 1)``, ``w ~ N(0, I)``,
written as users write it, ``x @ w``; on Pyro also written to broadcast over a
leftmost particle dimension, ``(x * w).sum(-1)``, which Pyro's own
``vectorize_particles=True`` can run. Guides: ``AutoNormal`` and
``AutoMultivariateNormal``; objectives: the ELBO with 1 and 10 particles,
IWAE with 5 (the PPL's own: ``RenyiELBO(alpha=0)``, the same bound with the
same reparameterised gradient). Adam with learning rate 1e-2 (the PPL's own
optimiser) for ``--steps`` steps, the same in both runners:

* ``ppzoo.fit(model, guide, x, y, objective=, num_particles=K, optimizer=,
  num_steps=T, progress_bar=False)``;
* the PPL's own loop: Pyro's ``SVI(model, guide, pyro.optim.Adam, loss).step``
  called ``T`` times (``Trace_ELBO`` / ``RenyiELBO`` with
  ``vectorize_particles=True``, or ``False`` where Pyro cannot run the program
  so, as for ``x @ w``: the table says which); NumPyro's ``SVI.run`` (its
  loop compiled whole).

Two times per run:

* ``call``: the whole call, from making the guide to the fitted parameters
  (ppzoo's includes its fixed work: finding the data plate, compiling its
  step, the end-of-fit convergence check);
* ``step``: the steady-state time per step, the loop alone: for ``ppzoo.fit``
  from its ``callback`` marks (after step 50 to the last; on NumPyro the fit
  reports in compiled blocks of 50 steps), for Pyro's loop from the same
  steps, for NumPyro from a ``jax.jit(svi.update)`` loop after a compiled
  warm-up of 50 steps.

A third, reference-only runner is torch itself: the same model and a
mean-field normal guide written by hand in torch (no Pyro: one ``randn``, the
log densities, ``backward``, ``torch.optim.Adam``), ELBO with one particle.
Its steady-state step is the floor under any Pyro program's step on this
machine, and says how much of the Pyro-over-NumPyro gap is torch's own.

Each runner is called once to warm up, then ``--repeats`` rounds call every
runner of a case in turn (interleaved, so all see the same machine load); min
and median are reported. Targets: ``ppzoo / own <= 1.1``, and Pyro's
``ppzoo.fit`` within 2x of NumPyro's on the same program and guide.

    python benchmarks/svi_overhead.py [--steps 500] [--repeats 3] [--quick]

Writes ``benchmarks/results/svi_overhead.json`` and ``.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time
import warnings

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
LEARNING_RATE = 1e-2
#: steps left out of the steady-state time (setup, the first eager step, compilation; one NumPyro block)
SKIP = 50
TARGET_RATIO = 1.1
TARGET_PYRO_OVER_NUMPYRO = 2.0
OBJECTIVES = {"elbo K=1": ("elbo", 1), "elbo K=10": ("elbo", 10), "iwae K=5": ("iwae", 5)}
GUIDES = ("AutoNormal", "AutoMultivariateNormal")


def pyro_programs():
    """``{name: model}``: ``x @ w`` as written, and the same model broadcasting over particles."""
    import pyro
    import pyro.distributions as dist

    def matmul(x, y):
        b0 = pyro.sample("b0", dist.Normal(0.0, 1.0))
        w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Bernoulli(logits=b0 + x @ w), obs=y)

    def broadcast(x, y):
        b0 = pyro.sample("b0", dist.Normal(0.0, 1.0))
        w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
        with pyro.plate("data", x.shape[0]):
            # w: (d,) alone, (K, 1, d) in a particle plate; the sum over the features keeps (K, N)
            pyro.sample("y", dist.Bernoulli(logits=b0 + (x * w).sum(-1)), obs=y)

    return {"x @ w": matmul, "(x * w).sum(-1)": broadcast}


def numpyro_programs():
    import numpyro
    import numpyro.distributions as dist

    def matmul(x, y):
        b0 = numpyro.sample("b0", dist.Normal(0.0, 1.0))
        w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("y", dist.Bernoulli(logits=b0 + x @ w), obs=y)

    return {"x @ w": matmul}


def guide_class(backend, name):
    if backend == "pyro":
        import pyro.infer.autoguide as autoguide
    else:
        import numpyro.infer.autoguide as autoguide
    return getattr(autoguide, name)


def adam(backend):
    if backend == "pyro":
        import pyro

        return pyro.optim.Adam({"lr": LEARNING_RATE})
    import numpyro

    return numpyro.optim.Adam(LEARNING_RATE)


def own_loss(backend, objective, num_particles, vectorize):
    """The PPL's own objective: ``Trace_ELBO`` or ``RenyiELBO(alpha=0)`` (the IWAE bound)."""
    if backend == "pyro":
        import pyro.infer as infer

        options = {
            "num_particles": num_particles,
            "vectorize_particles": vectorize,
            "max_plate_nesting": 1,
        }
    else:
        import numpyro.infer as infer

        options = {"num_particles": num_particles}
    if objective == "iwae":
        return infer.RenyiELBO(alpha=0.0, **options)
    return infer.Trace_ELBO(**options)


def steady_ms(marks, steps):
    """Milliseconds per step between the mark after step ``SKIP - 1`` and the last."""
    return 1e3 * (marks[steps - 1] - marks[SKIP - 1]) / (steps - SKIP)


def run_ppzoo(backend, model, guide_name, data, objective, num_particles, steps, seed):
    import ppzoo

    marks = {}
    start = time.perf_counter()
    guide = guide_class(backend, guide_name)(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short fit's convergence warning is not what is measured
        fit = ppzoo.fit(
            model,
            guide,
            *data,
            objective=objective,
            num_particles=num_particles,
            optimizer=adam(backend),
            num_steps=steps,
            progress_bar=False,
            seed=seed,
            callback=lambda t, loss: marks.__setitem__(t, time.perf_counter()),
        )
    call = time.perf_counter() - start
    way = None
    if backend == "pyro" and num_particles > 1:
        way = fit.objective._particle_ways.way_of((model, guide))
    return {
        "call_s": call,
        "step_ms": steady_ms(marks, steps),
        "final_loss": float(fit.losses[-1]),
        "compiled_as": fit.compiled_as,
        "particles": way,
    }


def torch_floor_ms(data, steps):
    """Steady-state ms per step of a hand-written torch ELBO loop (no Pyro) for this model and a
    mean-field normal guide, one particle, ``torch.optim.Adam``: the floor under a Pyro step."""
    import torch
    import torch.nn.functional as F

    x, y = data
    d = x.shape[1] + 1  # w and b0
    loc = torch.zeros(d, requires_grad=True)
    raw_scale = torch.full((d,), -2.0, requires_grad=True)
    optimizer = torch.optim.Adam([loc, raw_scale], lr=LEARNING_RATE)

    def step():
        scale = F.softplus(raw_scale)
        z = loc + scale * torch.randn(d)
        logits = z[0] + x @ z[1:]
        loglik = -F.binary_cross_entropy_with_logits(logits, y, reduction="sum")
        loss = -(loglik - 0.5 * (z**2).sum() + torch.log(scale).sum())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss)  # ppzoo and Pyro's loop read every step's loss too

    marks = {}
    for t in range(steps):
        step()
        marks[t] = time.perf_counter()
    return steady_ms(marks, steps)


def run_pyro_own(model, guide_name, data, objective, num_particles, steps, seed, vectorize):
    import pyro

    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    start = time.perf_counter()
    guide = guide_class("pyro", guide_name)(model)
    svi = pyro.infer.SVI(
        model, guide, adam("pyro"), own_loss("pyro", objective, num_particles, vectorize)
    )
    marks = {}
    for t in range(steps):
        loss = svi.step(*data)
        marks[t] = time.perf_counter()
    call = time.perf_counter() - start
    return {"call_s": call, "step_ms": steady_ms(marks, steps), "final_loss": float(loss)}


def run_numpyro_own(model, guide_name, data, objective, num_particles, steps, seed):
    import jax
    import numpyro

    start = time.perf_counter()
    guide = guide_class("numpyro", guide_name)(model)
    svi = numpyro.infer.SVI(
        model, guide, adam("numpyro"), own_loss("numpyro", objective, num_particles, True)
    )
    result = svi.run(jax.random.PRNGKey(seed), steps, *data, progress_bar=False)
    jax.block_until_ready(result.losses)
    call = time.perf_counter() - start
    update = jax.jit(svi.update)
    state = svi.init(jax.random.PRNGKey(seed), *data)
    for _ in range(SKIP):
        state, loss = update(state, *data)
    jax.block_until_ready(loss)
    begin = time.perf_counter()
    for _ in range(steps - SKIP):
        state, loss = update(state, *data)
    jax.block_until_ready(loss)
    step = 1e3 * (time.perf_counter() - begin) / (steps - SKIP)
    return {"call_s": call, "step_ms": step, "final_loss": float(result.losses[-1])}


def pyro_vectorizes(model, guide_name, data, objective, num_particles):
    """Whether Pyro's own ``vectorize_particles=True`` runs the program (one step on a throwaway store)."""
    import pyro

    if num_particles == 1:
        return False
    with pyro.get_param_store().scope():
        svi = pyro.infer.SVI(
            model,
            guide_class("pyro", guide_name)(model),
            adam("pyro"),
            own_loss("pyro", objective, num_particles, True),
        )
        try:
            svi.step(*data)
        except (RuntimeError, ValueError):
            return False
    return True


def cases(backends, guides, objectives):
    """``(backend, program name, model, guide name, objective label)`` of every case."""
    for backend in backends:
        programs = pyro_programs() if backend == "pyro" else numpyro_programs()
        for program, model in programs.items():
            for guide_name in guides:
                for label in objectives:
                    yield backend, program, model, guide_name, label


def data_for(backend):
    import ppzoo.data

    x, y = ppzoo.data.load_breast_cancer()
    if backend == "pyro":
        import torch

        return torch.as_tensor(x), torch.as_tensor(y)
    import jax.numpy as jnp

    return jnp.asarray(x), jnp.asarray(y)


def measure(backend, program, model, guide_name, label, steps, repeats, warmup):
    objective, num_particles = OBJECTIVES[label]
    data = data_for(backend)
    vectorize = (
        pyro_vectorizes(model, guide_name, data, objective, num_particles)
        if backend == "pyro"
        else True
    )
    runners = {
        "ppzoo": lambda seed: run_ppzoo(
            backend, model, guide_name, data, objective, num_particles, steps, seed
        ),
        "own": (
            lambda seed: run_pyro_own(
                model, guide_name, data, objective, num_particles, steps, seed, vectorize
            )
        )
        if backend == "pyro"
        else (
            lambda seed: run_numpyro_own(
                model, guide_name, data, objective, num_particles, steps, seed
            )
        ),
    }
    if warmup:
        for run in runners.values():
            run(0)
    runs = {name: [] for name in runners}
    for r in range(repeats):
        for name, run in runners.items():
            runs[name].append(run(r + 1))
    row = {
        "backend": backend,
        "program": program,
        "guide": guide_name,
        "objective": label,
        "own_vectorize_particles": bool(vectorize) if num_particles > 1 else None,
    }
    for name, results in runs.items():
        for key in ("call_s", "step_ms"):
            values = [res[key] for res in results]
            row[f"{name}_{key}"] = {
                "min": float(np.min(values)),
                "median": float(np.median(values)),
                "all": values,
            }
        row[f"{name}_final_loss"] = float(np.median([res["final_loss"] for res in results]))
    row["compiled_as"] = runs["ppzoo"][0]["compiled_as"]
    row["particles"] = runs["ppzoo"][0]["particles"]
    for key in ("call_s", "step_ms"):
        row[f"ratio_{key}"] = row[f"ppzoo_{key}"]["median"] / row[f"own_{key}"]["median"]
    return row


def cross_backend(rows):
    """Pyro's ``ppzoo.fit`` over NumPyro's, same program (``x @ w``), guide and objective (medians)."""
    out = []
    numpyro_rows = {(r["guide"], r["objective"]): r for r in rows if r["backend"] == "numpyro"}
    for r in rows:
        other = numpyro_rows.get((r["guide"], r["objective"]))
        if r["backend"] != "pyro" or r["program"] != "x @ w" or other is None:
            continue
        out.append(
            {
                "guide": r["guide"],
                "objective": r["objective"],
                "pyro_call_s": r["ppzoo_call_s"]["median"],
                "numpyro_call_s": other["ppzoo_call_s"]["median"],
                "call_ratio": r["ppzoo_call_s"]["median"] / other["ppzoo_call_s"]["median"],
                "pyro_step_ms": r["ppzoo_step_ms"]["median"],
                "numpyro_step_ms": other["ppzoo_step_ms"]["median"],
                "step_ratio": r["ppzoo_step_ms"]["median"] / other["ppzoo_step_ms"]["median"],
            }
        )
    return out


def _pair(stat, fmt):
    return f"{stat['min']:{fmt}} / {stat['median']:{fmt}}"


def markdown(rows, across, meta) -> str:
    lines = [
        "# ppzoo.fit against the PPL's own SVI loop",
        "",
        f"`python benchmarks/svi_overhead.py{meta['args']}` on {meta['machine']} ({meta['cpu_count']} cores; "
        f"load {meta['load_before']} before, {meta['load_after']} after); {meta['steps']} steps, Adam "
        f"{LEARNING_RATE}, {meta['repeats']} interleaved repeats (min / median). Logistic regression on the "
        "breast-cancer data (569 x 30). `call`: the whole call; `step`: steady-state ms per step, the loop alone. "
        f"Targets: ppzoo / own <= {TARGET_RATIO}; Pyro's ppzoo.fit within {TARGET_PYRO_OVER_NUMPYRO}x of NumPyro's.",
        "",
        "| backend | program | guide | objective | own loop | ppzoo call (s) | own call (s) | call ratio "
        "| ppzoo step (ms) | own step (ms) | step ratio | ppzoo particles / step |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["backend"] == "pyro":
            vec = r["own_vectorize_particles"]
            own = "SVI.step" + ("" if vec is None else f", vectorize_particles={vec}")
        else:
            own = "SVI.run"
        how = " / ".join(str(v) for v in (r["particles"] or "-", r["compiled_as"] or "-"))
        lines.append(
            f"| {r['backend']} | `{r['program']}` | {r['guide']} | {r['objective']} | {own} | "
            f"{_pair(r['ppzoo_call_s'], '.2f')} | {_pair(r['own_call_s'], '.2f')} | {r['ratio_call_s']:.2f} | "
            f"{_pair(r['ppzoo_step_ms'], '.2f')} | {_pair(r['own_step_ms'], '.2f')} | {r['ratio_step_ms']:.2f} | {how} |"
        )
    if across:
        lines += [
            "",
            "Pyro's ppzoo.fit over NumPyro's (`x @ w`, medians):",
            "",
            "| guide | objective | Pyro call (s) | NumPyro call (s) | call ratio | Pyro step (ms) | NumPyro step (ms) | step ratio |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for a in across:
            lines.append(
                f"| {a['guide']} | {a['objective']} | {a['pyro_call_s']:.2f} | {a['numpyro_call_s']:.2f} | "
                f"{a['call_ratio']:.2f} | {a['pyro_step_ms']:.2f} | {a['numpyro_step_ms']:.2f} | {a['step_ratio']:.2f} |"
            )
    floor = meta.get("torch_floor_step_ms")
    numpyro_elbo = [r for r in rows if r["backend"] == "numpyro" and r["guide"] == "AutoNormal"
                    and r["objective"] == "elbo K=1"]
    if floor and numpyro_elbo:
        numpyro_step = numpyro_elbo[0]["ppzoo_step_ms"]["median"]
        lines += [
            "",
            f"The floor under any Pyro step: a hand-written torch loop (no Pyro; mean-field normal guide, ELBO "
            f"K=1, torch.optim.Adam) takes {_pair(floor, '.3f')} ms per step, {floor['median'] / numpyro_step:.1f}x "
            f"NumPyro's ppzoo.fit step for AutoNormal with ELBO K=1 ({numpyro_step:.3f} ms).",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps",
        type=int,
        default=500,
        help="SVI steps per run: more than 50, a multiple of 50 (NumPyro's fits run in blocks of 50)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--backends", nargs="+", choices=("pyro", "numpyro"), default=["pyro", "numpyro"]
    )
    parser.add_argument("--guides", nargs="+", choices=GUIDES, default=list(GUIDES))
    parser.add_argument(
        "--objectives", nargs="+", choices=tuple(OBJECTIVES), default=list(OBJECTIVES)
    )
    parser.add_argument(
        "--no-warmup", action="store_true", help="leave out the untimed first call of each runner"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 100 steps, 1 repeat, AutoNormal, ELBO with 10 particles, no warm-up",
    )
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS / "svi_overhead")
    opts = parser.parse_args(argv)
    steps, repeats = (100, 1) if opts.quick else (opts.steps, opts.repeats)
    guides = ["AutoNormal"] if opts.quick else opts.guides
    objectives = ["elbo K=10"] if opts.quick else opts.objectives
    if steps <= SKIP:
        parser.error(f"--steps must be more than {SKIP}")
    load_before = [round(v, 2) for v in os.getloadavg()]
    rows = []
    for case in cases(opts.backends, guides, objectives):
        row = measure(
            *case, steps=steps, repeats=repeats, warmup=not (opts.quick or opts.no_warmup)
        )
        rows.append(row)
        print(
            json.dumps({k: (v["median"] if isinstance(v, dict) else v) for k, v in row.items()}),
            flush=True,
        )
    across = cross_backend(rows)
    floor = None
    if "pyro" in opts.backends:
        floor_runs = [torch_floor_ms(data_for("pyro"), steps) for _ in range(repeats + 1)][1:]
        floor = {"min": float(np.min(floor_runs)), "median": float(np.median(floor_runs)), "all": floor_runs}
        print(json.dumps({"torch_floor_step_ms": floor["median"]}), flush=True)
    import jax
    import numpyro
    import pyro
    import torch

    meta = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "steps": steps,
        "repeats": repeats,
        # 1-minute load averages: other processes on the machine make every timing slower and noisier
        "load_before": load_before,
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "args": "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        "torch_floor_step_ms": floor,
    }
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "rows": rows, "across": across}, indent=1) + "\n"
    )
    text = markdown(rows, across, meta)
    opts.out.with_suffix(".md").write_text(text)
    print(text)
    return rows


if __name__ == "__main__":
    main()
