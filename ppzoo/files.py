"""Result files written whole or not at all: built in memory, written through a temporary file
beside the target, renamed into place, with the permissions a plain ``open`` would give.

The netCDF-4 file is built in memory (HDF5 writing into a buffer) and then written with plain file
I/O, so that a full disk is an ``OSError`` of that write and never reaches the HDF5 library. HDF5
writing to a disk that fills up fails with a ``RuntimeError`` or an ``OSError`` (depending on
which of its writes failed), prints "Exception ignored" reports from its objects' destructors, and
leaves its view of the file broken: its next call on the file, or h5netcdf's destructor closing
the file again, reads freed state and the process dies of a segmentation fault. The file in
memory costs a copy of the result's size while it is written. Where the installed xarray cannot
build the file in memory (before 2025.08), or there is no memory for the copy, HDF5 writes the
file itself, as before: a failure is then cleaned up as far as Python can
(:func:`_write_through_hdf5`), but HDF5 may still crash the process, and the free-space check
before the run is what keeps a full disk from reaching it.

Before a run, :func:`check_run_fits_on_disk` compares what its files will need with the free
space of their folders: ``ppzoo.sample``'s ``checkpoint``, and the file the command line writes
the result to (named by :func:`writing_result_to`).
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import inspect
import math
import os
import re
import stat
import sys
import tempfile

__all__ = ["write_netcdf", "netcdf_image", "check_writable", "check_run_fits_on_disk", "writing_result_to"]


def netcdf_image(idata):
    """The netCDF-4 file of ``idata`` (``DataTree`` or ``InferenceData``) built in memory, as a
    ``memoryview``: what :func:`ppzoo.diagnostics.arviz_compat.to_netcdf` writes (the groups, the
    attrs; under ArviZ 0.23 its zlib compression). ``None`` where the installed xarray writes
    netCDF-4 files only to a path."""
    import xarray as xr

    tree_class = getattr(xr, "DataTree", None)
    target = inspect.signature(tree_class.to_netcdf).parameters.get("filepath") if tree_class else None
    if target is None or target.default is not None:  # no in-memory file before xarray 2025.08
        return None
    if isinstance(idata, tree_class):
        return idata.to_netcdf(None, engine="h5netcdf")
    # ArviZ 0.23's InferenceData.to_netcdf, in memory: the variables of the dtypes it compresses
    # are zlib-compressed, the result's attrs are the root's
    encoding = {f"/{name}": {var: {"zlib": True} for var, values in group.variables.items()
                             if values.dtype.kind in "biufcS"}
                for name, group in idata.items()}
    return idata.to_datatree().to_netcdf(None, engine="h5netcdf", encoding=encoding)


def write_netcdf(idata, path: str, image=None) -> None:
    """Write ``idata`` (``DataTree`` or ``InferenceData``) to ``path`` via a temporary file in the
    same folder, renamed at the end, so an interrupted or failed write never leaves a file, whole
    or partial, under ``path`` nor a temporary one beside it. ``image``: the file's bytes from
    :func:`netcdf_image`, when several copies are written. A failed write (a full disk, a folder
    gone) raises ``OSError``."""
    path = os.path.realpath(path)  # through a symlink to its target, which stays a link
    if image is None:
        try:
            image = netcdf_image(idata)
        except MemoryError:  # no room for a second copy of the result: HDF5 writes it to the file
            image = None
    tmp = temporary_beside(path, ".nc.tmp")
    try:
        if image is None:
            _write_through_hdf5(idata, tmp)
        else:
            _write_bytes(tmp, image)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _write_bytes(path, data) -> None:
    """``data`` into the file ``path``, on disk when this returns (``OSError`` where it cannot be)."""
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _write_through_hdf5(idata, path) -> None:
    """``idata`` written to ``path`` by HDF5 itself (an xarray that cannot build the file in
    memory). A failed write is an ``OSError`` (HDF5 raises ``RuntimeError`` for some); the files
    HDF5 left half-closed are marked closed, so that h5netcdf's destructor does not touch them
    again, and the reports of their objects' destructors are dropped while they are collected."""
    from ppzoo.diagnostics import arviz_compat

    hook, sys.unraisablehook = sys.unraisablehook, lambda unraisable: None
    try:
        try:
            arviz_compat.to_netcdf(idata, path)
            return
        except (OSError, RuntimeError) as err:  # h5py: "... errno = 28, error message = ..."
            text = " ".join(str(err).split())
            code = getattr(err, "errno", None) or next(iter(re.findall(r"errno = (\d+)", text)), None)
            failure = OSError(int(code), os.strerror(int(code)) + f" ({text})") if code else OSError(text)
            _forget_open_files(path)  # before the traceback, which holds them, is freed
        gc.collect()
    finally:
        sys.unraisablehook = hook
    raise failure


