"""The zoo's registry: every entry is a :class:`ModelSpec`.

    >>> from ppzoo import models
    >>> models.list_models()
    ['eight_schools', 'hierarchical_regression', 'linear_regression', ...]
    >>> spec = models.get("linear_regression")
    >>> args, kwargs = spec.load_data()
    >>> idata = ppzoo.sample(spec.numpyro_model, *args, **spec.sampler_defaults, **kwargs)
    >>> spec.reference.params["w[0]"]          # {"mean": ..., "sd": ...}
    >>> spec.summarize(idata).loc["w[0]", ["mean", "sd"]]   # the same quantity from the run

An entry module (``models/<name>.py``) defines ``numpyro_model``,
``pyro_model``, ``load_data`` and ``SPEC``; its reference is
``models/references/<name>.json``, made by ``models/references/make_references.py``.

What is compared with the reference: the raw parameters (every latent site,
constrained space), unless the entry sets ``ModelSpec.derived``. Entries
whose parameters are not identifiable (a neural network's hidden units can be
permuted, a PCA loading matrix rotated) set ``derived`` to a function that
maps the posterior draws to quantities that are identifiable, such as the
regression function at fixed inputs or ``W W'``; the reference and the tests
then speak of those quantities instead (:meth:`ModelSpec.quantities`,
:meth:`ModelSpec.summarize`).
"""

from __future__ import annotations

import importlib
import json
import pathlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ppzoo.diagnostics import arviz_compat

__all__ = ["ModelSpec", "Reference", "ENTRIES", "list_models", "get"]

REFERENCES = pathlib.Path(__file__).resolve().parent / "references"

#: entry modules, in ``ppzoo.models``
ENTRIES = (
    "bnn_regression",
    "eight_schools",
    "gaussian_mixture",
    "hierarchical_regression",
    "linear_regression",
    "logistic_regression",
    "probabilistic_pca",
    "robust_regression",
)


