"""Posterior collapse against the inverse-Lipschitz constant: VAEs on binarised digits.

Data: scikit-learn's digits (``ppzoo.data.images.load_digits``), 8 x 8: 1,500
training images, dynamically binarised (a fresh draw every step), and 297
test images binarised once. Every model has a ``--latent-dim``-dimensional
Gaussian latent, an MLP encoder (``--hidden``, tanh) and a Bernoulli decoder:

* ``plain``: an MLP decoder with the same hidden widths (the usual VAE, free to
  ignore its latent code);
* ``il c``: the inverse-Lipschitz decoder ``f = h_2 B h_1``
  (``ppzoo.nn.jax.InverseLipschitz``) with constant ``c`` for each ``c`` in
  ``--constants`` (``c = 0`` is the unconstrained gradient-map decoder).

Each is fitted by ``ppzoo.fit`` (NumPyro, ELBO, Adam 1e-3, ``--steps`` steps of
``--batch-size`` images, same seed), then measured on the training images: KL to
the prior per latent dimension, active units (Var_x E_q[z_j] > 0.01), I(x; z)
under the aggregate posterior, rate and distortion
(``Fit.collapse``); and on the test images: ``log p(x)`` per image by importance
sampling with ``K = --lml-samples`` (5000) particles.

With ``--train-file``/``--test-file`` (MNIST or Fashion-MNIST IDX files or
``.npz`` archives the user already has; nothing is downloaded) the same sweep
runs on those images instead, for comparison with the paper's MNIST results.

    python benchmarks/il_vae_sweep.py [--steps 6000] [--constants 0 0.25 0.5 1 2 4]

Writes ``benchmarks/results/il_vae_sweep.json``, ``.md`` and ``.png`` (or into ``--out``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def run_one(name, decoder, options, x_train, x_test, args):
    from ppzoo.models.vae import numpyro_vae

    import ppzoo

    model, guide = numpyro_vae(x_train.shape[1], args.latent_dim, decoder, hidden=tuple(args.hidden), seed=args.seed, **options)
    start = time.perf_counter()
    fit = ppzoo.fit(
        model, guide, x_train, num_steps=args.steps, batch_size=args.batch_size, seed=args.seed,
        progress_bar=False, step_kwargs=lambda t: {"binarize_step": t},
    )
    seconds = time.perf_counter() - start
    report = fit.collapse(num_samples=10)
    lml = ppzoo.log_marginal_likelihood(
        model, guide, fit.params, x_test, num_samples=args.lml_samples, chunk_size=args.chunk_size, backend="numpyro",
    )
    row = {
        "model": name, "decoder": decoder, **options,
        "train_elbo_per_image": float(-np.mean(fit.losses[-100:]) / len(x_train)),
        "test_log_px_per_image": float(lml.total / len(x_test)),
        "test_log_px_se": float(lml.standard_error / len(x_test)),
        "active_units": report.active_units,
        "kl_per_dim": [round(float(k), 4) for k in report.kl],
        "rate": report.rate, "distortion": report.distortion,
        "mutual_information": report.mutual_information,
        "fit_seconds": seconds,
        "stop_reason": fit.stop_reason,
    }
    print(
        f"{name:>10}: AU {row['active_units']:2d}/{args.latent_dim}  KL {row['rate']:6.2f}  "
        f"MI {row['mutual_information']:5.2f}  distortion {row['distortion']:6.2f}  "
        f"test log p(x) {row['test_log_px_per_image']:8.3f} +- {row['test_log_px_se']:.3f}  ({seconds:.0f} s)",
        flush=True,
    )
    return row


def markdown(rows, args):
    lines = [
        f"VAEs on binarised {'digits' if args.train_file is None else args.train_file.name}, latent dimension {args.latent_dim}, {args.steps} steps of {args.batch_size}; "
        f"test log p(x) with K = {args.lml_samples}.",
        "",
        "| decoder | constant c | active units | KL (rate) | I(x;z) | distortion | test log p(x) per image |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = r.get("constant", "-")
        lines.append(
            f"| {r['decoder']} | {c} | {r['active_units']}/{args.latent_dim} | {r['rate']:.2f} | "
            f"{r['mutual_information']:.2f} | {r['distortion']:.2f} | {r['test_log_px_per_image']:.2f} ± {r['test_log_px_se']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows, args, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    il = [r for r in rows if r["decoder"] == "inverse_lipschitz"]
    plain = next((r for r in rows if r["decoder"] == "mlp"), None)
    cs = [r["constant"] for r in il]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    panels = [
        ("rate", "KL to the prior (nats)"), ("active_units", "active units"),
        ("mutual_information", "I(x; z) (nats)"), ("test_log_px_per_image", "test log p(x) per image"),
    ]
    for ax, (key, label) in zip(axes, panels):
        ax.plot(cs, [r[key] for r in il], "o-", label="inverse-Lipschitz")
        if plain is not None:
            ax.axhline(plain[key], color="C3", ls="--", label="plain MLP decoder")
        ax.set_xlabel("inverse-Lipschitz constant c")
        ax.set_ylabel(label)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    p.add_argument("--constants", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0, 2.0, 4.0])
    p.add_argument("--lml-samples", type=int, default=5000)
    p.add_argument("--chunk-size", type=int, default=250)
    p.add_argument("--train-size", type=int, default=None, help="use only the first images (quick runs)")
    p.add_argument("--train-file", type=pathlib.Path, default=None, help="IDX or .npz images (e.g. MNIST's train-images-idx3-ubyte)")
    p.add_argument("--test-file", type=pathlib.Path, default=None, help="IDX or .npz test images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = p.parse_args(argv)
    if (args.train_file is None) != (args.test_file is None):
        p.error("--train-file and --test-file go together")

    from ppzoo.data.images import load_digits, load_images

    if args.train_file is not None:
        x_train, x_test = load_images(args.train_file)[: args.train_size], load_images(args.test_file)
    else:
        x_train, x_test = load_digits("train")[: args.train_size], load_digits("test")
    rows = [run_one("plain", "mlp", {}, x_train, x_test, args)]
    for c in args.constants:
        rows.append(run_one(f"il {c:g}", "inverse_lipschitz", {"constant": c}, x_train, x_test, args))
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()}
    result = {"settings": settings, "machine": platform.platform(), "rows": rows}
    (args.out / "il_vae_sweep.json").write_text(json.dumps(result, indent=2))
    (args.out / "il_vae_sweep.md").write_text(markdown(rows, args))
    plot(rows, args, args.out / "il_vae_sweep.png")
    print(markdown(rows, args))


if __name__ == "__main__":
    main()
