"""Result files written whole or not at all: through a temporary file beside the target, renamed
into place, with the permissions a plain ``open`` would give."""

from __future__ import annotations

import os
import stat
import tempfile

__all__ = ["write_netcdf", "check_writable"]


def write_netcdf(idata, path: str) -> None:
    """Write ``idata`` (``DataTree`` or ``InferenceData``) to ``path`` via a temporary file in the
    same folder, renamed at the end, so an interrupted write never leaves a half-written file
    under ``path``."""
    from ppzoo.diagnostics import arviz_compat

    path = os.path.realpath(path)  # through a symlink to its target, which stays a link
    tmp = _temporary_beside(path, ".nc.tmp")
    try:
        arviz_compat.to_netcdf(idata, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _temporary_beside(path, suffix):
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
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise OSError(f"{option} {path}: is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise OSError(f"{option} {path}: the folder {folder} does not exist")
    try:
        os.remove(_temporary_beside(target, ".check"))
    except OSError as err:
        raise OSError(f"{option} {path}: cannot write in {folder} ({err.strerror or err})") from None