@dataclass(frozen=True)
class Reference:
    """What the right answer is: per compared scalar quantity (``"w[0]"``, ``"sigma"``, ...)
    the posterior ``mean`` and ``sd``, and how they were made.

    The compared quantities are the entry's parameters (constrained space), or
    its derived quantities when the entry sets ``ModelSpec.derived``; the names
    are ArviZ's flattened ones (``"w[0]"``, ``"WWt[0, 1]"``).
    """

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
        derived: ``None`` (the default: the raw parameters are compared with the
            reference), or a function ``draws -> quantities`` for entries whose
            parameters are not identifiable. ``draws`` maps each latent site's
            name to a NumPy array ``(chain, draw, *site_shape)`` (constrained
            space); the function returns a dict of named NumPy arrays
            ``(chain, draw, *shape)``, computed draw by draw, whose distribution
            does not depend on the symmetry that makes the parameters
            unidentifiable (hidden-unit permutations, rotations, ...).
    """

    name: str
    description: str
    numpyro_model: Callable
    pyro_model: Callable
    load_data: Callable
    data: str
    sampler_defaults: dict = field(default_factory=dict)
    tolerance: tuple = (0.2, 0.2)
    derived: Callable | None = None

    @cached_property
    def reference(self) -> Reference:
        """The stored reference posterior (see ``models/references/make_references.py``)."""
        return Reference.load(self.name)

    def model(self, backend: str) -> Callable:
        """``numpyro_model`` or ``pyro_model``."""
        if backend not in ("numpyro", "pyro"):
            raise ValueError(f"backend must be 'numpyro' or 'pyro', got {backend!r}")
        return self.numpyro_model if backend == "numpyro" else self.pyro_model

    def quantities(self, posterior) -> dict[str, np.ndarray]:
        """The quantities compared with the reference, draw by draw.

        Args:
            posterior: an ArviZ result (``xarray.DataTree`` or
                ``arviz.InferenceData``; its ``posterior`` group is used), an
                ``xarray.Dataset`` such as that group, or a mapping from
                latent site names to arrays (NumPy, JAX or CPU torch) with
                leading ``(chain, draw)`` dims, e.g. NumPyro's
                ``mcmc.get_samples(group_by_chain=True)``.

        Returns:
            ``{name: array (chain, draw, *shape)}``: the draws themselves, or
            ``derived(draws)`` when the entry sets ``derived``.
        """
        draws = _posterior_draws(posterior)
        if self.derived is None:
            return draws
        result = self.derived(draws)
        if not isinstance(result, Mapping) or not result:
            raise TypeError(f"derived of entry {self.name!r} must return a non-empty dict of arrays, got {type(result).__name__}")
        lead = next(iter(draws.values())).shape[:2]
        out = {}
        for key, value in result.items():
            value = np.asarray(value)
            if value.shape[:2] != lead:
                raise ValueError(
                    f"derived of entry {self.name!r} returned {key!r} of shape {value.shape}; "
                    f"expected leading (chain, draw) dims {lead}"
                )
            out[str(key)] = value
        return out

    def summarize(self, posterior, kind: str = "all"):
        """ArviZ's summary of :meth:`quantities`: one row per scalar quantity, named as in the reference.

        ``kind``: ``"all"`` (mean, sd, 94% HDI, ESS, R-hat and MCSE), ``"stats"``
        or ``"diagnostics"``; the same columns under ArviZ 1.x and 0.23
        (:func:`ppzoo.diagnostics.arviz_compat.summary`). Returns a
        ``pandas.DataFrame`` indexed by ``"w[0]"``-style names, unrounded.
        """
        result = arviz_compat.from_dict({"posterior": self.quantities(posterior)})
        return arviz_compat.summary(result, kind=kind)


def _posterior_draws(posterior) -> dict[str, np.ndarray]:
    """``{site: NumPy array (chain, draw, ...)}`` from an ArviZ result, its posterior group, or a mapping."""
    if arviz_compat.is_result(posterior) and arviz_compat.has_group(posterior, "posterior"):
        posterior = arviz_compat.get_group(posterior, "posterior")
    if hasattr(posterior, "data_vars"):  # xarray.Dataset
        posterior = {name: posterior[name].values for name in posterior.data_vars}
    if not isinstance(posterior, Mapping):
        raise TypeError(
            "posterior must be an ArviZ result (xarray.DataTree or arviz.InferenceData), its posterior "
            "group (xarray.Dataset) or a dict of "
            f"arrays with leading (chain, draw) dims; got {type(posterior).__name__}"
        )
    if not posterior:
        raise ValueError("posterior is empty: it names no latent sites")
    draws = {}
    for name, value in posterior.items():
        if hasattr(value, "detach"):  # torch tensor
            value = value.detach().cpu()
        value = np.asarray(value)
        if value.ndim < 2:
            raise ValueError(
                f"posterior[{name!r}] has shape {value.shape}; expected leading (chain, draw) dims"
            )
        draws[str(name)] = value
    lead = {value.shape[:2] for value in draws.values()}
    if len(lead) > 1:
        raise ValueError(f"posterior arrays disagree on their (chain, draw) dims: {sorted(lead)}")
    return draws


#: the zoo's entries as ``ppzoo list`` shows them, without importing a PPL (see :func:`catalog`)
CATALOG = pathlib.Path(__file__).resolve().parent / "references" / "catalog.json"


def catalog() -> list[dict]:
    """Each entry's ``name``, ``description``, ``data``, ``backends``, ``N`` (the data plate's
    size) and ``dim`` (unconstrained latent dimensions), found by tracing its NumPyro program on
    its data. ``python models/references/make_catalog.py`` writes it to :data:`CATALOG`, which
    ``ppzoo list`` reads (a test checks that the file agrees with this)."""
    from ppzoo.backends import make_backend

    rows = []
    for name in list_models():
        spec = get(name)
        args, kwargs = spec.load_data()
        layout = make_backend(spec.numpyro_model, args, kwargs, backend="numpyro").layout
        rows.append({"name": name, "description": spec.description, "data": spec.data,
                     "backends": ["numpyro", "pyro"], "N": int(layout.num_data), "dim": int(layout.dim)})
    return rows


def list_models() -> list[str]:
    """The names of the zoo's entries, sorted."""
    return sorted(ENTRIES)


def get(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of entry ``name``; unknown names get a ``ValueError`` listing the known ones."""
    if name not in ENTRIES:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return importlib.import_module(f"{__package__}.{name}").SPEC
