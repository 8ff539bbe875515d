"""What a program is, written without reference to its PPL: its sample sites.

A checkpoint stores :func:`program_signature` of the program it sampled (:mod:`ppzoo.checkpoint`),
and ``ppzoo.resume`` compares it with the program it is given (:func:`signature_differences`): a
resumed run continues the draws of the run's own latents, so another program (other sites, other
shapes, other distributions) would get the old draws under its own names.
"""

from __future__ import annotations

import numpy as np

__all__ = ["traced_sites", "distribution_name", "program_signature", "signature_differences"]

#: distributions that wrap another one (``expand``, ``to_event``, ``mask``): the wrapped one is named
_WRAPPERS = ("Independent", "ExpandedDistribution", "MaskedDistribution")


def traced_sites(backend) -> list:
    """The :class:`~.sites.Site` of every sample statement in one run of ``backend``'s program on
    all of its data (the latents at the feasible values the backends trace with, no random draws)."""
    every = backend.restore_array(np.arange(max(int(backend.num_data), 1)))
    sites, _ = backend._sites({}, every)
    return sites


def distribution_name(fn) -> str:
    """The class name of a site's distribution, through ``expand``, ``to_event`` and ``mask``, as
    the user wrote it (NumPyro's ``Bernoulli(logits=...)`` is a ``BernoulliLogits``: ``Bernoulli``)."""
    while type(fn).__name__ in _WRAPPERS and hasattr(fn, "base_dist"):
        fn = fn.base_dist
    name = type(fn).__name__
    for parameterisation in ("Logits", "Probs"):
        if name.endswith(parameterisation) and len(name) > len(parameterisation):
            return name[: -len(parameterisation)]
    return name


def program_signature(backend) -> list[dict]:
    """Per sample site, sorted by name: ``name``, ``distribution`` (:func:`distribution_name`),
    ``shape`` of its value, ``observed``, and the ``plates`` around it (names). JSON as it stands."""
    described = [
        {"name": site.name, "distribution": distribution_name(site.fn), "shape": [int(n) for n in site.value.shape],
         "observed": bool(site.observed), "plates": [name for name, _ in site.frames]}
        for site in traced_sites(backend)
    ]
    return sorted(described, key=lambda site: site["name"])


def signature_differences(saved: list[dict], now: list[dict]) -> list[str]:
    """What differs between two :func:`program_signature`\\ s, one phrase per site: a site only in
    ``saved`` ("not in the program given"), one only in ``now`` ("new"), or what changed."""
    before, after = {s["name"]: s for s in saved}, {s["name"]: s for s in now}
    found = [f"site '{name}' ({_described(before[name])}) is not in the program given"
             for name in sorted(before.keys() - after.keys())]
    found += [f"site '{name}' ({_described(after[name])}) is new" for name in sorted(after.keys() - before.keys())]
    for name in sorted(before.keys() & after.keys()):
        changed = [f"{key} {_value(key, before[name][key])} before, {_value(key, after[name][key])} now"
                   for key in ("distribution", "shape", "observed", "plates")
                   if before[name].get(key) != after[name].get(key)]
        if changed:
            found.append(f"site '{name}': " + ", ".join(changed))
    return found


def _described(site: dict) -> str:
    kind = "observed" if site["observed"] else "latent"
    return f"{kind} {site['distribution']}, shape {_value('shape', site['shape'])}"


def _value(key: str, value) -> str:
    if key == "shape":
        return str(tuple(value))
    if key == "plates":
        return "[" + ", ".join(value) + "]" if value else "no plate"
    return str(value)
