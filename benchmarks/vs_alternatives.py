"""Time to an accurate posterior: ppzoo's samplers against NUTS, HMCECS and hand-written BlackJAX loops.

Bayesian logistic regression as users write it for NUTS (``w ~ Normal(0, 1)``,
``y ~ Bernoulli(logits=x @ w)`` in ``plate("data", N)``), correlated features
(rows ``x_i ~ N(0, S)``, ``S_jk = rho^|j-k|``, ``rho = 0.5``), d = 20 and
d = 100, N = 10^4, 10^5, 10^6, float32 as each library defaults to.

**Reference.** The Laplace (Gaussian) limit: the mode by Newton's method in
float64 and the covariance ``H^-1`` (``H`` the Hessian of ``U = -log p`` there).
Where ``N <= --nuts-reference-max`` it is checked against a long NumPyro NUTS
run (dense mass matrix, 4 chains x ``--reference-draws`` after 1000 warmup),
and that run is the reference instead; the gap between the two (worst
``|mean gap| / sd`` and ``|sd ratio - 1|``) is reported. The gap shrinks as
``1 / sqrt(N)`` (Bernstein-von Mises), so the one measured at the largest N
checked bounds the Laplace reference's error above it.

**Methods**, each with 4 chains:

* ``ppzoo <method> (<backend>)``: ``ppzoo.sample(model, x, y=y, method=...)`` with
  its defaults (1000 warmup steps with adaptation, ``--draws`` draws, automatic
  thinning, step size, batch size and preconditioner of its choosing) for
  SGLD-CV, SVRG-LD and SARAH-LD on the NumPyro and Pyro programs.
* ``NUTS``: NumPyro's NUTS on all the data, its defaults (diagonal mass
  matrix, target acceptance 0.8), 1000 warmup, ``--draws`` draws, chains
  vectorised.
* ``HMCECS``: NumPyro's energy-conserving subsampling HMC with NUTS inside,
  ``--hmcecs-subsample`` data per estimate (1,000, as NumPyro's own example),
  100 blocks, the second-order Taylor proxy at a MAP found as NumPyro's
  example does (SVI with ``AutoDelta`` on the subsampled program, Adam
  1e-3, 5,000 steps; counted), 1000 warmup, ``--draws`` draws.
* With ``--mcmc-budget S``, NUTS and HMCECS run as the same NumPyro kernels
  (``kernel.init`` then a jitted ``kernel.sample``), stepped one iteration at a
  time (HMCECS's chains in turn) and stopped after S seconds. A run stopped
  before it reaches the target is reported as more than S seconds. Where the
  target needs an hour of NUTS, this gives a lower bound on its time to the
  target instead of a run too long to make.
* ``BlackJAX sgld`` and ``BlackJAX sghmc``: hand-written ``jit`` + ``lax.scan``
  + ``vmap`` loops over ``blackjax.sgld`` / ``blackjax.sghmc`` (10 integration
  steps, ``alpha = 0.01``) with BlackJAX's control-variates gradient
  estimator, batch ``ceil(sqrt(N))``, centred at the reference mode, chains
  started there, step size ``0.1 / lambda_max(H)`` (SGLD, ``w + h grad log p + sqrt(2h) xi``) and
  ``0.1 / sqrt(lambda_max(H))`` (SGHMC's time step; its update uses the gradient before the move,
  an explicit Euler step, which grows by ``sqrt(1 + eps^2 lambda)`` per step). These choices are given
  for free (a user finds them by trial). The loop runs for three times ppzoo's
  best time to target (at least 30 s, at most ``--budget``), and the estimate at
  each time uses the second half of its draws so far.

**Measured**, per method, at checkpoints through the run (ppzoo: after each
block of draws; NUTS and HMCECS: per draw, with the sampling time spread over
draws in proportion to their leapfrog steps; BlackJAX: per block): the draws
so far (all chains) give each coordinate's mean ``m`` and sd ``s``;

* worst error ``max(max_j |m_j - m_ref,j| / s_ref,j, max_j |s_j / s_ref,j - 1|)``;
* time to target: wall time (from the call, data already in memory) at the
  first checkpoint from which every later one has every mean within 0.1 sd
  and every sd within 10% (``not reached`` otherwise), with compilation
  (JAX's trace, lowering and compile events; ppzoo's torch graph
  compilation) and without it;
* per-datum gradient evaluations to target, counted from each sampler's own
  record: ppzoo ``sample_stats.grad_evals``; NUTS ``N x num_steps``; HMCECS
  ``m x num_steps`` per iteration, ``m (1 + d)`` per subsample refresh (its
  Taylor terms), ``N (1 + d)`` for the proxy's full-data gradient and Hessian
  and ``m`` per SVI step; BlackJAX ``2 B`` per SGLD step, ``20 B`` per SGHMC
  step, ``N`` for the centre's full gradient;
* bulk ESS per second: ArviZ's smallest bulk ESS over coordinates of all the
  draws kept, over the run's wall time without compilation.

    python benchmarks/vs_alternatives.py [--dims 20 100] [--sizes 10000 100000 1000000]
        [--methods ...] [--draws 1000] [--budget 600] [--mcmc-budget S] [--append] [--quick]

Writes ``benchmarks/results/vs_alternatives.{json,md,png}`` (``--out PREFIX``)
and prints each row as it goes; everything runs side by side in one process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import pathlib
import platform
import shlex
import sys
import time
import traceback
import warnings

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NUM_CHAINS = 4
NUM_WARMUP = 1000
RHO = 0.5
#: a mean within TARGET[0] reference sds, an sd within TARGET[1] of the reference's
TARGET = (0.1, 0.1)
CURVE_POINTS = 200  # checkpoints stored per method and case (the JSON holds every case's curves)
PPZOO_METHODS = ("sgld-cv", "svrg-ld", "sarah-ld")
METHODS = tuple(f"ppzoo {m} ({b})" for b in ("numpyro", "pyro") for m in PPZOO_METHODS) + (
    "NUTS", "HMCECS", "BlackJAX sgld", "BlackJAX sghmc")
SVI_STEPS = 5000


# -- the programs, as users write them --------------------------------------------
def numpyro_model(x, y=None):
    import numpyro
    import numpyro.distributions as dist

    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=x @ w), obs=y)


def numpyro_subsampled_model(x, y=None, subsample_size=1000):
    import numpyro
    import numpyro.distributions as dist

    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("data", x.shape[0], subsample_size=subsample_size) as idx:
        numpyro.sample("y", dist.Bernoulli(logits=x[idx] @ w), obs=None if y is None else y[idx])


def pyro_model(x, y=None):
    import pyro
    import pyro.distributions as dist

    w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Bernoulli(logits=x @ w), obs=y)


def make_data(n, d, seed=0):
    """``x`` ``(n, d)`` float32 with AR(1)-correlated columns, ``y`` ``(n,)`` in {0, 1}."""
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(RHO ** np.abs(np.subtract.outer(np.arange(d), np.arange(d))))
    w = rng.standard_normal(d) / np.sqrt(d)
    x = np.empty((n, d), dtype=np.float32)
    y = np.empty(n, dtype=np.float32)
    for start in range(0, n, 100_000):  # in slices, so float64 temporaries stay small at N = 10^6
        stop = min(n, start + 100_000)
        rows = rng.standard_normal((stop - start, d)) @ chol.T
        x[start:stop] = rows
        y[start:stop] = rng.random(stop - start) < 1 / (1 + np.exp(-(rows @ w)))
    return x, y


# -- the reference ------------------------------------------------------------------
def _gradient_hessian(x, y, w, chunk=100_000):
    """Gradient and Hessian of ``U(w) = -sum log p(y | x, w) + |w|^2 / 2`` in float64, in chunks."""
    g, h = w.copy(), np.eye(len(w))
    for start in range(0, len(y), chunk):
        xs = x[start:start + chunk].astype(np.float64)
        p = 1 / (1 + np.exp(-(xs @ w)))
        g += xs.T @ (p - y[start:start + chunk])
        h += (xs * (p * (1 - p))[:, None]).T @ xs
    return g, h


def laplace(x, y, tol=1e-10):
    """The mode (Newton's method from 0) and ``H^-1`` there: the Laplace reference."""
    w = np.zeros(x.shape[1])
    for _ in range(50):
        g, h = _gradient_hessian(x, y, w)
        step = np.linalg.solve(h, g)
        w -= step
        if np.max(np.abs(step)) < tol:
            break
    g, h = _gradient_hessian(x, y, w)
    cov = np.linalg.inv(h)
    return {"mode": w, "mean": w, "sd": np.sqrt(np.diag(cov)), "lambda_max": float(np.linalg.eigvalsh(h)[-1])}


def nuts_reference(x, y, draws):
    import jax
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(NUTS(numpyro_model, dense_mass=True), num_warmup=1000, num_samples=draws,
                num_chains=NUM_CHAINS, chain_method="vectorized", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(1), x, y=y)
    w = np.asarray(mcmc.get_samples()["w"], dtype=np.float64)
    return {"mean": w.mean(0), "sd": w.std(0, ddof=1)}


def gap(a, b):
    """Worst ``|mean_a - mean_b| / sd_b`` and ``|sd_a / sd_b - 1|``."""
    return (float(np.max(np.abs(a["mean"] - b["mean"]) / b["sd"])), float(np.max(np.abs(a["sd"] / b["sd"] - 1))))


# -- timing of compilation -----------------------------------------------------------------
class CompileClock:
    """Wall time spent compiling: JAX's trace / lowering / compile events, and ppzoo's torch graphs."""

    JAX_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")

    def __init__(self):
        self.spans = []  # (end time, seconds)

    def _listen(self, event, duration, **kwargs):
        if event in self.JAX_EVENTS:
            self.spans.append((time.perf_counter(), float(duration)))

    def before(self, t):
        """Seconds of compilation that ended by ``t``."""
        return sum(d for end, d in self.spans if end <= t)

    @contextlib.contextmanager
    def running(self):
        import jax.monitoring

        from ppzoo.backends import pyro_backend

        original = pyro_backend.compile_graph

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.spans.append((time.perf_counter(), time.perf_counter() - start))

        jax.monitoring.register_event_duration_secs_listener(self._listen)
        pyro_backend.compile_graph = timed
        try:
            yield self
        finally:
            pyro_backend.compile_graph = original
            jax.monitoring.unregister_event_duration_listener(self._listen)


# -- the methods: each returns checkpoints [(time s, grad evals, draws (C, S, d))] -----------
@contextlib.contextmanager
def block_times(records):
    """``ppzoo.sample`` as users call it, with the time of each block of draws recorded: the
    driver's ``on_block`` hook (which the checkpoint writer uses) is composed with a recorder."""
    import ppzoo.sampling as sampling

    original = sampling.run_chains

    def recorded(*args, on_block=None, **kwargs):
        def hook(chains, kept, done, num_samples, thinning):
            records.append((time.perf_counter(), done))
            if on_block is not None:
                on_block(chains, kept, done, num_samples, thinning)

        return original(*args, on_block=hook, **kwargs)

    sampling.run_chains = recorded
    try:
        yield
    finally:
        sampling.run_chains = original


def run_ppzoo(method, backend, x, y, draws, device=None):
    import ppzoo
    from ppzoo.diagnostics import arviz_compat

    if backend == "pyro":
        import torch

        dev = torch.device(device or "cpu")
        args, kwargs, model = (torch.from_numpy(x).to(dev),), {"y": torch.from_numpy(y).to(dev)}, pyro_model
    else:
        import jax.numpy as jnp

        args, kwargs, model = (jnp.asarray(x),), {"y": jnp.asarray(y)}, numpyro_model
    records = []
    start = time.perf_counter()
    with block_times(records), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = ppzoo.sample(model, *args, method=method, num_samples=draws, num_warmup=NUM_WARMUP,
                             num_chains=NUM_CHAINS, seed=0, progress_bar=False,
                             device=device if backend == "pyro" else None, **kwargs)
    end = time.perf_counter()
    w = np.asarray(arviz_compat.get_group(idata, "posterior")["w"].values, dtype=np.float64)
    grads = np.asarray(arviz_compat.get_group(idata, "sample_stats")["grad_evals"].values, dtype=np.float64)
    points = [(t, float(grads[:, done - 1].sum()), w[:, :done]) for t, done in records if done > 0]
    posterior_attrs = arviz_compat.get_group(idata, "posterior").attrs
    notes = sorted({f"{type(c.message).__name__}: {str(c.message).splitlines()[0][:120]}" for c in caught
                    if issubclass(c.category, (UserWarning, RuntimeWarning))})
    return {"start": start, "end": end, "points": points, "draws": w, "notes": notes,
            "thinning": posterior_attrs.get("thinning")}


def _mcmc_points(start, t_warm, t_end, steps_warm, steps, per_step, w, extra_grads=0.0, lockstep=True):
    """Checkpoints of a NumPyro MCMC run, one per draw: times spread over the sampling phase in
    proportion to the draws' leapfrog steps (``steps`` ``(C, S)``): the slowest chain's, for
    vectorised chains (they move in lockstep), all chains' for sequential ones (as if run side by
    side at a quarter of the speed)."""
    cum = np.cumsum(steps.max(0) if lockstep else steps.sum(0))
    grads = extra_grads + per_step * (steps_warm.sum() + np.cumsum(steps.sum(0)))
    times = t_warm + (t_end - t_warm) * cum / cum[-1]
    return [(float(times[k]), float(grads[k]), w[:, :k + 1]) for k in range(w.shape[1])]


def _stepped(start, states, step, draws, budget, steps_of, grads_per_step, extra_grads=0.0):
    """Kernel states stepped one iteration at a time (``step(state) -> state``), warmup then
    ``draws`` draws, until done or ``budget`` seconds after ``start``: each list entry of
    ``states`` is stepped in turn (one vectorised state, or one per sequential chain, interleaved
    so that every chain has the same number of draws at any time). Checkpoints are real times,
    one per draw; a run stopped by the budget keeps what it drew, and one stopped in warmup has
    none (its time to target is then more than the budget)."""
    import jax

    num_chains = sum(int(np.size(steps_of(s))) for s in states)
    w_all, points, grads, done = None, [], float(extra_grads), 0
    for i in range(NUM_WARMUP + draws):
        states = [step(s) for s in states]
        jax.block_until_ready(states)
        now = time.perf_counter()
        grads += sum(float(np.sum(grads_per_step(steps_of(s)))) for s in states)
        if i >= NUM_WARMUP:
            w = np.concatenate([np.asarray(s.z["w"], dtype=np.float64).reshape(-1, np.shape(s.z["w"])[-1])
                                for s in states])
            if w_all is None:
                w_all = np.empty((num_chains, draws, w.shape[-1]))
            w_all[:, done] = w
            done += 1
            points.append((now, grads, w_all[:, :done]))
        if now - start > budget:
            break
    d = np.shape(states[0].z["w"])[-1]
    kept = w_all[:, :done] if w_all is not None else np.empty((num_chains, 0, d))
    return points, kept, {"stopped_by_budget": done < draws, "iterations": i + 1}


def run_nuts(x, y, draws, budget=None):
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    xj, yj = jnp.asarray(x), jnp.asarray(y)
    n = x.shape[0]
    start = time.perf_counter()
    if budget is not None:  # NumPyro's NUTS kernel, its chains vectorised as MCMC does, stepped under a budget
        kernel = NUTS(numpyro_model)
        state = kernel.init(jax.random.split(jax.random.PRNGKey(0), NUM_CHAINS), NUM_WARMUP,
                            model_args=(xj,), model_kwargs={"y": yj})
        sample = jax.jit(lambda s, a, yv: kernel.sample(s, a, {"y": yv}))
        points, w, how = _stepped(start, [state], lambda s: sample(s, (xj,), yj), draws, budget,
                             lambda s: s.num_steps, lambda steps: n * steps)
        return {"start": start, "end": time.perf_counter(), "draws": w, "points": points, **how}
    mcmc = MCMC(NUTS(numpyro_model), num_warmup=NUM_WARMUP, num_samples=draws, num_chains=NUM_CHAINS,
                chain_method="vectorized", progress_bar=False)
    mcmc.warmup(jax.random.PRNGKey(0), xj, y=yj, extra_fields=("num_steps",), collect_warmup=True)
    steps_warm = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["num_steps"], dtype=np.float64)
    jax.block_until_ready(mcmc.post_warmup_state)
    t_warm = time.perf_counter()
    mcmc.run(mcmc.post_warmup_state.rng_key, xj, y=yj, extra_fields=("num_steps",))
    w = np.asarray(mcmc.get_samples(group_by_chain=True)["w"], dtype=np.float64)
    end = time.perf_counter()
    steps = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["num_steps"], dtype=np.float64)
    return {"start": start, "end": end, "draws": w,
            "points": _mcmc_points(start, t_warm, end, steps_warm, steps, n, w),
            "mean_leapfrog_steps": float(steps.mean())}


