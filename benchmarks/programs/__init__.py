"""Programs written the way NumPyro users write them for NUTS, for ``benchmarks/nuts_agreement.py``.

One module per program. Each defines:

* ``NAME`` (the module's name), ``DESCRIPTION`` (one line), ``IDIOMS`` (short tags);
* ``model(...)``: the NumPyro program, taking its data as arguments and using the
  data whole (``with numpyro.plate("data", N): numpyro.sample("y", ..., obs=y)``)
  unless the program is about another idiom;
* ``data()``: ``(args, kwargs)`` of NumPy arrays (float32 reals, int32 counts and
  classes, bool masks) with which ``model(*args, **kwargs)`` is called; bundled
  scikit-learn data, data simulated with ``numpy.random.default_rng(seed)``, or
  small public data typed in.

Optionally:

* ``SITES``: the latent and deterministic sites to compare (default: every
  posterior variable);
* ``EXPECT_ERROR``: a substring of the error ``ppzoo.sample`` is expected to raise
  (the program is then not sampled, only checked to be refused);
* ``reference_model``: the program NUTS samples for the reference, where
  ``model`` itself is not one NUTS can sample exactly (``fixed_subsample``: the
  same model on all rows);
* ``exact_draws(rng, num_chains, num_draws)``: independent draws of the posterior,
  ``{site: (C, S, *shape)}``, where it is known in closed form (``funnel``: NUTS
  itself does not reach the funnel's neck); the reference is then these draws and
  NUTS is one more run compared with them;
* ``REFERENCE_INIT``: ``{site: value}`` where every NUTS chain of the reference
  starts (``init_to_value``), for a posterior with minor modes that hold a
  negligible share of the mass but can hold a chain (``change_point``); ppzoo's
  runs start where ppzoo starts them.
"""

from __future__ import annotations

import importlib
import pkgutil


def names() -> list[str]:
    """The program modules in this package, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str):
    """The module of program ``name``."""
    return importlib.import_module(f"{__name__}.{name}")
