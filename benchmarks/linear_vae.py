"""Linear VAE: the posterior-collapse threshold and the speed-up from KL annealing, against theory.

Model (``ppzoo.models.vae.numpyro_vae(decoder="linear", likelihood="gaussian")``):
``z ~ N(0, I_d)``, ``x | z ~ N(W z + b, sigma^2 I_D)`` with ``sigma`` fixed, and
the encoder ``q(z | x) = N(V x + c, diag(s^2))`` (Lucas et al. 2019). With the
KL weighted by ``beta``, the objective per datum, for data of covariance
``C = U diag(lambda) U^T``, separates along the eigenvectors, and maximising
over the encoder leaves ``-(beta/2) [lambda_k / a_k + log a_k]`` with
``a_k = ||w_k||^2 + beta sigma^2 >= beta sigma^2``. Its maximum is at
``a_k = lambda_k`` when ``lambda_k > beta sigma^2``, else at the boundary
``w_k = 0``. Hence

    ||w_k||^2 = max(lambda_k - beta sigma^2, 0):   latent k collapses iff beta >= lambda_k / sigma^2

(at ``beta = 1``: iff ``lambda_k <= sigma^2``; compare Lucas et al. 2019 and
Ichikawa & Hukushima 2024). ``lambda_k`` are the eigenvalues of the data's own
(empirical) covariance, which is what the fit sees.

1. Threshold. Gaussian data (``--n`` points, ``D = d = len(--spectrum)``, covariance
   with eigenvalues ``--spectrum`` in a random basis); for each ``beta`` of a
   grid, ``ppzoo.fit`` with ``AnnealedELBO(beta)`` (Adam ``--lr``, ``--steps``
   full-batch steps); the eigenvalues of ``W^T W`` against
   ``max(lambda_k - beta sigma^2, 0)``; the number of collapsed latents
   (KL to the prior below 0.01 nats) against ``#{k: lambda_k <= beta sigma^2}``;
   and each latent's threshold, from a straight-line fit of its measured
   ``||w_k||^2`` against ``beta`` (over the betas where it is clearly positive),
   against ``lambda_k / sigma^2`` (target: within 5%).
2. KL annealing. The ELBO at ``beta = 1`` (in closed form from the parameters,
   every step) along fits with ``beta = 1`` throughout and with a linear KL
   warm-up of ``T`` steps, from the same initial weights; reported: the steps
   each needs to come within ``eps`` of the optimum ELBO (the probabilistic PCA
   log-likelihood, also closed form).

    python benchmarks/linear_vae.py [--steps 4000] [--warmups 250 1000]

Writes ``benchmarks/results/linear_vae.json``, ``.md`` and ``.png`` (or into ``--out``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def make_data(spectrum, n, seed):
    rng = np.random.default_rng(seed)
    d = len(spectrum)
    basis, _ = np.linalg.qr(rng.normal(size=(d, d)))
    x = rng.normal(size=(n, d)) * np.sqrt(spectrum) @ basis.T + rng.normal(size=d)
    return x.astype(np.float32)


def closed_form_elbo(params, mean, cov, sigma, beta=1.0):
    """The (beta-)ELBO per datum of the linear VAE with these parameters, averaged over the data, exactly."""
    import jax.numpy as jnp

    W, b = params["decoder$params"].weight, params["decoder$params"].bias
    V, c = params["encoder$params"].weight, params["encoder$params"].bias
    s2 = jnp.exp(2 * params["encoder_log_scale"])
    D = W.shape[0]
    A = jnp.eye(D) - W @ V
    r = A @ mean - W @ c - b
    sq = jnp.trace(A @ cov @ A.T) + r @ r + jnp.sum((W**2) * s2)
    recon = -0.5 * D * jnp.log(2 * jnp.pi * sigma**2) - sq / (2 * sigma**2)
    mu2 = jnp.diag(V @ cov @ V.T) + (V @ mean + c) ** 2
    kl = 0.5 * jnp.sum(mu2 + s2 - 1 - jnp.log(s2))
    return recon - beta * kl


def optimum_log_likelihood(eigenvalues, sigma):
    """Probabilistic PCA's maximum log-likelihood per datum with the noise fixed at ``sigma`` (d = D)."""
    top = np.maximum(eigenvalues, sigma**2)
    return float(-0.5 * (len(eigenvalues) * np.log(2 * np.pi) + np.sum(np.log(top)) + np.sum(eigenvalues / top)))


