"""VAE against IWAE training on binarised digits: test log p(x) and active units for K = 1, 5, 50.

The protocol of Burda et al. (2016, Table 1, one stochastic layer) on
scikit-learn's digits: each model is trained with K particles either by the
ELBO averaged over K draws ("VAE") or by the K-sample importance-weighted bound
("IWAE"), then scored by ``log p(x)`` with ``--lml-samples`` (5000)
importance samples on the 297 held-out images (binarised once), and by its
active units on the training images (Var_x E_q[z_j] > 0.01). At K = 1 the two
objectives are the same. Their table on MNIST (negative log-likelihood,
VAE / IWAE): K=1 86.76 / 86.76, K=5 86.47 / 85.54, K=50 86.35 / 84.78, with
IWAE using more active units as K grows; the same ordering is expected here.

Model: ``ppzoo.models.vae.numpyro_vae`` with an MLP decoder, latent dimension
``--latent-dim``, hidden widths ``--hidden`` (tanh); training by ``ppzoo.fit``
(NumPyro, Adam 1e-3, ``--steps`` steps of ``--batch-size`` images, dynamic
binarisation, the same seed for every model).

    python benchmarks/iwae_digits.py [--steps 6000] [--ks 1 5 50]

Writes ``benchmarks/results/iwae_digits.json``, ``.md`` and ``.png`` (or into ``--out``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def plot(rows, path):
    """Test NLL and active units against K, VAE and IWAE training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, style in (("VAE", "o--"), ("IWAE", "s-")):
        pts = sorted((r["k"], r["test_nll_per_image"], r["active_units"]) for r in rows
                     if r["objective"] == name or (r["k"] == 1 and name == "IWAE"))
        ks, nll, au = zip(*pts)
        a.plot(ks, nll, style, label=name)
        b.plot(ks, au, style, label=name)
    for ax, label in ((a, "test NLL per image (nats)"), (b, "active units")):
        ax.set_xscale("log")
        ax.set_xlabel("K (particles in training)")
        ax.set_ylabel(label)
    a.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--latent-dim", type=int, default=10)
    p.add_argument("--hidden", type=int, nargs="+", default=[100, 100])
    p.add_argument("--ks", type=int, nargs="+", default=[1, 5, 50])
    p.add_argument("--lml-samples", type=int, default=5000)
    p.add_argument("--chunk-size", type=int, default=500)
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = p.parse_args(argv)

    from ppzoo.models.vae import numpyro_vae

    import ppzoo
    from ppzoo.data.images import load_digits

    x_train, x_test = load_digits("train")[: args.train_size], load_digits("test")
    rows = []
    for k in args.ks:
        for objective in ("elbo", "iwae"):
            if k == 1 and objective == "iwae":
                continue  # the same objective as the ELBO at K = 1
            model, guide = numpyro_vae(64, args.latent_dim, "mlp", hidden=tuple(args.hidden), seed=args.seed)
            start = time.perf_counter()
            fit = ppzoo.fit(
                model, guide, x_train, objective=objective, num_particles=k, num_steps=args.steps,
                batch_size=args.batch_size, seed=args.seed, progress_bar=False,
                step_kwargs=lambda t: {"binarize_step": t},
            )
            seconds = time.perf_counter() - start
            lml = ppzoo.log_marginal_likelihood(
                model, guide, fit.params, x_test, num_samples=args.lml_samples, chunk_size=args.chunk_size,
                backend="numpyro",
            )
            report = fit.collapse(num_samples=5)
            row = {
                "k": k, "objective": "VAE" if objective == "elbo" else "IWAE",
                "test_nll_per_image": float(-lml.total / len(x_test)),
                "test_nll_se": float(lml.standard_error / len(x_test)),
                "active_units": report.active_units, "rate": report.rate,
                "fit_seconds": seconds, "stop_reason": fit.stop_reason,
            }
            rows.append(row)
            print(f"K={k:3d} {row['objective']:>4}: test NLL {row['test_nll_per_image']:.3f} +- {row['test_nll_se']:.3f}  "
                  f"AU {report.active_units}/{args.latent_dim}  ({seconds:.0f} s)", flush=True)

    lines = [
        f"One-stochastic-layer VAE on binarised digits (latent {args.latent_dim}, hidden {args.hidden}), "
        f"{args.steps} steps of {args.batch_size}; test NLL per image with K = {args.lml_samples} (nats, lower is better).",
        "",
        "| K | VAE test NLL | IWAE test NLL | VAE active units | IWAE active units |",
        "|---|---|---|---|---|",
    ]
    for k in args.ks:
        vae = next(r for r in rows if r["k"] == k and r["objective"] == "VAE")
        iw = next((r for r in rows if r["k"] == k and r["objective"] == "IWAE"), vae)
        lines.append(
            f"| {k} | {vae['test_nll_per_image']:.3f} ± {vae['test_nll_se']:.3f} | {iw['test_nll_per_image']:.3f} ± "
            f"{iw['test_nll_se']:.3f} | {vae['active_units']} | {iw['active_units']} |"
        )
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()}
    (args.out / "iwae_digits.json").write_text(json.dumps({"settings": settings, "machine": platform.platform(), "rows": rows}, indent=2))
    (args.out / "iwae_digits.md").write_text(text)
    plot(rows, args.out / "iwae_digits.png")
    print(text)
    return rows


if __name__ == "__main__":
    main()
