"""The zoo's one registry: every entry, sampled or deep, is a :class:`ModelSpec`.

    >>> from ppzoo import models
    >>> models.list_models()
    ['beta_vae', 'bl_vae', 'bnn_regression', 'eight_schools', ...]
    >>> spec = models.get("linear_regression")
    >>> args, kwargs = spec.load_data()
    >>> idata = ppzoo.sample(spec.numpyro_model, *args, **spec.sampler_defaults, **kwargs)
    >>> spec.reference.params["w[0]"]          # {"mean": ..., "sd": ...}
    >>> spec.summarize(idata).loc["w[0]", ["mean", "sd"]]   # the same quantity from the run
    >>> model, guide = models.get("il_vae").fit_programs("numpyro")   # a deep entry: (model, guide)

Entries are found, not listed: every module of ``ppzoo.models`` that defines
``SPEC`` (one entry) or ``SPECS`` (several, as ``models/vae.py`` does for the
VAE variants) is part of the zoo (:func:`discover`). A new entry is one file,
``models/<name>.py``, defining its programs, ``load_data`` and ``SPEC``; then
``python models/references/make_references.py <name>`` makes its reference
(``models/references/<name>.json``) and rewrites the catalog that ``ppzoo
list`` reads (``models/references/catalog.json``).

Two kinds (:attr:`ModelSpec.kind`):

* ``"sampled"``: a Bayesian model with global latents, written in both PPLs
  (``numpyro_model``, ``pyro_model``); ``ppzoo run`` samples it, ``ppzoo fit``
  fits it with one of the PPL's autoguides (:data:`AUTOGUIDES`). Its reference
  is a posterior (closed form, or NumPyro NUTS) that runs are compared with.
* ``"deep"``: a deep latent-variable model whose networks are trained by
  ``ppzoo.fit`` (``programs(backend, **options) -> (model, guide)``); it has
  no posterior over the networks' weights to sample. Its reference is a fit
  with the entry's defaults: held-out ELBO and collapse diagnostics.

What is compared with a sampled entry's reference: the raw parameters (every
latent site, constrained space), unless the entry sets ``ModelSpec.derived``.
Entries whose parameters are not identifiable (a neural network's hidden units
can be permuted, a PCA loading matrix rotated) set ``derived`` to a function
that maps the posterior draws to quantities that are identifiable, such as the
regression function at fixed inputs or ``W W'``; the reference and the tests
then speak of those quantities instead (:meth:`ModelSpec.quantities`,
:meth:`ModelSpec.summarize`).
"""

from __future__ import annotations

import importlib
import json
import pathlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ppzoo.diagnostics import arviz_compat

__all__ = ["ModelSpec", "Reference", "AUTOGUIDES", "KINDS", "discover", "list_models", "get", "catalog"]

REFERENCES = pathlib.Path(__file__).resolve().parent / "references"

#: the two kinds of entry (see the module docstring)
KINDS = ("sampled", "deep")
#: ``ppzoo fit``'s guides for sampled entries: the PPL's autoguide of that name (both PPLs have each)
AUTOGUIDES = {"normal": "AutoNormal", "mvn": "AutoMultivariateNormal", "laplace": "AutoLaplaceApproximation"}
#: modules of ``ppzoo.models`` that are not entries
_NOT_ENTRIES = ("registry",)


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


