"""ppzoo.models: the zoo. Each entry is the same model written as a NumPyro and a Pyro program,
with bundled data and a stored reference posterior.

``list_models()`` names the entries, ``get(name)`` returns an entry's
:class:`~ppzoo.models.registry.ModelSpec`.
"""

from .registry import ModelSpec, Reference, get, list_models

__all__ = ["ModelSpec", "Reference", "get", "list_models"]
