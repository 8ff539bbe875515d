"""The ``ppzoo`` command line.

    ppzoo list
    ppzoo run [MODEL] [--backend numpyro|pyro] [--method sgld|svrg-ld|sarah-ld|sgld-cv|psgld]
              [--num-samples S] [--num-chains C] [--seed K] [--device D] [--out FILE.nc]
              [--no-predictive] ...
    ppzoo fit MODEL [--backend numpyro|pyro] [--objective elbo|iwae] [--num-particles K]
              [--estimator reparam|stl|dreg] [--guide normal|mvn|laplace]
              [--decoder mlp|inverse_lipschitz|bi_lipschitz] [--constant C] [--kl-anneal STEPS]
              [--num-steps T] [--out FILE.nc] ...
    ppzoo summary FILE.nc
    ppzoo compare A.nc B.nc ...
    ppzoo plot FILE.nc --kind trace|posterior|rank|pair|forest|ppc|images|collapse --out FILE.png

``ppzoo run`` with no arguments runs the default job: SGLD-CV on Bayesian
logistic regression of the bundled breast-cancer data (NumPyro backend),
prints ArviZ's summary of a few parameters and writes the result (an
``xarray.DataTree`` under ArviZ 1.x, an ``InferenceData`` under 0.23; the
file reads under either), with its posterior predictive (``ppzoo.predict``;
``--no-predictive`` leaves it out), to ``ppzoo-run.nc``. Settings left unset take the zoo entry's defaults
(``ModelSpec.sampler_defaults``). ``ppzoo fit NAME`` fits any entry with
``ppzoo.fit`` (:mod:`ppzoo.zoo_fit`) and writes ``ppzoo-fit.nc``. Bad arguments end with one line on stderr
and exit status 2; ``--out`` is checked writable, and its folder checked to
have the free space the result will take (with the checkpoint's, on the same
disk), before the run starts. A result that cannot be written there (a full
disk) goes to a new file in the current folder, else the home folder, else
the system's temporary folder, named on stderr (exit status 1); where none
takes it, stderr says so and the exit status is 1. A run stopped by Ctrl-C
writes what it drew and exits with status 130. ``ppzoo --version`` prints the
version.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings

from ppzoo._version import __version__
from ppzoo.files import (
    check_writable,
    netcdf_image,
    temporary_beside,
    write_netcdf,
    writing_result_to,
)

__all__ = ["main", "write_netcdf", "check_writable"]

#: what ``ppzoo run`` uses where neither the user nor the zoo entry says
RUN_DEFAULTS = {"method": "sgld-cv", "num_warmup": 20000, "thinning": 50, "num_samples": 1000}
#: ``ppzoo plot``'s kinds for a deep entry's fit result (``ppzoo fit``): image grids, collapse diagnostics
FIT_PLOT_KINDS = ("images", "collapse")
#: ``ppzoo run``'s defaults for options a resumed run takes from its checkpoint (``None`` on the
#: parser, so that ``--resume`` can tell a given option from a default)
RUN_OPTION_DEFAULTS = {"backend": "numpyro", "num_chains": 4, "seed": 0}


def _fallback_folders(path) -> list[str]:
    """Where a result goes when ``path`` cannot be written, in order: the current folder, the home
    folder, the system's temporary folder (each once, ``path``'s own folder left out)."""
    folders = []
    for folder in (os.getcwd, lambda: os.path.expanduser("~"), tempfile.gettempdir):
        try:
            folder = os.path.realpath(folder())
        except (OSError, RuntimeError):  # a current folder gone; no home
            continue
        if folder not in folders and os.path.isdir(folder):
            folders.append(folder)
    own = os.path.dirname(os.path.realpath(path))
    return [f for f in folders if f != own] or folders


def _write_elsewhere(idata, image, path, err) -> int:
    """``idata`` (its file's bytes ``image``), which could not be written to ``path`` (``err``),
    written to a new file in the first of :func:`_fallback_folders` that takes it, said on
    stderr; exit status 1 either way."""
    reason = _reason(err)
    stem = os.path.splitext(os.path.basename(path))[0] or "ppzoo-run"
    failures = []
    for folder in _fallback_folders(path):
        fallback = None
        try:
            fd, fallback = tempfile.mkstemp(prefix=f"{stem}-", suffix=".nc", dir=folder)
            os.close(fd)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(fallback, 0o666 & ~umask)  # as a plain open makes it, not mkstemp's private mode
            write_netcdf(idata, fallback, image=image)
        except OSError as failure:
            if fallback is not None and os.path.exists(fallback):
                os.remove(fallback)  # no empty file left behind
            failures.append(f"{folder} ({_reason(failure)})")
            continue
        print(f"ppzoo: error: could not write {path} ({reason}); the result is in {fallback}", file=sys.stderr)
        return 1
    print(f"ppzoo: error: could not write {path} ({reason}), nor a copy in {'; '.join(failures) or 'any folder'}: "
          "the result is not saved. Free some space and run again, or give --out a file on another disk",
          file=sys.stderr)
    return 1


def _reason(err) -> str:
    """An ``OSError`` in one line: its words (``No space left on device``), else its text."""
    return err.strerror if getattr(err, "strerror", None) else " ".join(str(err).split())


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """Usage errors end with one line on stderr and exit status 2; an option must be spelt out
    (argparse would read ``--num-sample`` as ``--num-samples`` without a word)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _parser():
    from ppzoo.diagnostics.arviz_compat import PLOT_KINDS, SUMMARY_INTERVAL
    from ppzoo.inference import SAMPLERS
    from ppzoo.models.registry import AUTOGUIDES

    # argparse formats help texts with %: a literal percent sign is written %%
    interval = f"{100 * SUMMARY_INTERVAL[1]:.0f}%% {SUMMARY_INTERVAL[0].upper()}"

    parser = _Parser(prog="ppzoo", description="Sample Pyro and NumPyro models with stochastic-gradient Langevin dynamics.")
    parser.add_argument("--version", action="version", version=f"ppzoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the zoo's models: kind, backends, data, N, latent dimensions")
    run = sub.add_parser("run", help="sample a zoo model and write its ArviZ result (netCDF)")
    run.add_argument("model", nargs="?", default="logistic_regression", help="zoo model (default: logistic_regression on the breast-cancer data)")
    run.add_argument("--backend", choices=["numpyro", "pyro"], default=None, help="PPL that runs the model (default: numpyro)")
    run.add_argument("--method", choices=sorted(SAMPLERS), default=None, help="sampler (default: the entry's, else sgld)")
    run.add_argument("--num-samples", type=_positive_int, default=None, help="draws kept per chain (default: the entry's, else 1000)")
    run.add_argument("--num-warmup", type=int, default=None, help="steps discarded first (default: the entry's, else 20000)")
    run.add_argument("--thinning", type=_positive_int, default=None, help="keep every k-th step (default: the entry's, else 50)")
    run.add_argument("--num-chains", type=_positive_int, default=None, help="chains (default: 4)")
    run.add_argument("--step-size", type=float, default=None, help="Langevin step h (default: from the curvature)")
    run.add_argument("--batch-size", type=_positive_int, default=None, help="minibatch size (default: the entry's, else max(ceil(sqrt(N)), 256) capped at N)")
    run.add_argument("--inner-loop", type=_positive_int, default=None, help="svrg-ld / sarah-ld: steps between full gradients (default: ceil(sqrt(N)))")
    run.add_argument("--seed", type=int, default=None, help="random seed (default: 0)")
    run.add_argument("--device", default=None, help="device, e.g. cpu or cuda (default: the backend's default)")
    run.add_argument("--out", default="ppzoo-run.nc", help="netCDF file to write (default: ppzoo-run.nc)")
    run.add_argument("--no-adapt", action="store_true", help="no warmup adaptation of the step size and preconditioner")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument("--checkpoint", default=None, metavar="FILE", help="write the run's state and draws here as it goes (netCDF)")
    run.add_argument("--checkpoint-every", type=_positive_int, default=None, metavar="K", help="draws between checkpoints (default: a tenth of the draws)")
    run.add_argument("--resume", default=None, metavar="FILE", help="continue the run of this checkpoint (it goes on writing there); sampler settings come from it")
    run.add_argument("--no-predictive", action="store_true", help="leave out the posterior predictive (ppzoo.predict)")
    fit = sub.add_parser("fit", help="fit a zoo model by SVI (ppzoo.fit) and write its ArviZ result (netCDF)")
    fit.add_argument("model", help="zoo model (ppzoo list): a sampled one with an autoguide, a deep one with its encoder")
    fit.add_argument("--backend", choices=["numpyro", "pyro"], default="numpyro", help="PPL (default: numpyro)")
    fit.add_argument("--objective", choices=["elbo", "iwae"], default=None, help="objective (default: the entry's, else elbo)")
    fit.add_argument("--num-particles", type=_positive_int, default=None, help="particles K per step (IWAE's K; default: the entry's, else 1)")
    fit.add_argument("--estimator", choices=["reparam", "stl", "dreg"], default=None, help="gradient estimator (default: reparam; dreg for iwae only)")
    fit.add_argument("--guide", choices=sorted(AUTOGUIDES), default="normal", help="sampled entries: the PPL's "
                     "autoguide (normal: AutoNormal, mvn: AutoMultivariateNormal, laplace: AutoLaplaceApproximation)")
    fit.add_argument("--decoder", choices=["mlp", "inverse_lipschitz", "bi_lipschitz"], default=None,
                     help="deep entries: the decoder (default: the entry's)")
    fit.add_argument("--constant", type=float, default=None, help="deep entries, inverse_lipschitz decoder: its constant c (default 1)")
    fit.add_argument("--latent-dim", type=_positive_int, default=None, help="deep entries: latent dimensions (default: the entry's, 10)")
    fit.add_argument("--kl-anneal", type=_positive_int, default=None, metavar="STEPS",
                     help="deep entries: warm the KL term's weight up linearly to 1 over STEPS steps (ELBO)")
    fit.add_argument("--num-steps", type=_positive_int, default=None, help="optimisation steps (default: the entry's; "
                     "sampled entries: until the fit converges)")
    fit.add_argument("--batch-size", type=_positive_int, default=None, help="minibatch size (default: the entry's, else all data)")
    fit.add_argument("--learning-rate", type=float, default=None, help="Adam's learning rate (default: the entry's, "
                     "else ppzoo.fit's schedule from 1e-2)")
    fit.add_argument("--num-draws", type=_positive_int, default=None, help="posterior draws in the result "
                     "(default: 1000; deep entries 100)")
    fit.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    fit.add_argument("--device", default=None, help="device, e.g. cpu or cuda (default: the backend's default)")
    fit.add_argument("--out", default="ppzoo-fit.nc", help="netCDF file to write (default: ppzoo-fit.nc)")
    fit.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    summary = sub.add_parser(
        "summary", help=f"ArviZ's summary of a run (mean, sd, {interval}, ESS, R-hat, MCSE), its gradient evaluations and divergences"
    )
    summary.add_argument("file", help="netCDF file of a run (ArviZ 1.x or 0.23)")
    compare = sub.add_parser("compare", help="ArviZ's comparison of runs by PSIS-LOO")
    compare.add_argument("files", nargs="+", help="two or more netCDF files of runs with log_likelihood")
    plot = sub.add_parser("plot", help="an ArviZ plot of a run, saved as an image")
    plot.add_argument("file", help="netCDF file of a run (ArviZ 1.x or 0.23)")
    plot.add_argument("--kind", choices=PLOT_KINDS + FIT_PLOT_KINDS, default="trace", help="plot (default: trace; "
                      "under ArviZ 1.x: plot_trace_dist, plot_dist, plot_rank, plot_pair, plot_forest, plot_ppc_dist; "
                      "images and collapse: a deep entry's fit, as ppzoo fit writes it)")
    plot.add_argument("--var-names", nargs="+", default=None, help="variables to plot (default: all, or the first few for pair)")
    plot.add_argument("--out", required=True, help="image file to write (.png, .pdf, .svg)")
    return parser


def _load(path):
    from ppzoo.diagnostics import arviz_compat

    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    try:
        idata = arviz_compat.from_netcdf(path)
    except Exception as err:  # netCDF / HDF5 readers raise many types
        raise ValueError(f"{path}: not a readable netCDF file ({type(err).__name__}: {err})") from None
    if not arviz_compat.has_group(idata, "posterior"):
        raise ValueError(f"{path}: not an ArviZ file with a posterior group")
    return idata


def _list(opts) -> int:
    import importlib.util
    import json
    import pathlib

    # the catalog the zoo keeps (models/references/catalog.json), read without importing a PPL
    where = importlib.util.find_spec("ppzoo.models").submodule_search_locations[0]
    folder = pathlib.Path(where)
    entries = json.loads((folder / "references" / "catalog.json").read_text())
    rows = [("name", "kind", "backends", "data", "N", "latent dims", "description")]
    rows += [(e["name"], e["kind"], ", ".join(e["backends"]), e["data"], str(e["N"]),
              str(e["dim"]) + (" per datum" if e["kind"] == "deep" else ""), e["description"]) for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print("\nppzoo run NAME samples a sampled entry; ppzoo fit NAME fits any entry")
    # a module added since the catalog was made is an entry this list does not show yet
    listed = {e.get("module") for e in entries}
    new = sorted(p.stem for p in folder.glob("*.py") if p.stem not in listed and p.stem not in ("__init__", "registry"))
    if new:
        print(f"note: {', '.join(p + '.py' for p in new)} not in the catalog yet: "
              "python models/references/make_references.py NAME adds an entry's reference and lists it", file=sys.stderr)
    return 0


def _print_summary(idata, var_names=None, rows=None):
    from ppzoo.diagnostics import arviz_compat
    from ppzoo.diagnostics.convergence import quiet_arithmetic

    kind, prob = arviz_compat.SUMMARY_INTERVAL
    interval = f"{prob:.0%} {kind.upper()} in {', '.join(arviz_compat.SUMMARY_COLUMNS['stats'][2:])}"
    if "objective" in arviz_compat.get_group(idata, "posterior").attrs:
        # ppzoo.fit's draws are independent draws (from the guide, or resampled by importance
        # weight), not Markov chains: R-hat and a chain's ESS do not apply, PSIS k-hat does
        table = arviz_compat.summary(idata, var_names=var_names, kind="stats", round_to="none")
        print(f"{interval} (ArviZ {arviz_compat.ARVIZ_VERSION}); independent draws of a fit, not chains: "
              "no R-hat or ESS (PSIS k-hat below says how far to trust them)")
    else:
        with quiet_arithmetic():  # chains that do not move: the convergence report says so in words
            table = arviz_compat.summary(idata, var_names=var_names, round_to="none")
        print(f"{interval}; rank-normalised ESS and split R-hat (ArviZ {arviz_compat.ARVIZ_VERSION})")
    table = table if rows is None else table.head(rows)
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))