@dataclass(frozen=True, eq=False, kw_only=True)
class ModelSpec:
    """A zoo entry, of either kind (module docstring).

    Attributes:
        name, description: the entry's name and one line on what it is.
        load_data: ``() -> (args, kwargs)`` from bundled data (a deep entry's
            training split).
        data: a short name of the data set.
        numpyro_model, pyro_model: a sampled entry's model in each PPL, with a data
            plate ppzoo can subsample; ``None`` for a deep entry.
        programs: a deep entry's ``(backend, **options) -> (model, guide)``;
            ``None`` for a sampled entry. Building it makes the networks.
        program_options: a deep entry's default ``options`` for ``programs``
            (decoder settings, latent dimension, ...).
        fit_defaults: keyword arguments for ``ppzoo.fit`` that suit the entry
            (objective, particles, steps, batch size, learning rate as
            ``learning_rate``); ``ppzoo fit`` starts from them.
        sampler_defaults: keyword arguments for ``ppzoo.sample`` that suit a sampled
            entry (method, step size, batch size, warmup, thinning).
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
        step_kwargs: a deep entry's ``t -> {keyword: value}`` for ``ppzoo.fit``'s
            ``step_kwargs=``, used when the fit setting ``binarize_each_step`` is on
            (the VAEs' fresh binarisation of the images at every step).
        reference_recipe: how ``make_references.py`` makes the reference: ``None``
            (NumPyro NUTS with its defaults for a sampled entry, a fit with
            :attr:`fit_defaults` for a deep one), a dict of NUTS settings
            (``target_accept_prob``, ...), or a function ``() -> (params, how)``
            (a closed form).
    """

    name: str
    description: str
    load_data: Callable
    data: str
    numpyro_model: Callable | None = None
    pyro_model: Callable | None = None
    programs: Callable | None = None
    program_options: dict = field(default_factory=dict)
    fit_defaults: dict = field(default_factory=dict)
    sampler_defaults: dict = field(default_factory=dict)
    tolerance: tuple = (0.2, 0.2)
    derived: Callable | None = None
    reference_recipe: Callable | dict | None = None
    step_kwargs: Callable | None = None

    def __post_init__(self):
        if not (isinstance(self.name, str) and self.name.isidentifier()):
            raise ValueError(f"ModelSpec name must be an identifier (it names the entry's files), got {self.name!r}")
        sampled = self.numpyro_model is not None and self.pyro_model is not None
        if sampled == (self.programs is not None) or (not sampled and (self.numpyro_model or self.pyro_model)):
            raise ValueError(
                f"zoo entry {self.name!r}: give numpyro_model and pyro_model (a sampled entry) or programs "
                "(a deep entry), not both or neither"
            )

    @property
    def kind(self) -> str:
        """``"sampled"`` (``ppzoo run`` and ``ppzoo fit``) or ``"deep"`` (``ppzoo fit`` only)."""
        return "deep" if self.programs is not None else "sampled"

    @cached_property
    def reference(self) -> Reference:
        """The stored reference (see ``models/references/make_references.py``)."""
        return Reference.load(self.name)

    def model(self, backend: str) -> Callable:
        """A sampled entry's ``numpyro_model`` or ``pyro_model``."""
        _check_backend(backend)
        if self.kind == "deep":
            raise ValueError(f"zoo entry {self.name!r} is a deep model: it is fitted (ppzoo fit, "
                             "ModelSpec.fit_programs), not sampled")
        return self.numpyro_model if backend == "numpyro" else self.pyro_model

    def fit_programs(self, backend: str, guide: str = "normal", **options):
        """``(model, guide)`` for ``ppzoo.fit`` on ``backend``.

        A deep entry's ``programs(backend, **{**program_options, **options})``
        (``guide`` is not used: the entry brings its encoder). A sampled entry's
        model with the PPL's autoguide named by ``guide`` (:data:`AUTOGUIDES`:
        ``"normal"``, ``"mvn"`` or ``"laplace"``); it takes no ``options``.
        """
        _check_backend(backend)
        if self.kind == "deep":
            unknown = sorted(set(options) - set(self.program_options))
            if unknown:
                raise ValueError(f"zoo entry {self.name!r} takes the options {sorted(self.program_options)}; "
                                 f"got {unknown}")
            return self.programs(backend, **{**self.program_options, **options})
        if options:
            raise ValueError(f"zoo entry {self.name!r} is a sampled model: it takes no program options, "
                             f"got {sorted(options)}")
        if guide not in AUTOGUIDES:
            raise ValueError(f"guide must be one of {sorted(AUTOGUIDES)}, got {guide!r}")
        if backend == "numpyro":
            from numpyro.infer import autoguide
        else:
            from pyro.infer import autoguide
        model = self.model(backend)
        return model, getattr(autoguide, AUTOGUIDES[guide])(model)

    def fit_settings(self, backend: str, **overrides) -> dict:
        """``ppzoo.fit`` keyword arguments: :attr:`fit_defaults` updated by ``overrides``.

        Keys: ``objective`` (``"elbo"`` / ``"iwae"``), ``num_particles``,
        ``estimator``, ``num_steps``, ``batch_size``, ``learning_rate`` (Adam of
        the PPL; ``None``: ``ppzoo.fit``'s default schedule), ``kl_anneal``
        (steps of a linear warm-up of the KL term's weight to 1:
        ``AnnealedELBO``), ``binarize_each_step`` (a deep entry's fresh
        binarisation of the images every step).
        """
        from ppzoo.inference import AnnealedELBO, LinearWarmup

        _check_backend(backend)
        known = {"objective", "num_particles", "estimator", "num_steps", "batch_size", "learning_rate",
                 "kl_anneal", "binarize_each_step"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"fit settings are {sorted(known)}; got {unknown}")
        settings = {"objective": "elbo", "num_particles": 1, **self.fit_defaults,
                    **{k: v for k, v in overrides.items() if v is not None}}
        kwargs = {k: settings[k] for k in ("objective", "num_particles", "estimator", "num_steps", "batch_size")
                  if settings.get(k) is not None}
        if settings.get("kl_anneal"):
            if settings["objective"] != "elbo":
                raise ValueError(f"kl_anneal anneals the ELBO's KL term; it cannot go with objective={settings['objective']!r}")
            kwargs["objective"] = AnnealedELBO(LinearWarmup(int(settings["kl_anneal"])), num_particles=kwargs.pop("num_particles"),
                                               estimator=kwargs.pop("estimator", "reparam"))
        if settings.get("learning_rate") is not None:
            if backend == "numpyro":
                import numpyro.optim

                kwargs["optimizer"] = numpyro.optim.Adam(float(settings["learning_rate"]))
            else:
                import pyro.optim

                kwargs["optimizer"] = pyro.optim.Adam({"lr": float(settings["learning_rate"])})
        if settings.get("binarize_each_step"):
            if self.step_kwargs is None:
                raise ValueError(f"zoo entry {self.name!r} has no per-step binarisation (binarize_each_step)")
            kwargs["step_kwargs"] = self.step_kwargs
        return kwargs

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


