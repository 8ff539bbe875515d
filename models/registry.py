"""The zoo's registry: every entry is a :class:`ModelSpec`.

    >>> from ppzoo import models
    >>> models.list_models()
    ['eight_schools', 'hierarchical_regression', 'linear_regression', ...]
    >>> spec = models.get("linear_regression")
    >>> args, kwargs = spec.load_data()
    >>> idata = ppzoo.sample(spec.numpyro_model, *args, **spec.sampler_defaults, **kwargs)
    >>> spec.reference.params["w[0]"]          # {"mean": ..., "sd": ...}

An entry module (``models/<name>.py``) defines ``numpyro_model``,
``pyro_model``, ``load_data`` and ``SPEC``; its reference is
``models/references/<name>.json``, made by ``models/references/make_references.py``.
"""

from __future__ import annotations

import importlib
import json
import pathlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

__all__ = ["ModelSpec", "Reference", "ENTRIES", "list_models", "get"]

REFERENCES = pathlib.Path(__file__).resolve().parent / "references"

#: entry modules, in ``ppzoo.models``
ENTRIES = ("eight_schools", "hierarchical_regression", "linear_regression", "logistic_regression", "robust_regression")


@dataclass(frozen=True)
class Reference:
    """What the right answer is: per scalar parameter (``"w[0]"``, ``"sigma"``, ...)
    the posterior ``mean`` and ``sd`` (constrained space), and how they were made."""

    params: dict
    how: dict

    @classmethod
    def load(cls, name: str) -> Reference:
        path = REFERENCES / f"{name}.json"
        if not path.exists():
            raise FileNotFoundError(f"zoo entry {name!r} has no reference file {path.name}; run models/references/make_references.py {name}")
        data = json.loads(path.read_text())
        return cls(params=data["params"], how=data["how"])


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """A zoo entry.

    Attributes:
        name, description: the entry's name and one line on what it is.
        numpyro_model, pyro_model: the same model in each PPL, with a data plate ppzoo can subsample.
        load_data: ``() -> (args, kwargs)`` from bundled data.
        data: a short name of the data set.
        sampler_defaults: keyword arguments for ``ppzoo.sample`` that suit the entry
            (method, step size, batch size, warmup, thinning).
        tolerance: ``(mean_sd, sd_ratio)``: how far a run may be from the reference
            (means within ``mean_sd`` posterior sds, sds within a factor ``1 +- sd_ratio``).
    """

    name: str
    description: str
    numpyro_model: Callable
    pyro_model: Callable
    load_data: Callable
    data: str
    sampler_defaults: dict = field(default_factory=dict)
    tolerance: tuple = (0.2, 0.2)

    @cached_property
    def reference(self) -> Reference:
        """The stored reference posterior (see ``models/references/make_references.py``)."""
        return Reference.load(self.name)

    def model(self, backend: str) -> Callable:
        """``numpyro_model`` or ``pyro_model``."""
        if backend not in ("numpyro", "pyro"):
            raise ValueError(f"backend must be 'numpyro' or 'pyro', got {backend!r}")
        return self.numpyro_model if backend == "numpyro" else self.pyro_model


def list_models() -> list[str]:
    """The names of the zoo's entries, sorted."""
    return sorted(ENTRIES)


def get(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of entry ``name``; unknown names get a ``ValueError`` listing the known ones."""
    if name not in ENTRIES:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return importlib.import_module(f"{__package__}.{name}").SPEC
