"""Checkpoints of a sampling run, and resuming from one.

``ppzoo.sample(..., checkpoint="run.nc", checkpoint_every=k)`` writes, at the end of
warmup and then every ``k`` kept draws (and after the last), one netCDF file, atomically
(:func:`ppzoo.files.write_netcdf`): an ArviZ result of the draws so far (``posterior``,
``sample_stats``, ``observed_data``, no log-likelihood), readable by ``az.from_netcdf``, plus
a ``sampler_state`` group that holds what the draws to come depend on:

- the kernel state's fields (``state__<field>``: positions, step counters, SGLD-CV's
  centre and its gradient, SVRG-LD's snapshot, ...), in their dtypes;
- the random state (``rng``: JAX's key, or torch's generator state);
- the tuning (``tuning__step_size``, ``tuning__decay``, ``tuning__inverse_mass``,
  ``tuning__factor``) and the preconditioner warmup chose;
- the kept draws in unconstrained space with their stats (``kept__*``) and the work
  spent per chain before them (``spent``);
- in its attrs (JSON): the bound kernel's class and settings, the run's settings
  (backend, data plate, seed, chains, warmup, thinning, the draws wanted and made), the
  model's module and name, a SHA-256 of the data (and of each argument, with how the arguments
  were passed: :func:`call_record`), and the program's sample sites (their names, shapes,
  distributions, whether observed, and plates: :func:`ppzoo.backends.signature.program_signature`).

:func:`resume` rebuilds the backend from the model and data (given, or, for a zoo entry, its
own), takes the data as the run passed them (positional or keyword), checks that the data, the
program and the unconstrained layout are those of the checkpoint (saying what differs), and
continues the run in the blocks the uninterrupted run takes: the same seed gives the same draws
(tested on both backends). Set-up and warmup are not repeated; a run interrupted before
warmup ended has no checkpoint to resume from. A file that cannot be read as a checkpoint
(truncated, corrupt, or not one) raises :class:`CheckpointError`, naming the file.

A run whose checkpoints would not fit in the free space of their folder is refused before it
starts (:func:`ppzoo.files.check_run_fits_on_disk`). A checkpoint that cannot be written during
the run (a disk that fills up) does not stop it: a ``RuntimeWarning`` names the file, the error
and the draws of the last good checkpoint, the next block tries again, and the run's result is
returned whole, its posterior's ``checkpoint_error`` attr saying why where the last try failed.
"""

from __future__ import annotations

import gc
import hashlib
import inspect
import json
import os
import sys
import warnings

import numpy as np

from ppzoo.diagnostics import arviz_compat

__all__ = ["Checkpointer", "CheckpointError", "resume", "data_fingerprint", "call_record"]

#: the group of a checkpoint file that holds the sampler state
STATE_GROUP = "sampler_state"
#: version of the file's layout
FORMAT = 1


class CheckpointError(ValueError):
    """The file is not a readable ppzoo checkpoint: truncated, corrupt, or another kind of file."""


def data_fingerprint(args, kwargs) -> str:
    """SHA-256 over every array-like argument's dtype, shape and bytes (in order)."""
    digest = hashlib.sha256()
    for key, value in [(str(i), a) for i, a in enumerate(args)] + sorted(kwargs.items()):
        if hasattr(value, "shape"):
            arr = np.ascontiguousarray(value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value))
            digest.update(f"{key}:{arr.dtype}:{arr.shape}".encode())
            digest.update(arr.tobytes())
        elif isinstance(value, (int, float, str, bool)) or value is None:
            digest.update(f"{key}={value!r}".encode())
    return digest.hexdigest()


def call_record(model, args, kwargs) -> dict:
    """How the run was called: the number of positional arguments, the keyword names, and a
    fingerprint (:func:`data_fingerprint`) per argument, named as in the program's signature
    (``"#k"`` for a positional one it does not name)."""
    names = _positional_names(model, len(args))
    fingerprints = {name: data_fingerprint((), {"value": value}) for name, value in zip(names, args)}
    fingerprints.update({name: data_fingerprint((), {"value": value}) for name, value in kwargs.items()})
    return {"positional": len(args), "keywords": sorted(kwargs), "arguments": fingerprints}


def _positional_names(model, count: int) -> list[str]:
    """The names of the program's first ``count`` positional parameters (``"#k"`` past them)."""
    try:
        parameters = [p for p in inspect.signature(model).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):  # a callable without a signature
        parameters = []
    return [parameters[k].name if k < len(parameters) else f"#{k}" for k in range(count)]