def _summary(opts) -> int:
    from ppzoo.diagnostics import arviz_compat

    idata = _load(opts.file)
    attrs = arviz_compat.get_group(idata, "posterior").attrs
    if "objective" in attrs:  # ppzoo.fit's result: no chains, so chain diagnostics say nothing
        _report_fit(idata)
        return 0
    _print_summary(idata)
    stats = arviz_compat.get_group(idata, "sample_stats") if arviz_compat.has_group(idata, "sample_stats") else None
    if stats is not None and "grad_evals" in stats:
        total = int(stats["grad_evals"].isel(draw=-1).sum())
        divergent = int(stats["diverging"].sum()) if "diverging" in stats else 0
        method = arviz_compat.get_group(idata, "posterior").attrs.get("method", "the sampler")
        print(f"\n{method}: {total:,} per-datum gradient evaluations in all, {divergent} divergent draws")
    aside = _chains_set_aside(idata)
    if aside:
        print(aside)
    _print_convergence(idata)
    return 0


def _chains_set_aside(idata) -> str | None:
    """What a run did with chains that diverged (``attrs["diverged_chains"]``), or ``None``: the
    result's summaries and divergence count are over the chains that stayed finite."""
    import json

    from ppzoo.diagnostics import arviz_compat

    recorded = arviz_compat.get_group(idata, "posterior").attrs.get("diverged_chains")
    if not recorded:
        return None
    diverged = json.loads(recorded)
    where = ", ".join(f"chain {d['chain']} at draw {d['draw']} (sampler step {d['step']})" for d in diverged)
    what = f"{len(diverged)} chain{'s' if len(diverged) > 1 else ''} diverged ({where}): a position or the log density stopped being finite"
    if arviz_compat.has_group(idata, "diverged_posterior"):
        return (f"WARNING: {what}; set aside in the diverged_posterior group, so the summaries, the "
                "divergence count and the convergence report above and below are over the other chains")
    return f"WARNING: {what}; no chain stayed finite, so these summaries are NaN"


