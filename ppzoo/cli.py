"""The ``ppzoo`` command line.

    ppzoo run [MODEL] [--backend numpyro|pyro] [--method sgld] [--num-samples S]
              [--num-chains C] [--seed K] [--out FILE.nc] ...

``ppzoo run`` with no arguments runs the default job: SGLD on Bayesian
logistic regression of the bundled breast-cancer data (NumPyro backend),
prints ``az.summary`` of a few parameters and writes the InferenceData to
``ppzoo-run.nc``. Bad arguments end with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings

__all__ = ["main", "write_netcdf"]

#: models the command line can run: name -> module in ppzoo.models
MODELS = {"logistic_regression": "logistic_regression"}


def write_netcdf(idata, path: str) -> None:
    """Write ``idata`` to ``path`` via a temporary file in the same folder, renamed at the end,
    so an interrupted write never leaves a half-written file under ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".ppzoo-", suffix=".nc.tmp", dir=folder)
    os.close(fd)
    try:
        idata.to_netcdf(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """Usage errors end with one line on stderr and exit status 2."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _parser():
    from ppzoo.inference import SAMPLERS

    parser = _Parser(prog="ppzoo", description="Sample Pyro and NumPyro models with stochastic-gradient Langevin dynamics.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="sample a zoo model and write its InferenceData (netCDF)")
    run.add_argument("model", nargs="?", default="logistic_regression", help="zoo model (default: logistic_regression on the breast-cancer data)")
    run.add_argument("--backend", choices=["numpyro", "pyro"], default="numpyro", help="PPL that runs the model (default: numpyro)")
    run.add_argument("--method", choices=sorted(SAMPLERS), default="sgld", help="sampler (default: sgld)")
    run.add_argument("--num-samples", type=_positive_int, default=1000, help="draws kept per chain (default: 1000)")
    run.add_argument("--num-warmup", type=int, default=20000, help="steps discarded first (default: 20000)")
    run.add_argument("--thinning", type=_positive_int, default=50, help="keep every k-th step (default: 50)")
    run.add_argument("--num-chains", type=_positive_int, default=4, help="chains (default: 4)")
    run.add_argument("--step-size", type=float, default=None, help="Langevin step h (default: from the curvature)")
    run.add_argument("--batch-size", type=_positive_int, default=None, help="minibatch size (default: ceil(sqrt(N)))")
    run.add_argument("--inner-loop", type=_positive_int, default=None, help="svrg-ld / sarah-ld: steps between full gradients (default: ceil(sqrt(N)))")
    run.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    run.add_argument("--device", default=None, help="device, e.g. cpu or cuda (default: the backend's default)")
    run.add_argument("--out", default="ppzoo-run.nc", help="netCDF file to write (default: ppzoo-run.nc)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _run(opts) -> int:
    import importlib

    import arviz as az

    import ppzoo

    if opts.model not in MODELS:
        raise ValueError(f"unknown model {opts.model!r}; known models: {', '.join(sorted(MODELS))}")
    entry = importlib.import_module(f"ppzoo.models.{MODELS[opts.model]}")
    args, kwargs = entry.load_data()
    model = entry.numpyro_model if opts.backend == "numpyro" else entry.pyro_model
    idata = ppzoo.sample(
        model,
        *args,
        method=opts.method,
        num_samples=opts.num_samples,
        num_warmup=opts.num_warmup,
        num_chains=opts.num_chains,
        thinning=opts.thinning,
        step_size=opts.step_size,
        batch_size=opts.batch_size,
        inner_loop=opts.inner_loop,
        seed=opts.seed,
        device=opts.device,
        backend=opts.backend,
        progress_bar=not opts.no_progress,
        **kwargs,
    )
    summary = az.summary(idata, var_names=list(idata.posterior.data_vars)[:2], kind="all")
    print(summary.head(8).to_string())
    stats = idata.sample_stats
    print(
        f"\n{opts.method} on {opts.model} ({opts.backend}): {idata.posterior.sizes['chain']} chains x "
        f"{idata.posterior.sizes['draw']} draws, step size {float(stats.step_size[0, -1]):.3g}, "
        f"{int(stats.grad_evals[:, -1].sum()):,} per-datum gradient evaluations, "
        f"{int(stats.diverging.sum())} divergent draws"
    )
    write_netcdf(idata, opts.out)
    print(f"wrote {opts.out}")
    return 0


def main(argv=None) -> int:
    opts = _parser().parse_args(argv)
    warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor.*")
    try:
        if opts.command == "run":
            return _run(opts)
    except (ValueError, TypeError, OSError, FloatingPointError) as err:
        print(f"ppzoo: error: {err}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