def _as_the_run_passed(model, args, kwargs, call: dict, checkpoint):
    """``(args, kwargs)`` rearranged to the run's own split between positional and keyword
    arguments (``model(x, y)`` for a run of ``model(x, y=y)``), so that its fingerprint and its
    ``batch_args`` mean what they meant; a ``ValueError`` saying how they differ where the
    program's signature cannot match them."""
    positional, keywords = call["positional"], list(call["keywords"])
    if len(args) == positional and sorted(kwargs) == keywords:
        return args, kwargs
    names = _positional_names(model, positional)
    try:
        bound = inspect.signature(model).bind(*args, **kwargs).arguments
    except (TypeError, ValueError):
        bound = None
    if bound is None or set(bound) != set(names) | set(keywords) or any(n.startswith("#") for n in names):
        raise ValueError(
            f"the arguments given to resume were passed differently from the run of checkpoint {checkpoint}: "
            f"it passed {_call_text(positional, keywords)}, resume got {_call_text(len(args), sorted(kwargs))}; "
            "pass them as the run did"
        )
    return tuple(bound[n] for n in names), {k: bound[k] for k in keywords}


def _call_text(positional: int, keywords: list) -> str:
    keyword_text = f"keywords {', '.join(keywords)}" if keywords else "no keywords"
    return f"{positional} positional argument{'s' if positional != 1 else ''} and {keyword_text}"


def _data_differ(model, args, kwargs, settings, checkpoint) -> str:
    """The message for data that differ from the run's, naming the arguments where the checkpoint
    has a fingerprint per argument."""
    message = f"the data given to resume differ from those checkpoint {checkpoint} was made with"
    saved = settings.get("call", {}).get("arguments")
    if saved:
        now = call_record(model, args, kwargs)["arguments"]
        differ = [name for name in saved if now.get(name) != saved[name]]
        if differ:
            message += f", in argument{'s' if len(differ) > 1 else ''} {', '.join(differ)}"
    return message + " (pass the same arguments as the run)"


class Checkpointer:
    """``on_block`` of :func:`~ppzoo.inference.sgmcmc.driver.run_chains` that writes ``path``
    at the end of warmup, every ``every`` draws and after the last.

    A write that fails (``OSError``: a full disk, a folder gone) does not stop the run: a
    ``RuntimeWarning`` names the file, the error and the draws the last good checkpoint holds, and
    the next block tries again (another warning when it succeeds, or when it fails again after
    that); the draws stay in memory and the run's result is whole (:meth:`note_failure`)."""

    def __init__(self, path, every: int, backend, settings: dict):
        self.path, self.every, self.backend, self.settings = str(path), int(every), backend, settings
        self.written = -1
        #: the last write's error, ``None`` while the writes succeed
        self.error = None

    def __call__(self, chains, kept, done, num_samples, thinning):
        due = not done or done >= num_samples or done - max(self.written, 0) >= self.every
        if not due and self.error is None:  # after a failed write every block tries again
            return
        try:
            self.write(chains, kept, done, num_samples, thinning)
        except OSError as err:
            if self.error is None:
                warnings.warn(f"checkpoint {self.path} could not be written ({_error_text(err)}); {self._last_good()}. "
                              "Sampling goes on, its draws are kept in memory and returned whole, and the "
                              "checkpoint is tried again after each block", RuntimeWarning, stacklevel=2)
            self.error = err
            return
        if self.error is not None:
            warnings.warn(f"checkpoint {self.path} is written again, with {done} draws per chain, after the "
                          f"error {_error_text(self.error)}", RuntimeWarning, stacklevel=2)
            self.error = None

    def _last_good(self) -> str:
        if self.written < 0:
            return "no checkpoint of this run has been written"
        return f"the last good checkpoint there holds {self.written} draws per chain"

    def note_failure(self, idata):
        """``idata`` with, where the last checkpoint write failed, the posterior's attr
        ``checkpoint_error`` (the error, and what the checkpoint file holds)."""
        if self.error is not None:
            # update_attrs writes the group itself (get_group gives a copy under ArviZ 1.x)
            arviz_compat.update_attrs(idata, {"checkpoint_error": (
                f"checkpoint {self.path} could not be written ({_error_text(self.error)}); {self._last_good()}")},
                groups=["posterior"])
        return idata

    def write(self, chains, kept, done, num_samples, thinning):
        from ppzoo.diagnostics import sampler_run_to_inference_data
        from ppzoo.files import write_netcdf
        from ppzoo.inference.sgmcmc.driver import collect_run

        run = collect_run(chains, self.backend, kept, self.settings["num_warmup"], thinning, False)
        idata = sampler_run_to_inference_data(run, self.backend, log_likelihood=False)
        arviz_compat.add_group(idata, STATE_GROUP, self._state(chains, kept, done, num_samples, thinning))
        write_netcdf(idata, self.path)
        self.written = done

    def _state(self, chains, kept, done, num_samples, thinning):
        import xarray as xr

        from ppzoo.inference.sgmcmc.chain_state import chains_record

        arrays, attrs = chains_record(chains, self.backend)
        if kept:
            arrays["kept__positions"] = np.concatenate([p for p, _ in kept], axis=0)
            for key in kept[0][1]:
                arrays[f"kept__{key}"] = np.concatenate([i[key] for _, i in kept], axis=0)
        attrs = {
            "format": FORMAT, **attrs,
            "run": json.dumps({**self.settings, "done": int(done), "num_samples": int(num_samples),
                               "thinning": int(thinning), "dim": int(self.backend.dim)}),
        }
        variables = {k: xr.DataArray(v, dims=[f"{k}_dim_{i}" for i in range(np.ndim(v))]) for k, v in arrays.items()}
        return xr.Dataset(variables, attrs=attrs)