def _print_fit(attrs) -> None:
    """The report of a ``Fit.to_arviz`` result: the fit, what its draws are, and PSIS k-hat (per
    datum: its distribution over the data)."""
    import json

    from ppzoo.diagnostics.svi import KHAT_THRESHOLD, describe_khat

    verdict = {1: "converged", 0: "not converged"}.get(attrs.get("converged"), "convergence not judged")
    print(f"\n{attrs['objective']} ({attrs.get('backend', '?')}): "
          f"{int(attrs.get('num_steps', 0)):,} steps, "
          f"final loss {float(attrs.get('final_loss', float('nan'))):.6g}, {verdict}"
          + (f"; stopped early: {attrs['stop_reason']}" if attrs.get("stop_reason") else ""))
    if "refinement" in attrs:
        refinement = json.loads(attrs["refinement"])
        print(f"judged on the parameters: refined on {refinement['replicates']} fixed samples of "
              f"{refinement['particles']:,} draws; worst estimated error {refinement['mean_error']:.3f} sd in a "
              f"mean, {100 * refinement['sd_error']:.1f}% in an sd (tolerances 0.05 sd, 5%)")
    elif "loss_trend" in attrs:
        trend = json.loads(attrs["loss_trend"])
        print(f"judged on the loss alone ({attrs.get('not_refined') or 'not refined'}): it fell by "
              f"{trend['improvement']:.3g} ± {trend['standard_error']:.2g} nats over its last {trend['window']:,} steps")
    if "draws" in attrs:
        print(f"draws ({attrs['draws']}): {attrs.get('draws_note', '')}")
    if "psis" not in attrs:
        from ppzoo.diagnostics.svi import PSIS_MIN_DRAWS

        print(f"no PSIS k-hat: it needs at least {PSIS_MIN_DRAWS} draws of a guide with a density "
              "(not a point mass); nothing here says how far to trust these draws")
        return
    summary = json.loads(attrs["psis"])
    print(describe_khat(summary, attrs.get("pool_size")))
    if summary["khat_max"] > KHAT_THRESHOLD:
        print(f"WARNING: PSIS k-hat above {KHAT_THRESHOLD}: importance sampling from the guide is "
              "not to be trusted" + (" for some data" if summary["groups"] > 1 else ""))