def threshold_sweep(x, lam, args):
    import numpyro.optim
    from ppzoo.inference import AnnealedELBO
    from ppzoo.models.vae import numpyro_vae

    import ppzoo

    d = x.shape[1]
    rows = []
    for beta in args.betas:
        model, guide = numpyro_vae(d, d, "linear", likelihood="gaussian", noise_scale=args.sigma, seed=args.seed)
        fit = ppzoo.fit(
            model, guide, x, objective=AnnealedELBO(beta), num_steps=args.steps, seed=args.seed,
            optimizer=numpyro.optim.Adam(args.lr), progress_bar=False,
        )
        W = np.asarray(fit.params["decoder$params"].weight)
        norms = np.sort(np.linalg.eigvalsh(W.T @ W))[::-1]
        kl = fit.collapse(num_samples=2).kl
        theory = np.maximum(lam - beta * args.sigma**2, 0.0)
        row = {
            "beta": beta, "w_norms": norms.tolist(), "theory_w_norms": theory.tolist(),
            "collapsed": int(np.sum(kl < 0.01)), "theory_collapsed": int(np.sum(lam <= beta * args.sigma**2)),
            "min_distance_to_a_threshold": float(np.min(np.abs(np.log(beta * args.sigma**2 / lam)))),
        }
        rows.append(row)
        print(f"beta {beta:7.3f}: collapsed {row['collapsed']} (theory {row['theory_collapsed']}), "
              f"||w_k||^2 {np.round(norms, 2)} vs {np.round(theory, 2)}", flush=True)
    # thresholds: ||w_k||^2 = lambda_k - beta sigma^2 is linear in beta; fit the line where it is clearly > 0
    thresholds = []
    for k, lk in enumerate(lam):
        pts = [(r["beta"], r["w_norms"][k]) for r in rows if r["w_norms"][k] > 0.1 * lk]
        if len(pts) < 2:
            thresholds.append({"k": k, "lambda": float(lk), "theory": float(lk / args.sigma**2), "measured": None})
            continue
        b, w = np.array(pts).T
        slope, intercept = np.polyfit(b, w, 1)
        measured = float(-intercept / slope)
        thresholds.append({
            "k": k, "lambda": float(lk), "theory": float(lk / args.sigma**2), "measured": measured,
            "relative_error": float(abs(measured * args.sigma**2 / lk - 1)), "slope": float(slope), "points": len(pts),
        })
    return rows, thresholds


def annealing_speedup(x, lam, args):
    import jax
    import jax.numpy as jnp
    import optax
    from numpyro.infer import SVI
    from ppzoo.inference import AnnealedELBO, LinearWarmup
    from ppzoo.models.vae import numpyro_vae

    d = x.shape[1]
    mean, cov = jnp.asarray(x.mean(0), jnp.float32), jnp.asarray(np.cov(x.T, bias=True), jnp.float32)
    best = optimum_log_likelihood(lam, args.sigma)
    xj = jnp.asarray(x)
    curves = {}
    for warmup in [0, *args.warmups]:
        model, guide = numpyro_vae(d, d, "linear", likelihood="gaussian", noise_scale=args.sigma, seed=args.seed)
        objective = AnnealedELBO(LinearWarmup(warmup) if warmup else 1.0)
        svi = SVI(model, guide, optax.adam(args.lr), loss=objective)
        state = svi.init(jax.random.PRNGKey(args.seed), xj)

        @jax.jit
        def run(state, svi=svi, warmup=warmup):
            def step(state, t):
                kw = {"annealing_step": t} if warmup else {}
                state, _ = svi.update(state, xj, **kw)
                return state, closed_form_elbo(svi.get_params(state), mean, cov, args.sigma)

            return jax.lax.scan(step, state, jnp.arange(args.anneal_steps))

        _, elbo = run(state)
        curves[warmup] = np.asarray(elbo)
    out = {"optimum": best, "curves_every_10": {str(k): v[::10].tolist() for k, v in curves.items()}, "steps_to_reach": {}}
    for eps in args.eps:
        out["steps_to_reach"][str(eps)] = {}
        for warmup, curve in curves.items():
            hit = np.nonzero(curve >= best - eps)[0]
            out["steps_to_reach"][str(eps)][str(warmup)] = int(hit[0]) + 1 if hit.size else None
    for eps, by in out["steps_to_reach"].items():
        print(f"steps to come within {eps} nats of the optimum ELBO {best:.4f}: "
              + ", ".join(f"{'no annealing' if k == '0' else f'warm-up {k}'}: {v}" for k, v in by.items()), flush=True)
    return out, curves