#: the attrs of the state group, JSON each
_STATE_ATTRS = ("state_fields", "kernel_settings", "tuning", "chains", "run")


def read_checkpoint(path):
    """``(result, state Dataset, run settings)`` of a checkpoint file; a :class:`CheckpointError`
    for a file that cannot be read as one."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    idata = _read_netcdf(path)
    if not arviz_compat.has_group(idata, STATE_GROUP):
        raise CheckpointError(f"checkpoint {path} has no {STATE_GROUP} group: it is not a ppzoo checkpoint")
    state = arviz_compat.get_group(idata, STATE_GROUP)
    try:
        layout = int(state.attrs.get("format", 0))
        attrs = {name: json.loads(state.attrs[name]) for name in _STATE_ATTRS}
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(_unreadable(path, err)) from None
    if layout != FORMAT:
        raise CheckpointError(f"checkpoint {path} has layout {state.attrs.get('format')}; this ppzoo reads {FORMAT}")
    return idata, state, attrs["run"]


def _read_netcdf(path):
    """The ArviZ result in ``path``, read whole (so that a truncated variable fails here, not later);
    a :class:`CheckpointError` where the netCDF / HDF5 readers fail (they raise many types)."""
    # a file the HDF5 reader half-opened fails again in its destructor; that report would reach
    # the user as a traceback ("Exception ignored in ..."), so it is dropped while the reader is
    # freed (with the exception, at the end of the except block) and collected
    hook, sys.unraisablehook = sys.unraisablehook, lambda unraisable: None
    try:
        try:
            idata = arviz_compat.from_netcdf(str(path))
            for group in arviz_compat.group_names(idata):
                arviz_compat.get_group(idata, group).load()
            return idata
        except Exception as err:  # h5py, h5netcdf, xarray: OSError, KeyError, AttributeError, ...
            message = _unreadable(path, err)
        gc.collect()
    finally:
        sys.unraisablehook = hook
    raise CheckpointError(message)


def _error_text(err) -> str:
    """An ``OSError`` in words, on one line: ``[Errno 28] No space left on device`` and the file."""
    return " ".join(str(err).split())


def _unreadable(path, err) -> str:
    detail = " ".join(f"{type(err).__name__}: {err}".split())  # one line
    return f"{path} is not a readable ppzoo checkpoint: the file is truncated, corrupt or of another kind ({detail})"


def _restore_chains(state, backend):
    """The driver's chains as the checkpoint left them, on ``backend``, and the draws kept so far."""
    from ppzoo.inference.sgmcmc.chain_state import restore_chains

    arrays = {k: np.asarray(v.values) for k, v in state.data_vars.items()}
    chains = restore_chains(arrays, state.attrs, backend)
    kept = []
    if "kept__positions" in arrays:
        infos = {k[len("kept__"):]: v for k, v in arrays.items() if k.startswith("kept__") and k != "kept__positions"}
        kept.append((arrays["kept__positions"], infos))
    return chains, kept


def resume(checkpoint, model=None, *args, num_samples: int | None = None, checkpoint_every: int | None = None,
           progress_bar: bool = True, device=None, **kwargs):
    """Continue the run that wrote ``checkpoint`` and return its whole result.

    ``model(*args, **kwargs)`` must be the program and data the run sampled (their
    fingerprints are checked, and a difference is named); the data may be passed positionally or
    by keyword, whichever way the run passed them. For a zoo entry they may be left out. ``num_samples``: the
    draws per chain wanted in all (default: the run's own); with the run's own, the draws are
    those of the uninterrupted run. The run goes on writing ``checkpoint``. The result is what
    ``ppzoo.sample`` returns (its log-likelihood setting is the run's). A file that is not a
    readable checkpoint raises :class:`CheckpointError`. NumPy's and torch's global random
    states are left as they were.
    """
    from ppzoo.backends.global_rng import global_rng_kept

    with global_rng_kept():
        return _resume(checkpoint, model, args, kwargs, num_samples, checkpoint_every, progress_bar, device)