def _print_convergence(idata) -> None:
    """The run's convergence report (stored by ``ppzoo.sample``, else computed now)."""
    from ppzoo.diagnostics import arviz_compat, convergence

    report, found = convergence.assess(idata, convergence.stored_report(idata))
    num_chains = int(arviz_compat.get_group(idata, "posterior").sizes["chain"])
    print(
        f"\nconvergence ({num_chains} chains): max R-hat {report['r_hat'].max():.3f}, "
        f"min bulk ESS {report['ess_bulk'].min():.0f}, min tail ESS {report['ess_tail'].min():.0f}"
    )
    if found:
        print("WARNING: the chains may not have converged: " + "; ".join(found))
    else:
        print(f"R-hat <= {convergence.RHAT_MAX} and ESS >= {convergence.ESS_PER_CHAIN} per chain for every parameter")


def _compare(opts) -> int:
    from ppzoo.diagnostics import arviz_compat

    if len(opts.files) < 2:
        raise ValueError("compare needs at least two files")
    runs = {}
    for path in opts.files:
        idata = _load(path)
        if not arviz_compat.has_group(idata, "log_likelihood"):
            raise ValueError(f"{path}: has no log_likelihood group, so PSIS-LOO cannot be computed")
        name = os.path.splitext(os.path.basename(path))[0]
        runs[name if name not in runs else path] = idata
    print(arviz_compat.compare(runs).to_string())
    return 0