def run_hmcecs(x, y, draws, subsample, budget=None):
    import jax
    import jax.numpy as jnp
    import numpyro
    from numpyro.infer import HMCECS, MCMC, NUTS, SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoDelta

    n, d = x.shape
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    start = time.perf_counter()
    guide = AutoDelta(numpyro_subsampled_model)
    svi = SVI(numpyro_subsampled_model, guide, numpyro.optim.Adam(1e-3), Trace_ELBO())
    fitted = svi.run(jax.random.PRNGKey(1), SVI_STEPS, xj, y=yj, subsample_size=subsample, progress_bar=False)
    reference = {"w": guide.median(fitted.params)["w"]}
    kernel = HMCECS(NUTS(numpyro_subsampled_model), num_blocks=100, proxy=HMCECS.taylor_proxy(reference))
    # HMCECS.init builds the Taylor proxy (every datum's gradient and Hessian: 1 + d each) and MCMC
    # calls it once per sequential chain; SVI took one subsample per step
    fixed = NUM_CHAINS * n * (1 + d) + SVI_STEPS * subsample
    if budget is not None:  # the chains one step each in turn, stepped under a budget
        states = [kernel.init(key, NUM_WARMUP, None, (xj,), {"y": yj, "subsample_size": subsample})
                  for key in jax.random.split(jax.random.PRNGKey(0), NUM_CHAINS)]
        sample = jax.jit(lambda s, a, yv: kernel.sample(s, a, {"y": yv, "subsample_size": subsample}))
        # per iteration: the leapfrog steps on the subsample and the new subsample's Taylor terms
        points, w, how = _stepped(start, states, lambda s: sample(s, (xj,), yj), draws, budget,
                             lambda s: s.hmc_state.num_steps, lambda steps: subsample * (steps + 1 + d),
                             extra_grads=fixed)
        return {"start": start, "end": time.perf_counter(), "draws": w, "points": points, **how}
    # HMCECS's Gibbs step does not vectorise over chains: NumPyro runs them one after another
    mcmc = MCMC(kernel, num_warmup=NUM_WARMUP, num_samples=draws, num_chains=NUM_CHAINS,
                chain_method="sequential", progress_bar=False)
    mcmc.warmup(jax.random.PRNGKey(0), xj, y=yj, subsample_size=subsample, extra_fields=("hmc_state.num_steps",),
                collect_warmup=True)
    steps_warm = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["hmc_state.num_steps"], dtype=np.float64)
    jax.block_until_ready(mcmc.post_warmup_state)
    t_warm = time.perf_counter()
    mcmc.run(mcmc.post_warmup_state.rng_key, xj, y=yj, subsample_size=subsample,
             extra_fields=("hmc_state.num_steps",))
    w = np.asarray(mcmc.get_samples(group_by_chain=True)["w"], dtype=np.float64)
    end = time.perf_counter()
    steps = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["hmc_state.num_steps"], dtype=np.float64)
    iterations = NUM_CHAINS * (NUM_WARMUP + np.arange(1, draws + 1))
    # and each iteration's subsample refresh (the new subsample's Taylor terms: m (1 + d))
    points = _mcmc_points(start, t_warm, end, steps_warm, steps, subsample, w, extra_grads=fixed, lockstep=False)
    points = [(t, g + subsample * (1 + d) * iterations[k], wk) for k, (t, g, wk) in enumerate(points)]
    return {"start": start, "end": end, "draws": w, "points": points, "mean_leapfrog_steps": float(steps.mean())}