def _resume(checkpoint, model, args, kwargs, num_samples, checkpoint_every, progress_bar, device):
    """:func:`resume`, inside the global random states' guard."""
    from ppzoo.backends import make_backend
    from ppzoo.checks import check_count, check_draws_fit_in_memory, check_flag
    from ppzoo.files import check_run_fits_on_disk
    from ppzoo.inference import run_chains
    from ppzoo.inference.sgmcmc.driver import Resumed
    from ppzoo.sampler_result import finish_result

    check_flag("progress_bar", progress_bar)
    _, state, settings = read_checkpoint(checkpoint)
    if model is None:
        model, args, kwargs = _zoo_program(checkpoint, settings)
    if "call" in settings:  # a checkpoint that recorded how the run passed its arguments
        args, kwargs = _as_the_run_passed(model, args, kwargs, settings["call"], checkpoint)
    if data_fingerprint(args, kwargs) != settings["data"]:
        raise ValueError(_data_differ(model, args, kwargs, settings, checkpoint))
    num_samples = settings["num_samples"] if num_samples is None else num_samples
    check_count("num_samples", num_samples, 1)
    if num_samples < settings["done"]:
        raise ValueError(f"num_samples must be at least the {settings['done']} draws already made, got {num_samples}")
    backend = make_backend(model, args, kwargs, backend=settings["backend"], data_plate=settings["data_plate"],
                           device=device, batch_args=settings["batch_args"], jit_compile=settings["jit_compile"])
    _check_program(backend, settings, checkpoint)
    if backend.dim != settings["dim"]:
        raise ValueError(f"the model has {backend.dim} unconstrained dimensions, checkpoint {checkpoint} "
                         f"{settings['dim']}: it is not the program the run sampled")
    check_draws_fit_in_memory(settings["num_chains"], num_samples, backend.dim)
    try:
        chains, kept = _restore_chains(state, backend)
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # arrays or attrs missing or mangled
        raise CheckpointError(_unreadable(checkpoint, err)) from None
    writer = None
    if checkpoint_every is not None or settings.get("checkpoint_every"):
        every = checkpoint_every or settings["checkpoint_every"]
        check_count("checkpoint_every", every, 1)
        writer = Checkpointer(checkpoint, every, backend, {**settings, "checkpoint_every": every})
        writer.written = settings["done"]
    check_run_fits_on_disk(backend, settings["num_chains"], num_samples, settings["log_likelihood"],
                           None if writer is None else checkpoint)
    run = run_chains(
        chains.kernel, backend, num_samples=num_samples, num_warmup=settings["num_warmup"],
        num_chains=settings["num_chains"], thinning=settings["thinning"], seed=settings["seed"],
        progress_bar=progress_bar, on_block=writer,
        resume=Resumed(chains, kept, settings["done"], settings["thinning"]),
    )
    idata = finish_result(run, backend, settings["num_chains"], settings["log_likelihood"], stacklevel=5)
    return idata if writer is None else writer.note_failure(idata)


def _check_program(backend, settings, checkpoint) -> None:
    """A ``ValueError`` naming what differs between the program given to resume and the one the
    checkpoint recorded (checkpoints written before ppzoo recorded it are checked by dimension only)."""
    from ppzoo.backends.signature import program_signature, signature_differences

    if "program" not in settings:
        return
    differ = signature_differences(settings["program"], program_signature(backend))
    if differ:
        raise ValueError(f"the model given to resume is not the program checkpoint {checkpoint} was made with: "
                         + "; ".join(differ) + " (pass the program the run sampled)")


def _zoo_program(checkpoint, settings):
    from ppzoo import models

    module = settings.get("model_module") or ""
    entry = module.rsplit(".", 1)[-1]
    if module.rsplit(".", 1)[0] not in ("models", "ppzoo.models") or entry not in models.list_models():
        raise ValueError(
            f"checkpoint {checkpoint} was made from {module}.{settings.get('model_name')}, not a zoo entry: "
            "pass the model and its data, ppzoo.resume(checkpoint, model, *args, **kwargs)"
        )
    spec = models.get(entry)
    args, kwargs = spec.load_data()
    return spec.model(settings["backend"]), args, kwargs