def _plot(opts) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from ppzoo.diagnostics import arviz_compat

    idata = _load(opts.file)
    check_writable(opts.out)
    if opts.kind in FIT_PLOT_KINDS:
        group = "images" if opts.kind == "images" else "collapse"
        if not arviz_compat.has_group(idata, group):
            raise ValueError(f"--kind {opts.kind}: {opts.file} has no {group} group (ppzoo fit writes it for deep entries)")
        if opts.var_names:
            raise ValueError(f"--var-names: --kind {opts.kind} draws the whole {group} group")
    plotted = "posterior_predictive" if opts.kind == "ppc" else "posterior"
    if not arviz_compat.has_group(idata, plotted) or (opts.kind == "ppc" and not arviz_compat.has_group(idata, "observed_data")):
        raise ValueError(f"--kind ppc: {opts.file} has no posterior_predictive and observed_data groups "
                         "(ppzoo run writes them unless --no-predictive; ppzoo.predict adds them)")
    posterior = arviz_compat.get_group(idata, plotted)
    var_names = opts.var_names
    if var_names:
        missing = sorted(set(var_names) - set(posterior.data_vars))
        if missing:
            raise ValueError(f"--var-names {missing} not in the {plotted} group; it has {sorted(posterior.data_vars)}")
    elif opts.kind == "pair":
        var_names = list(posterior.data_vars)[:2]
    folder = os.path.dirname(os.path.abspath(opts.out))
    if not os.path.isdir(folder):
        raise ValueError(f"--out {opts.out}: folder {folder} does not exist")
    suffix = os.path.splitext(opts.out)[1] or ".png"
    tmp = temporary_beside(opts.out, suffix)
    try:
        if opts.kind == "images":
            from ppzoo.zoo_fit import plot_images

            plot_images(idata, tmp)
        elif opts.kind == "collapse":
            _plot_collapse(idata, tmp)
        else:
            arviz_compat.plot(idata, opts.kind, tmp, var_names=var_names)
        os.replace(tmp, opts.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"wrote {opts.out}")
    return 0