def _forget_open_files(path) -> None:
    """Mark closed the h5netcdf files on ``path`` that a failed write left open."""
    try:
        import h5netcdf
    except ImportError:
        return
    for obj in gc.get_objects():
        if isinstance(obj, h5netcdf.File) and not getattr(obj, "_closed", True):
            if os.path.abspath(str(getattr(obj, "_filename", ""))) == os.path.abspath(path):
                obj._closed = True


def temporary_beside(path, suffix):
    """A new empty file in ``path``'s folder, with the permissions a plain ``open`` would give: an
    existing file's own mode, else what the umask leaves of 0666 (``mkstemp`` makes it private,
    and the file is renamed to ``path`` at the end)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".ppzoo-", suffix=suffix, dir=folder)
    os.close(fd)
    if os.path.isfile(path):
        mode = stat.S_IMODE(os.stat(path).st_mode)
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)
    return tmp


def check_writable(path, option="--out") -> None:
    """Raise ``OSError`` naming ``option`` unless a file can be written at ``path`` (its folder
    exists and takes a new file; an existing ``path`` is a file), before a long run needs it."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{option} must be a file name (str or os.PathLike), got {path!r}")
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise OSError(f"{option} {path}: is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise OSError(f"{option} {path}: the folder {folder} does not exist")
    try:
        os.remove(temporary_beside(target, ".check"))
    except OSError as err:
        raise OSError(f"{option} {path}: cannot write in {folder} ({err.strerror or err})") from None


# -- free space before a run ----------------------------------------------------------
#: the file the command line writes the result to, and the names of its options
_RESULT_FILE: contextvars.ContextVar = contextvars.ContextVar("ppzoo_result_file", default=None)
#: a file's layout (HDF5's and netCDF's metadata), with room
FILE_OVERHEAD = 2**17
#: bytes per draw and chain of ``sample_stats`` (step size, lp, grad_evals, two flags), with room
STATS_BYTES = 32


@contextlib.contextmanager
def writing_result_to(path, option: str = "--out", checkpoint_option: str = "--checkpoint"):
    """Within this block, a run started by ``ppzoo.sample`` or ``ppzoo.resume`` will have its
    result written to ``path`` (the command line's ``--out``): the free-space check before the run
    counts that file too, and names the command line's options."""
    token = _RESULT_FILE.set((os.fspath(path), option, checkpoint_option))
    try:
        yield
    finally:
        _RESULT_FILE.reset(token)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _posterior_values(backend) -> int:
    """Values per draw and chain in the posterior: every latent and ``deterministic`` site."""
    layout = backend.layout
    return int(sum(math.prod(site.shape) for site in (*layout.latent, *layout.deterministic)))


def check_run_fits_on_disk(backend, num_chains: int, num_samples: int, log_likelihood: bool,
                           checkpoint=None) -> None:
    """An ``OSError`` before a run whose files need more than the free space of their folders:
    its checkpoint (``checkpoint``, if any: the posterior and the unconstrained draws, twice, as
    each checkpoint is written beside the one before it), and the result file of
    :func:`writing_result_to` (the posterior and, if stored, the per-datum log-likelihood) where a
    command line run writes one. Files on one file system count together."""
    import numpy as np

    from ppzoo.checks import check_fits_on_disk

    result = _RESULT_FILE.get()
    if checkpoint is None and result is None:
        return
    itemsize = backend.to_numpy(backend.asarray(np.zeros(1))).dtype.itemsize  # the backend's float
    out_option, checkpoint_option = (result[1], result[2]) if result else (None, "checkpoint")
    fewer = "--num-samples" if result else "num_samples"
    values = _posterior_values(backend)
    # besides the draws: the observed data, the layout, and in a checkpoint the sampler's state
    overhead = FILE_OVERHEAD + itemsize * sum(math.prod(site.shape) for site in backend.layout.all_observed)
    state = 8 * 4 * num_chains * backend.dim
    per_draw = f"{_count(num_chains, 'chain')} x {_count(num_samples, 'draw')} x "
    needs = []
    if checkpoint is not None:
        size = num_chains * num_samples * ((values + backend.dim) * itemsize + 2 * STATS_BYTES) + overhead + state
        needs.append((checkpoint_option, os.fspath(checkpoint), 2 * size, size,
                      f"the checkpoint, {per_draw}({_count(values, 'posterior value')} + {backend.dim:,} unconstrained) x "
                      f"{itemsize} bytes, twice (each checkpoint is written beside the one before)", True))
    if result is not None:
        ll = backend.num_data if log_likelihood else 0
        size = num_chains * num_samples * ((values + ll) * itemsize + STATS_BYTES) + overhead
        how = f"the result, {per_draw}({_count(values, 'posterior value')}" + (
            f" + {_count(ll, 'log-likelihood value')}" if ll else "") + f") x {itemsize} bytes"
        needs.append((out_option, result[0], size, size, how, False))
    check_fits_on_disk(needs, fewer=fewer)
