"""Observed values outside their distribution's support, refused before sampling starts.

Neither PPL checks an observation against its distribution's support inside the potential
(validation is off there), and some log-densities stay finite outside it (Bernoulli's at a label
of -1), so labels in {-1, +1} give a wrong posterior, or chains that run away and are reported
as diverged. :func:`check_observed_support` names the site,
the distribution, its support and the values outside it instead.
"""

from __future__ import annotations

import numpy as np

from ppzoo.backends.signature import distribution_name, traced_sites

__all__ = ["check_observed_support"]

#: values outside the support named in the message, at most
_SHOWN = 5
#: supports worth saying in words
_SUPPORT_WORDS = {"Boolean": "0 or 1"}


def check_observed_support(backend) -> None:
    """A ``ValueError`` naming the first observed site of ``backend``'s program with a value outside
    its distribution's support (where its mask, if any, keeps the value)."""
    for site in traced_sites(backend):
        if not site.observed:
            continue
        outside = _outside_support(site, backend.to_numpy)
        if outside is not None:
            raise ValueError(_message(site, *outside))


def _outside_support(site, to_numpy):
    """``(count, total, values)`` of the site's observations outside its support (``values``: the
    distinct offending values, or ``None`` where the support is judged per event), or ``None``."""
    try:
        inside = np.asarray(to_numpy(site.fn.support.check(site.value)), dtype=bool)
    except Exception:  # a support that cannot judge this value (a factor's, say): nothing to say
        return None
    if site.mask is not None:
        inside = inside | ~np.broadcast_to(np.asarray(to_numpy(site.mask), dtype=bool), inside.shape)
    if inside.all():
        return None
    values = np.asarray(to_numpy(site.value))
    shown = np.unique(values[~inside]) if values.shape == inside.shape else None
    return int((~inside).sum()), int(inside.size), shown


def _message(site, count, total, values) -> str:
    support = site.fn.support
    words = _SUPPORT_WORDS.get(type(support).__name__.lstrip("_"), str(support))
    listed = ""
    if values is not None:
        listed = ": " + ", ".join(f"{v:g}" for v in values[:_SHOWN]) + (" ..." if values.size > _SHOWN else "")
    hint = ""
    if words == "0 or 1" and values is not None and set(values.tolist()) <= {-1.0, 1.0}:
        hint = " (labels in {-1, +1} become (y + 1) / 2)"
    return (f"observed site '{site.name}': {count} of {total} values lie outside the support of its "
            f"{distribution_name(site.fn)} distribution ({words}){listed}; its log-density there is "
            f"meaningless, so recode the data{hint}")