def _plot_collapse(idata, path) -> None:
    import matplotlib.pyplot as plt

    from ppzoo.diagnostics.collapse import plot_collapse

    try:
        ax = plot_collapse(idata)
        ax.get_figure().savefig(path, dpi=100, bbox_inches="tight")
    finally:
        plt.close("all")


def _run(opts) -> int:
    import ppzoo
    from ppzoo import models
    from ppzoo.diagnostics import arviz_compat

    if opts.resume is not None:
        if opts.checkpoint is not None:
            raise ValueError("--checkpoint: a resumed run goes on writing the checkpoint it resumes (--resume)")
        fixed = {"--method": opts.method, "--num-warmup": opts.num_warmup, "--thinning": opts.thinning,
                 "--step-size": opts.step_size, "--batch-size": opts.batch_size, "--inner-loop": opts.inner_loop,
                 "--no-adapt": opts.no_adapt or None, "--num-chains": opts.num_chains, "--seed": opts.seed,
                 "--backend": opts.backend}
        given = [name for name, value in fixed.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: a resumed run keeps the settings it was started with, "
                             "taken from the checkpoint (--resume takes --num-samples, --checkpoint-every, "
                             "--device and --out)")
        if not os.path.isfile(opts.resume):
            raise OSError(f"--resume {opts.resume}: no such file")
    else:
        for name, default in RUN_OPTION_DEFAULTS.items():
            setattr(opts, name, default if getattr(opts, name) is None else getattr(opts, name))
    check_writable(opts.out)
    # the free-space check before the run counts the result's file too
    result_file = writing_result_to(opts.out, "--out", "--resume" if opts.resume is not None else "--checkpoint")
    if opts.resume is not None:
        from ppzoo.checkpoint import read_checkpoint

        run_settings = read_checkpoint(opts.resume)[2]
        with result_file:
            idata = ppzoo.resume(opts.resume, num_samples=opts.num_samples, checkpoint_every=opts.checkpoint_every,
                                 progress_bar=not opts.no_progress, device=opts.device)
        settings = {"method": arviz_compat.get_group(idata, "posterior").attrs["method"]}
        opts.backend = run_settings["backend"]
        opts.model = (run_settings.get("model_module") or opts.model).rsplit(".", 1)[-1]
    else:
        spec = models.get(opts.model)
        if spec.kind != "sampled":
            raise ValueError(f"model {opts.model!r} is a deep entry: its networks are fitted, not sampled; "
                             f"ppzoo fit {opts.model} fits it")
        args, kwargs = spec.load_data()
        settings = {**RUN_DEFAULTS, **spec.sampler_defaults}
        given = {
            "method": opts.method, "num_samples": opts.num_samples, "num_warmup": opts.num_warmup,
            "thinning": opts.thinning, "step_size": opts.step_size, "batch_size": opts.batch_size,
            "inner_loop": opts.inner_loop,
        }
        settings.update({k: v for k, v in given.items() if v is not None})
        if not isinstance(settings["method"], str):  # the entry's kernel object: the options go into it
            import dataclasses

            folded = {k: settings.pop(k) for k in ("step_size", "batch_size", "inner_loop") if k in settings}
            settings["method"] = dataclasses.replace(settings["method"], **folded)
        with result_file:
            idata = ppzoo.sample(
                spec.model(opts.backend),
                *args,
                num_chains=opts.num_chains,
                adapt=not opts.no_adapt,
                **settings,
                seed=opts.seed,
                device=opts.device,
                backend=opts.backend,
                progress_bar=not opts.no_progress,
                checkpoint=opts.checkpoint,
                checkpoint_every=opts.checkpoint_every,
                **kwargs,
            )
    posterior = arviz_compat.get_group(idata, "posterior")
    predictive_stopped = False
    if posterior.sizes["draw"] and not opts.no_predictive and not posterior.attrs.get("stopped_in"):
        if opts.resume is not None:
            spec = models.get(opts.model)
            args, kwargs = spec.load_data()
        # the draws are what the run is for: a predictive that fails or is stopped leaves them to be written
        try:
            ppzoo.predict(idata, spec.model(opts.backend), *args, seed=opts.seed or 0, **kwargs)
        except KeyboardInterrupt:
            predictive_stopped = True
            print("ppzoo: interrupted during the posterior predictive; the result is written without it",
                  file=sys.stderr)
        except Exception as err:  # noqa: BLE001 - said, and the draws are kept
            print(f"ppzoo: the posterior predictive was not added ({type(err).__name__}: {err}); "
                  "the result is written without it (ppzoo.predict adds it later)", file=sys.stderr)
    if posterior.sizes["draw"]:
        _print_summary(idata, var_names=list(posterior.data_vars)[:2], rows=8)
        stats = arviz_compat.get_group(idata, "sample_stats")
        print(
            f"\n{settings['method']} on {opts.model} ({opts.backend}): {posterior.sizes['chain']} chains x "
            f"{posterior.sizes['draw']} draws, step size {float(stats.step_size[0, -1]):.3g}, "
            f"{int(stats.grad_evals[:, -1].sum()):,} per-datum gradient evaluations, "
            f"{int(stats.diverging.sum())} divergent draws"
        )
        aside = _chains_set_aside(idata)
        if aside:
            print(aside)
        _print_convergence(idata)
    try:
        image = netcdf_image(idata)  # built once for every place it is written to
    except MemoryError:
        image = None  # written by HDF5 itself
    try:
        write_netcdf(idata, opts.out, image=image)
    except OSError as err:
        return _write_elsewhere(idata, image, opts.out, err)
    print(f"wrote {opts.out}")
    if predictive_stopped:
        return 130
    if posterior.attrs.get("stopped_in"):
        print(f"ppzoo: interrupted during {posterior.attrs['stopped_in']}; {opts.out} holds the "
              f"{posterior.sizes['draw']} draws per chain made before it stopped", file=sys.stderr)
        return 130
    return 0