def run_blackjax(kind, x, y, ref, budget):
    import blackjax
    import jax
    import jax.numpy as jnp

    n, d = x.shape
    b = math.ceil(math.sqrt(n))
    # Langevin's Euler step is stable below 2 / lambda_max (at 0.1 of it the stiffest sd is inflated
    # by about 3%); BlackJAX's SGHMC step moves with the momentum before the gradient update, which
    # is never quite stable, so its time step is kept well below 1 / sqrt(lambda_max)
    h = 0.1 / ref["lambda_max"] if kind == "sgld" else 0.1 / math.sqrt(ref["lambda_max"])
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    centre = jnp.asarray(ref["mode"], dtype=jnp.float32)

    def logprior(w):
        return jax.scipy.stats.norm.logpdf(w).sum()

    def loglik(w, datum):
        xi, yi = datum
        logit = xi @ w
        return yi * logit - jnp.logaddexp(0.0, logit)

    start = time.perf_counter()
    estimator = blackjax.sgmcmc.gradients.grad_estimator(logprior, loglik, n)
    cv = blackjax.sgmcmc.gradients.control_variates(estimator, centre, (xj, yj))
    if kind == "sgld":
        algorithm, per_step = blackjax.sgld(cv), 2 * b
    else:
        algorithm, per_step = blackjax.sghmc(cv, num_integration_steps=10, alpha=0.01), 20 * b
    steps_per_block, thin = 2000, 10

    @jax.jit
    def block(positions, key):
        def one_chain(w, key):
            def one_step(w, key):
                k_idx, k_step = jax.random.split(key)
                idx = jax.random.randint(k_idx, (b,), 0, n)
                w = algorithm.step(k_step, w, (xj[idx], yj[idx]), h)
                return w, w

            w, path = jax.lax.scan(one_step, w, jax.random.split(key, steps_per_block))
            return w, path[thin - 1::thin]

        return jax.vmap(one_chain)(positions, jax.random.split(key, NUM_CHAINS))

    positions = jnp.broadcast_to(centre, (NUM_CHAINS, d))
    key = jax.random.PRNGKey(0)
    kept, points, steps = [], [], 0
    while True:
        key, sub = jax.random.split(key)
        positions, path = block(positions, sub)
        kept.append(np.asarray(path, dtype=np.float64))
        steps += steps_per_block
        now = time.perf_counter()
        w = np.concatenate(kept, axis=1)
        half = w[:, w.shape[1] // 2:]  # burn-in: the first half of the draws so far
        points.append((now, float(n + NUM_CHAINS * steps * per_step), half))
        if now - start > budget:
            break
    return {"start": start, "end": time.perf_counter(), "draws": w[:, w.shape[1] // 2:], "points": points,
            "step_size": h, "batch_size": b}


# -- scoring --------------------------------------------------------------------------------
def errors(w, ref):
    """``(worst |mean error| / sd, worst |sd ratio - 1|)`` of draws ``(C, S, d)``."""
    flat = w.reshape(-1, w.shape[-1])
    if flat.shape[0] < 2:
        return math.inf, math.inf
    return (float(np.max(np.abs(flat.mean(0) - ref["mean"]) / ref["sd"])),
            float(np.max(np.abs(flat.std(0, ddof=1) / ref["sd"] - 1))))


def thin(curve, at_most=CURVE_POINTS):
    """At most ``at_most`` checkpoints of ``curve``, log-spaced in their index, first and last
    kept: the stored curve feeds the log-time plot, and the time to target is measured on the
    whole curve before it is thinned."""
    if len(curve) <= at_most:
        return curve
    keep = np.unique(np.round(np.geomspace(1, len(curve), at_most)).astype(int) - 1)
    return [curve[i] for i in keep]


def score(run, ref, clock):
    from ppzoo.diagnostics import arviz_compat

    curve = []
    compiled_before = clock.before(run["start"])
    for t, grads, w in run["points"]:
        mean_err, sd_err = errors(w, ref)
        compiling = clock.before(t) - compiled_before
        curve.append({"t": t - run["start"], "t_no_compile": t - run["start"] - compiling, "grad_evals": grads,
                      "mean_err": mean_err, "sd_err": sd_err, "worst": max(mean_err, sd_err),
                      "within": mean_err <= TARGET[0] and sd_err <= TARGET[1]})
    hit = None
    for k in range(len(curve) - 1, -1, -1):  # the first checkpoint from which all later ones are within
        if not curve[k]["within"]:
            break
        hit = k
    wall = run["end"] - run["start"]
    compile_s = clock.before(run["end"]) - compiled_before
    ess = float(np.min(arviz_compat.ess_array(run["draws"]))) if run["draws"].shape[1] >= 4 else 0.0
    final = curve[-1] if curve else {"mean_err": math.inf, "sd_err": math.inf}
    return {
        "wall_s": wall, "compile_s": compile_s,
        "to_target_s": None if hit is None else curve[hit]["t"],
        "to_target_no_compile_s": None if hit is None else curve[hit]["t_no_compile"],
        "to_target_grad_evals": None if hit is None else curve[hit]["grad_evals"],
        "final_mean_err": final["mean_err"], "final_sd_err": final["sd_err"],
        "min_bulk_ess": ess, "bulk_ess_per_s": ess / max(wall - compile_s, 1e-9),
        "curve": thin([{k: c[k] for k in ("t", "t_no_compile", "grad_evals", "worst")} for c in curve]),
        # what the sampler said while it ran (ppzoo's ConvergenceWarning and others): a run that may be
        # wrong is reported as such next to its numbers
        "warnings": run.get("notes", []), "thinning": run.get("thinning"),
        # a NUTS or HMCECS run stopped by --mcmc-budget before its last draw
        "stopped_by_budget": run.get("stopped_by_budget", False), "iterations": run.get("iterations"),
    }


def run_method(name, x, y, ref, opts, done=()):
    if name.startswith("ppzoo"):
        method, backend = name.split()[1], name.split("(")[1].rstrip(")")
        return run_ppzoo(method, backend, x, y, opts.draws, opts.device)
    if name == "NUTS":
        return run_nuts(x, y, opts.draws, opts.mcmc_budget)
    if name == "HMCECS":
        return run_hmcecs(x, y, opts.draws, min(opts.hmcecs_subsample, x.shape[0]), opts.mcmc_budget)
    # a hand-written loop has no end of its own: it runs for three times ppzoo's best time to
    # target (at least 30 s, at most --budget), long enough to say which is faster
    ours = [r["to_target_s"] for r in done if r["method"].startswith("ppzoo") and r.get("to_target_s")]
    budget = min(opts.budget, max(30.0, 3 * min(ours))) if ours else opts.budget
    return run_blackjax(name.split()[1], x, y, ref, budget)


# -- report -----------------------------------------------------------------------------------
def _fmt(v, spec="{:.3g}"):
    return "not reached" if v is None else spec.format(v)


def markdown(result):
    lines = ["# Time to an accurate posterior: ppzoo against NUTS, HMCECS and BlackJAX", "",
             f"Bayesian logistic regression, AR(1) features (rho = {RHO}), {NUM_CHAINS} chains. Target: every "
             f"mean within {TARGET[0]} sd and every sd within {TARGET[1]:.0%} of the reference, from then on. "
             "Command and machine at the end.", ""]
    for case in result["cases"]:
        ref = case["reference"]
        lines += [f"## d = {case['d']}, N = {case['n']:,}", "", f"Code: commit {case.get('commit', 'unknown')}", "",
                  f"Reference: {ref['kind']}" + (f"; Laplace vs NUTS gap: mean {ref['gap'][0]:.3f} sd, "
                                                 f"sd {ref['gap'][1]:.1%}" if ref.get("gap") else ""), "",
                  "| method | to target, s | without compile, s | grad evals to target | ESS/s (bulk) | "
                  "final worst Δmean/sd | final worst sd ratio-1 | wall s | compile s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in case["methods"]:
            if "error" in row:
                lines.append(f"| {row['method']} | error: {row['error']} | | | | | | | |")
                continue
            cells = [_fmt(row["to_target_s"], "{:.1f}"), _fmt(row["to_target_no_compile_s"], "{:.1f}"),
                     _fmt(row["to_target_grad_evals"], "{:.2e}")]
            if row["to_target_s"] is None and row.get("stopped_by_budget"):
                where = (f" after {row['iterations']:,} iterations, the first {NUM_WARMUP:,} warmup"
                         if row.get("iterations") else "")
                cells = [f"> {row['wall_s']:.0f} (stopped by --mcmc-budget{where})", "", ""]
            lines.append(
                f"| {row['method']} | {' | '.join(cells)} | "
                f"{row['bulk_ess_per_s']:.3g} | {row['final_mean_err']:.3f} | {row['final_sd_err']:.3f} | "
                f"{row['wall_s']:.1f} | {row['compile_s']:.1f} |")
        for row in case["methods"]:
            for text in row.get("warnings", []):
                lines.append(f"\n{row['method']} warned: {text}")
        for key, text in case.get("ratios", {}).items():
            lines.append(f"\n{key}: {text}")
        if case.get("note"):
            lines.append(f"\nNote: {case['note']}")
        lines.append("")
    lines += ["## Crossover", "", result.get("crossover", "(not computed)"), "",
              f"Command: `{result['command']}`  ", f"Machine: {result['machine']}", ""]
    return "\n".join(lines)


def ratios(case):
    """NUTS's and HMCECS's time to target over ppzoo's best default method's (with compilation)."""
    rows = {r["method"]: r for r in case["methods"] if "error" not in r}
    ours = [r for name, r in rows.items() if name.startswith("ppzoo") and r["to_target_s"] is not None]
    if not ours:
        return {}
    best = min(ours, key=lambda r: r["to_target_s"])
    out = {"best ppzoo": f"{best['method']}, {best['to_target_s']:.1f} s"}
    for other in ("NUTS", "HMCECS", "BlackJAX sgld", "BlackJAX sghmc"):
        if other in rows:
            t = rows[other]["to_target_s"]
            out[f"{other} / best ppzoo"] = (f"{t / best['to_target_s']:.2f}x" if t is not None else
                                            f"> {rows[other]['wall_s'] / best['to_target_s']:.2f}x (not reached in "
                                            f"{rows[other]['wall_s']:.0f} s"
                                            + (", stopped by --mcmc-budget)" if rows[other].get("stopped_by_budget")
                                               else ")"))
    return out


def crossover(cases):
    """Per d: the N at which ppzoo's best method first beats NUTS to target."""
    text = []
    for d in sorted({c["d"] for c in cases}):
        wins = []
        for case in sorted((c for c in cases if c["d"] == d), key=lambda c: c["n"]):
            rows = {r["method"]: r for r in case["methods"] if "error" not in r}
            ours = [r["to_target_s"] for n, r in rows.items() if n.startswith("ppzoo") and r["to_target_s"]]
            nuts = rows.get("NUTS", {})
            if ours and nuts.get("to_target_s"):
                wins.append(f"{nuts['to_target_s'] / min(ours):.2f} at N = {case['n']:,}")
            elif ours and nuts.get("stopped_by_budget"):  # a lower bound: NUTS was stopped before the target
                wins.append(f"> {nuts['wall_s'] / min(ours):.2f} at N = {case['n']:,} (NUTS stopped by --mcmc-budget)")
        if wins:
            text.append(f"d = {d}: NUTS time / best ppzoo time = " + ", ".join(wins))
    return "; ".join(text) if text else "(no N with both NUTS and ppzoo at target)"


def plot(result, path):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = result["cases"]
    dims, sizes = sorted({c["d"] for c in cases}), sorted({c["n"] for c in cases})
    fig, axes = plt.subplots(len(dims), len(sizes), figsize=(4.5 * len(sizes), 3.6 * len(dims)), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for case in cases:
        ax = axes[dims.index(case["d"])][sizes.index(case["n"])]
        ax.set_visible(True)
        for row in case["methods"]:
            # one colour per method in every panel, whichever methods a case ran
            style = {"color": f"C{METHODS.index(row['method']) % 10}" if row["method"] in METHODS else None,
                     "ls": "-" if row["method"].startswith("ppzoo") else "--"}
            if "curve" in row and row["curve"]:
                ax.plot([c["t"] for c in row["curve"]], [c["worst"] for c in row["curve"]], label=row["method"],
                        lw=1.2, **style)
            elif row.get("stopped_by_budget"):  # stopped before its first draw: where it stopped
                ax.axvline(row["wall_s"], lw=1.2, label=f"{row['method']}: stopped at {row['wall_s']:.0f} s, no draws",
                           **style)
        ax.axhline(TARGET[0], color="k", lw=0.8, ls=":")
        ax.set(xscale="log", yscale="log", xlabel="wall time, s", ylabel="worst error",
               title=f"d = {case['d']}, N = {case['n']:,}", ylim=(1e-2, 1e1))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _commit():
    """The checked-out commit (``+`` when the tree has changes), so each case says what code it ran."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+" if dirty else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain after warmup (ppzoo, NUTS, HMCECS)")
    parser.add_argument("--budget", type=float, default=600.0,
                        help="most seconds per BlackJAX loop (it runs 3x ppzoo's best time to target, >= 30 s)")
    parser.add_argument("--append", action="store_true",
                        help="keep the cases already in the --out JSON (replacing those run again)")
    parser.add_argument("--device", default=None, help="torch device of the Pyro rows (JAX uses its default)")
    parser.add_argument("--hmcecs-subsample", type=int, default=1000)
    parser.add_argument("--mcmc-budget", type=float, default=None,
                        help="most seconds for NUTS and for HMCECS: their NumPyro kernels stepped one draw at a "
                             "time and stopped there (default: NumPyro's MCMC, run to the end)")
    parser.add_argument("--nuts-reference-max", type=int, default=10_000,
                        help="largest N at which a long NUTS run is the reference (and checks the Laplace one)")
    parser.add_argument("--reference-draws", type=int, default=2500)
    parser.add_argument("--quick", action="store_true", help="a smoke run: d = 5, N = 2000, short runs")
    parser.add_argument("--report", action="store_true",
                        help="only rewrite the Markdown and the plot from the --out JSON (after editing its notes)")
    parser.add_argument("--out", default=str(RESULTS / "vs_alternatives"))
    opts = parser.parse_args(argv)
    if opts.quick:
        global NUM_WARMUP, SVI_STEPS
        NUM_WARMUP, SVI_STEPS = 100, 200
        opts.dims, opts.sizes, opts.draws, opts.budget = [5], [2000], 100, 3.0
        opts.reference_draws, opts.hmcecs_subsample = 300, 200
    warnings.filterwarnings("ignore", message=".*There are not enough devices.*")
    if opts.report:
        result = json.loads(pathlib.Path(opts.out).with_suffix(".json").read_text())
        for case in result["cases"]:  # derived from the rows: recomputed, so the report follows the code
            case["ratios"] = ratios(case)
        result["crossover"] = crossover(result["cases"])
        pathlib.Path(opts.out).with_suffix(".json").write_text(json.dumps(result, indent=1))
        pathlib.Path(opts.out).with_suffix(".md").write_text(markdown(result))
        plot(result, pathlib.Path(opts.out).with_suffix(".png"))
        return result

    clock = CompileClock()
    result = {"command": shlex.join(["python", "benchmarks/vs_alternatives.py", *(argv or sys.argv[1:])]),
              "machine": f"{platform.platform()}, {platform.processor() or platform.machine()}",
              "target": TARGET, "num_chains": NUM_CHAINS, "num_warmup": NUM_WARMUP, "cases": []}
    out = pathlib.Path(opts.out)
    if opts.append and out.with_suffix(".json").exists():
        earlier = json.loads(out.with_suffix(".json").read_text())
        result["cases"] = [c for c in earlier["cases"] if (c["d"], c["n"]) not in
                           {(d, n) for d in opts.dims for n in opts.sizes}]
        result["command"] = f"{earlier['command']}; {result['command']}"
    with clock.running():
        for d in opts.dims:
            for n in opts.sizes:
                x, y = make_data(n, d)
                lap = laplace(x, y)
                ref = {"kind": "Laplace at the mode (float64 Newton)", **lap}
                if n <= opts.nuts_reference_max:
                    nuts = nuts_reference(x, y, opts.reference_draws)
                    ref = {**lap, **nuts, "kind": f"NumPyro NUTS, dense mass, {NUM_CHAINS} x {opts.reference_draws} "
                                                  "draws", "gap": gap(lap, nuts)}
                print(f"d = {d}, N = {n:,}: reference {ref['kind']}"
                      + (f", Laplace gap {ref['gap'][0]:.3f} sd / {ref['gap'][1]:.1%}" if "gap" in ref else ""),
                      flush=True)
                case = {"d": d, "n": n, "commit": _commit(), "reference": {"kind": ref["kind"], "gap": ref.get("gap"),
                                                      "lambda_max": ref["lambda_max"]}, "methods": []}
                for name in opts.methods:
                    try:
                        row = {"method": name, **score(run_method(name, x, y, ref, opts, case["methods"]), ref, clock)}
                    except Exception as error:  # noqa: BLE001 - a failed method is a result; the others go on
                        traceback.print_exc()
                        row = {"method": name, "error": f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"}
                    case["methods"].append(row)
                    if "error" not in row:
                        print(f"  {name:26s} to target {_fmt(row['to_target_s'], '{:.1f}'):>11s} s "
                              f"({_fmt(row['to_target_no_compile_s'], '{:.1f}')} s without compile, "
                              f"{_fmt(row['to_target_grad_evals'], '{:.2e}')} grads), ESS/s {row['bulk_ess_per_s']:.3g}, "
                              f"final {row['final_mean_err']:.3f} / {row['final_sd_err']:.3f}, "
                              f"wall {row['wall_s']:.1f} s", flush=True)
                    else:
                        print(f"  {name:26s} {row['error']}", flush=True)
                case["ratios"] = ratios(case)
                result["cases"].append(case)
                for old in result["cases"]:  # cases kept by --append from before the curves were thinned
                    for row in old["methods"]:
                        if "curve" in row:
                            row["curve"] = thin(row["curve"])
                result["cases"].sort(key=lambda c: (c["d"], c["n"]))
                del x, y
                out.parent.mkdir(parents=True, exist_ok=True)
                result["crossover"] = crossover(result["cases"])
                out.with_suffix(".json").write_text(json.dumps(result, indent=1))
                out.with_suffix(".md").write_text(markdown(result))
                plot(result, out.with_suffix(".png"))
    print(result["crossover"])
    return result


if __name__ == "__main__":
    main()
