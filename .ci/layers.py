"""Check ppzoo's import layers and cycles (``.importlinter``) with import-linter.

import-linter reads a package's files from its folder, but ``pyproject.toml``
maps ``ppzoo.inference`` onto ``inference/`` and ``ppzoo.models`` onto
``models/``. This script lays the Python files out as an installed ppzoo
(``ppzoo/inference/...``, ``ppzoo/models/...``) in a temporary folder, from
the mapping itself, and runs ``lint-imports`` there. Exit status: lint-imports'.

    python .ci/layers.py
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def package_dirs(root: pathlib.Path = ROOT) -> dict[str, str]:
    """``{package: folder}`` from ``[tool.setuptools.package-dir]``."""
    with open(root / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]["package-dir"]


def lay_out(dest: pathlib.Path, root: pathlib.Path = ROOT) -> pathlib.Path:
    """Copy every package's ``.py`` files under ``dest`` as they are installed; returns ``dest``."""
    for package, folder in package_dirs(root).items():
        target = dest.joinpath(*package.split("."))
        for source in (root / folder).rglob("*.py"):
            out = target / source.relative_to(root / folder)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, out)
    return dest


def lint(layout: pathlib.Path, config: pathlib.Path = ROOT / ".importlinter") -> subprocess.CompletedProcess:
    """Run ``lint-imports`` on the laid-out package (it imports nothing of it)."""
    env = {**os.environ, "PYTHONPATH": str(layout)}
    command = [str(pathlib.Path(sys.executable).with_name("lint-imports")), str(config)]
    return subprocess.run(command, cwd=layout, env=env, capture_output=True, text=True)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        result = lint(lay_out(pathlib.Path(tmp)))
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