def _fit(opts) -> int:
    from ppzoo import models, zoo_fit

    spec = models.get(opts.model)
    check_writable(opts.out)
    program_options = {"decoder": opts.decoder, "constant": opts.constant, "latent_dim": opts.latent_dim}
    if opts.constant is not None and (opts.decoder or spec.program_options.get("decoder")) != "inverse_lipschitz":
        raise ValueError("--constant is the inverse_lipschitz decoder's constant; "
                         f"{opts.model!r} here has decoder {opts.decoder or spec.program_options.get('decoder')!r}")
    fit_options = {"objective": opts.objective, "num_particles": opts.num_particles, "estimator": opts.estimator,
                   "num_steps": opts.num_steps, "batch_size": opts.batch_size, "learning_rate": opts.learning_rate,
                   "kl_anneal": opts.kl_anneal}
    if opts.estimator == "dreg" and (opts.objective or spec.fit_defaults.get("objective", "elbo")) != "iwae":
        raise ValueError("--estimator dreg is an estimator of the IWAE bound's gradient: give --objective iwae")
    result_file = writing_result_to(opts.out, "--out")
    with result_file:
        fit, result = zoo_fit.fit_entry(spec, opts.backend, guide=opts.guide, program_options=program_options,
                                        fit_options=fit_options, num_draws=opts.num_draws, seed=opts.seed,
                                        device=opts.device, progress_bar=not opts.no_progress)
    _report_fit(result)
    image = netcdf_image(result)
    try:
        write_netcdf(result, opts.out, image=image)
    except OSError as err:  # a full disk: the fit goes to a file elsewhere, as a run's does
        return _write_elsewhere(result, image, opts.out, err)
    print(f"wrote {opts.out}")
    return 0


