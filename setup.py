"""Package discovery for the folder mapping in pyproject.toml.

``models/`` and ``inference/`` install as ``ppzoo.models`` and ``ppzoo.inference``
(see ``[tool.setuptools.package-dir]``); every sub-folder with an ``__init__.py``
is found here, so new sub-packages need no edit.
"""

from setuptools import find_packages, setup


def _mapped(folder: str, prefix: str) -> list[str]:
    return [prefix] + [f"{prefix}.{name}" for name in find_packages(folder)]


setup(
    packages=find_packages(include=["ppzoo", "ppzoo.*"])
    + _mapped("models", "ppzoo.models")
    + _mapped("inference", "ppzoo.inference"),
)
