"""Argument checks shared by the torch and JAX decoders (no framework imports here), on top of :mod:`ppzoo.checks`."""

from __future__ import annotations

import numpy as np

from ppzoo.checks import check_count, check_number

__all__ = ["check_dim", "check_constant", "check_hidden", "check_injective", "check_nonnegative"]


def check_dim(name: str, value) -> int:
    """``value`` as an ``int >= 1`` (:func:`ppzoo.checks.check_count`)."""
    return check_count(name, value, 1)


def check_constant(name: str, value, *, positive: bool = False) -> float:
    """``value`` as a finite float ``>= 0`` (``> 0`` with ``positive=True``; :func:`ppzoo.checks.check_number`)."""
    return check_number(name, value, low=0.0, strict=positive)


def check_hidden(hidden) -> tuple:
    """Hidden widths of an ICNN or MLP: a non-empty sequence of integers >= 1."""
    try:
        widths = tuple(hidden)
    except TypeError:
        raise ValueError(f"hidden must be a sequence of layer widths, got {hidden!r}") from None
    if not widths:
        raise ValueError("hidden must name at least one layer width, got an empty sequence")
    return tuple(check_dim(f"hidden[{i}]", w) for i, w in enumerate(widths))


def check_injective(latent_dim: int, output_dim: int) -> None:
    """An injective decoder R^d -> R^D needs d <= D."""
    if latent_dim > output_dim:
        raise ValueError(
            f"latent_dim ({latent_dim}) must be <= output_dim ({output_dim}): "
            "an injective (inverse-Lipschitz) decoder cannot map to fewer dimensions than it reads"
        )


def check_nonnegative(name: str, array) -> np.ndarray:
    """A user-given ICNN hidden-path weight: finite and entrywise ``>= 0`` (convexity needs it)."""
    a = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    if np.any(a < 0):
        raise ValueError(
            f"{name} must be entrywise >= 0 (an input-convex network's hidden path needs non-negative "
            f"weights), got a minimum of {a.min():.4g}"
        )
    return a
