"""ppzoo: a model zoo and inference layer for Pyro and NumPyro programs.

``ppzoo.sample(model, *args, method="sgld-cv", ...)`` runs stochastic-gradient
Langevin chains on an ordinary Pyro or NumPyro program and returns the ArviZ
result of the installed line (``xarray.DataTree`` under ArviZ 1.x,
``arviz.InferenceData`` under 0.23); ``ppzoo.fit(model, guide, *args, objective="iwae", ...)``
fits a guide by SVI (``Fit.save`` and ``ppzoo.load_fit`` keep it in a file), and
``ppzoo.log_marginal_likelihood`` estimates ``log p(x)`` by importance sampling;
``ppzoo.predict`` and ``ppzoo.prior_predictive`` add predictive draws (each PPL's ``Predictive``). The zoo
lives in :mod:`ppzoo.models`, the samplers in :mod:`ppzoo.inference`.
"""

import importlib

from ppzoo._version import __version__

__all__ = ["__version__", "sample", "resume", "log_likelihood", "fit", "Fit", "load_fit", "log_marginal_likelihood",
           "predict", "prior_predictive"]

# ``import ppzoo`` stays light (the CLI's ``ppzoo list`` and ``--version`` import no PPL): the
# front door's functions and the sub-packages are imported when first used
_FUNCTIONS = {
    "sample": "ppzoo.sampling",
    "resume": "ppzoo.checkpoint",
    "fit": "ppzoo.fitting",
    "Fit": "ppzoo.fitting",
    "load_fit": "ppzoo.fitting",
    "log_marginal_likelihood": "ppzoo.inference.evaluate",
    "log_likelihood": "ppzoo.pointwise",
    "predict": "ppzoo.predictive",
    "prior_predictive": "ppzoo.predictive",
}
_PACKAGES = {"models", "inference", "diagnostics", "backends", "nn", "data", "checks", "cli"}


def __getattr__(name):
    if name in _FUNCTIONS:
        value = getattr(importlib.import_module(_FUNCTIONS[name]), name)
    elif name in _PACKAGES:
        value = importlib.import_module(f"ppzoo.{name}")
    else:
        raise AttributeError(f"module 'ppzoo' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_FUNCTIONS) | _PACKAGES)