def plot(rows, lam, curves, best, args, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    betas = [r["beta"] for r in rows]
    grid = np.linspace(min(betas), max(betas), 200)
    for k, lk in enumerate(lam):
        a.plot(betas, [r["w_norms"][k] for r in rows], "o", ms=3, color=f"C{k % 10}")
        a.plot(grid, np.maximum(lk - grid * args.sigma**2, 0), "-", lw=0.8, color=f"C{k % 10}")
    a.set_xscale("log")
    a.set_xlabel("KL weight beta")
    a.set_ylabel("||w_k||^2 (dots: fitted, lines: theory)")
    for warmup, curve in curves.items():
        b.plot(np.arange(1, len(curve) + 1), best - curve, label="no annealing" if warmup == 0 else f"KL warm-up {warmup} steps")
    b.set_yscale("log")
    b.set_xlabel("step")
    b.set_ylabel("optimum ELBO - ELBO (nats)")
    b.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--spectrum", type=float, nargs="+", default=[8.0, 5.0, 3.0, 2.0, 1.4, 0.7, 0.4, 0.2])
    p.add_argument("--sigma", type=float, default=1.0)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--betas", type=float, nargs="+", default=list(np.round(np.geomspace(0.1, 12.0, 28), 4)))
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--anneal-steps", type=int, default=4000)
    p.add_argument("--warmups", type=int, nargs="+", default=[250, 1000])
    p.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.01])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = p.parse_args(argv)

    x = make_data(np.array(args.spectrum), args.n, args.seed)
    lam = np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1]
    print("empirical spectrum", np.round(lam, 3), flush=True)
    rows, thresholds = threshold_sweep(x, lam, args)
    for t in thresholds:
        if t["measured"] is not None:
            print(f"latent {t['k']}: threshold beta {t['measured']:.3f} vs theory {t['theory']:.3f} "
                  f"({100 * t['relative_error']:.1f}% off, {t['points']} points)")
    speed, curves = annealing_speedup(x, lam, args)
    far = [r for r in rows if r["min_distance_to_a_threshold"] > 0.05]
    agree = sum(r["collapsed"] == r["theory_collapsed"] for r in far)
    summary = {
        "collapsed_count_agrees": f"{agree}/{len(far)} betas more than 5% from every threshold",
        "max_threshold_error": max((t["relative_error"] for t in thresholds if t["measured"] is not None), default=None),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()}
    result = {"settings": settings, "machine": platform.platform(), "empirical_spectrum": lam.tolist(), "summary": summary,
              "sweep": rows, "thresholds": thresholds, "annealing": speed}
    (args.out / "linear_vae.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"Linear VAE, D = d = {len(lam)}, sigma = {args.sigma}, N = {args.n}; {args.steps} full-batch Adam steps per beta.",
        "",
        f"Collapsed latents (KL < 0.01) equal theory's count at {summary['collapsed_count_agrees']}.",
        "",
        "| latent k | lambda_k | theory threshold beta = lambda_k / sigma^2 | measured | error |",
        "|---|---|---|---|---|",
    ]
    for t in thresholds:
        m = "-" if t["measured"] is None else f"{t['measured']:.3f}"
        e = "-" if t["measured"] is None else f"{100 * t['relative_error']:.1f}%"
        lines.append(f"| {t['k']} | {t['lambda']:.3f} | {t['theory']:.3f} | {m} | {e} |")
    lines += ["", f"Steps to come within eps of the optimum ELBO ({speed['optimum']:.4f} nats per datum):", "",
              "| eps | " + " | ".join("no annealing" if w == 0 else f"warm-up {w}" for w in [0, *args.warmups]) + " |",
              "|---|" + "---|" * (1 + len(args.warmups))]
    for eps, by in speed["steps_to_reach"].items():
        lines.append(f"| {eps} | " + " | ".join(str(by[str(w)]) for w in [0, *args.warmups]) + " |")
    text = "\n".join(lines) + "\n"
    (args.out / "linear_vae.md").write_text(text)
    plot(rows, lam, curves, speed["optimum"], args, args.out / "linear_vae.png")
    print(text)


if __name__ == "__main__":
    main()