def _report_fit(result) -> None:
    """What ``ppzoo fit`` and ``ppzoo summary`` print of a fit result: the table of its draws (not of
    a deep entry's per-datum latents), the fit's report, and a deep entry's collapse diagnostics."""
    from ppzoo.diagnostics import arviz_compat

    posterior = arviz_compat.get_group(result, "posterior")
    if arviz_compat.has_group(result, "collapse"):
        shapes = ", ".join(f"{name} {tuple(posterior[name].shape[2:])}" for name in posterior.data_vars)
        print(f"per-datum latents ({shapes}, {posterior.sizes['draw']} draws each): not tabulated")
    else:
        _print_summary(result, rows=12)
    _print_fit(posterior.attrs)
    if arviz_compat.has_group(result, "collapse"):
        _print_collapse(arviz_compat.get_group(result, "collapse"))


def _print_collapse(group) -> None:
    from ppzoo.diagnostics.collapse import CollapseReport

    report = CollapseReport.from_dataset(group)
    kl = " ".join(f"{v:.2f}" for v in report.kl)
    print(f"\nposterior collapse ({report.site}): {report.active_units} of {len(report.kl)} latent dimensions active "
          f"(Var_x E_q[z_j] > {report.threshold:g}); rate {report.rate:.3g} nats, distortion {report.distortion:.4g} "
          f"nats, I(x; z) {report.mutual_information:.3g} nats")
    print(f"KL to the prior per latent dimension (nats): {kl}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # the parser's choices come from the samplers and ArviZ (seconds of imports): these two need neither
    if argv == ["list"]:
        return _list(None)
    if argv == ["--version"]:
        print(f"ppzoo {__version__}")
        return 0
    opts = _parser().parse_args(argv)
    warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor.*")
    commands = {"list": _list, "run": _run, "fit": _fit, "summary": _summary, "compare": _compare, "plot": _plot}
    try:
        return commands[opts.command](opts)
    except (ValueError, TypeError, OSError, FloatingPointError) as err:
        print(f"ppzoo: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ppzoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