def _check_backend(backend) -> None:
    if backend not in ("numpyro", "pyro"):
        raise ValueError(f"backend must be 'numpyro' or 'pyro', got {backend!r}")


def entry_modules() -> list[str]:
    """The names of ``ppzoo.models``'s modules that may hold entries (every module but the registry)."""
    package = importlib.import_module(__package__)
    return sorted({m.name for m in pkgutil.iter_modules(package.__path__) if m.name not in _NOT_ENTRIES and not m.ispkg})


def _specs_of(module) -> list[ModelSpec]:
    specs = list(getattr(module, "SPECS", ())) + ([module.SPEC] if hasattr(module, "SPEC") else [])
    for spec in specs:
        if not isinstance(spec, ModelSpec):
            raise TypeError(f"{module.__name__}: SPEC / SPECS must hold ModelSpec objects, got {type(spec).__name__}")
    return specs


_DISCOVERED: dict[str, ModelSpec] | None = None
#: ``{entry name: module name}`` of the discovered entries
_MODULES: dict[str, str] = {}


def discover() -> dict[str, ModelSpec]:
    """``{name: ModelSpec}`` of every entry: the ``SPEC`` / ``SPECS`` of each module of
    ``ppzoo.models`` (imported once; two entries of one name are an error)."""
    global _DISCOVERED
    if _DISCOVERED is None:
        found: dict[str, tuple[ModelSpec, str]] = {}
        for name in entry_modules():
            module = importlib.import_module(f"{__package__}.{name}")
            for spec in _specs_of(module):
                if spec.name in found:
                    raise ValueError(f"zoo entry {spec.name!r} is defined twice: in {found[spec.name][1]} and {name}")
                found[spec.name] = (spec, name)
        _MODULES.update({name: module for name, (_, module) in found.items()})
        _DISCOVERED = {name: spec for name, (spec, _) in sorted(found.items())}
    return _DISCOVERED


def _catalogued_module(name: str) -> str | None:
    """The module that holds entry ``name`` by the catalog, or ``None`` (no catalog, or not in it)."""
    try:
        rows = json.loads(CATALOG.read_text())
    except (OSError, ValueError):
        return None
    return next((row.get("module") for row in rows if row.get("name") == name), None)


def catalog() -> list[dict]:
    """Each entry's ``name``, ``kind``, ``module``, ``description``, ``data``, ``backends``, ``N``
    (the data plate's size) and ``dim`` (a sampled entry's unconstrained latent dimensions; a deep
    entry's latent dimensions per datum), found by tracing its NumPyro program on its data.
    ``python models/references/make_catalog.py`` writes it to :data:`CATALOG`, which ``ppzoo list``
    reads (a test checks that the file agrees with this)."""
    from ppzoo.backends import make_backend

    rows = []
    for name, spec in discover().items():
        args, kwargs = spec.load_data()
        if spec.kind == "sampled":
            layout = make_backend(spec.numpyro_model, args, kwargs, backend="numpyro").layout
            size, dim = int(layout.num_data), int(layout.dim)
        else:
            size, dim = len(args[0]), int(spec.program_options["latent_dim"])
        rows.append({"name": name, "kind": spec.kind, "module": _MODULES[name],
                     "description": spec.description, "data": spec.data, "backends": ["numpyro", "pyro"],
                     "N": size, "dim": dim})
    return rows


def list_models(kind: str | None = None) -> list[str]:
    """The names of the zoo's entries (of ``kind``, ``"sampled"`` or ``"deep"``, if given), sorted."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS} or None, got {kind!r}")
    return [name for name, spec in discover().items() if kind is None or spec.kind == kind]


def get(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of entry ``name``; unknown names get a ``ValueError`` listing the known ones.

    The catalog names the entry's module, so only that module is imported; an
    entry the catalog does not know yet (a new file) is found by :func:`discover`.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a zoo entry's name (str), got {type(name).__name__}")
    module = _catalogued_module(name)
    if module is not None and module in entry_modules():
        for spec in _specs_of(importlib.import_module(f"{__package__}.{module}")):
            if spec.name == name:
                return spec
    entries = discover()
    if name not in entries:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(entries)}")
    return entries[name]
