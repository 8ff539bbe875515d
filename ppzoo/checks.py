"""Argument checks, one behaviour everywhere: the front door, the samplers, SVI, the zoo and the decoders.

Integers may be Python or NumPy integers (not ``bool``); numbers may be any
real scalar (Python, NumPy, 0-d arrays are not accepted). A value of the
wrong type gets a ``TypeError``, one of the right type but out of range a
``ValueError``; both messages name the argument, say what was expected and
show what was given. No framework is imported here.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_count", "check_number", "check_flag", "check_seed", "check_data_not_empty", "check_model_keywords", "MAX_SEED"]

#: seeds are integers in ``[0, MAX_SEED]``: what both ``jax.random.PRNGKey`` (an int64)
#: and ``torch.Generator.manual_seed`` take
MAX_SEED = 2**63 - 1


def check_count(name: str, value, minimum: int = 1) -> int:
    """``value`` as an ``int >= minimum``.

    ``TypeError`` unless ``value`` is an integer (Python or NumPy, not ``bool``);
    ``ValueError`` if it is below ``minimum``. Both say
    ``"<name> must be an integer >= <minimum>, got <value>"``.
    """
    message = f"{name} must be an integer >= {minimum}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(message)
    if value < minimum:
        raise ValueError(message)
    return int(value)


def check_number(name: str, value, *, low: float = -math.inf, strict: bool = False, finite: bool = True) -> float:
    """``value`` as a ``float`` that is ``> low`` (``strict``) or ``>= low``, finite unless ``finite=False``.

    ``TypeError`` unless ``value`` is a real number (not ``bool``), ``ValueError``
    when out of range or not a number; the message says which range was expected.
    """
    bound = "" if low == -math.inf else (f" > {low:g}" if strict else f" >= {low:g}")
    message = f"{name} must be a {'finite ' if finite else ''}number{bound}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(message)
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)) or (value <= low if strict else value < low):
        raise ValueError(message)
    return value


def check_flag(name: str, value) -> bool:
    """``value`` itself if it is ``True`` or ``False`` (a NumPy bool too); otherwise a ``TypeError``.

    Strings and numbers are refused rather than read as truth values
    (``"no"`` would be true).
    """
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_" and type(value).__module__ == "numpy":
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def check_seed(value, name: str = "seed") -> int:
    """``value`` as an ``int`` in ``[0, MAX_SEED]``: ``TypeError`` unless an integer (Python or
    NumPy, not ``bool``), ``ValueError`` outside the range; both say
    ``"<name> must be an integer in [0, 2**63 - 1], got <value>"``."""
    message = f"{name} must be an integer in [0, 2**63 - 1], got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(message)
    if not 0 <= value <= MAX_SEED:
        raise ValueError(message)
    return int(value)


def check_data_not_empty(program, args, kwargs) -> None:
    """A ``ValueError`` naming the first argument of ``program(*args, **kwargs)`` that is an array with
    no rows (a leading dimension of 0): a plate of size 0 would otherwise fail deep in the PPL."""
    import inspect

    try:
        names = list(inspect.signature(program).parameters)
    except (TypeError, ValueError):
        names = []
    for i, value in enumerate(args):
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape) >= 1 and shape[0] == 0:
            name = names[i] if i < len(names) else f"positional argument {i}"
            raise ValueError(f"{name} has no rows (shape {tuple(shape)}): there must be at least one datum")
    for name, value in kwargs.items():
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape) >= 1 and shape[0] == 0:
            raise ValueError(f"{name} has no rows (shape {tuple(shape)}): there must be at least one datum")


def check_model_keywords(model, kwargs, function) -> None:
    """A ``TypeError`` for a keyword that is neither a parameter of ``model`` (unless it takes
    ``**kwargs``) nor an option of ``function`` (the ppzoo function it was passed to, whose own
    options it did not match), with the closest name among both: ``num_sample=10`` would
    otherwise reach the model and fail there."""
    import difflib
    import inspect

    try:
        params = inspect.signature(model).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    options = [n for n, p in inspect.signature(function).parameters.items()
               if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for name in kwargs:
        if name not in accepted:
            close = difflib.get_close_matches(name, options + accepted, n=1)
            model_name = getattr(model, "__name__", type(model).__name__)
            raise TypeError(
                f"unknown keyword {name!r}: it is neither an option of ppzoo.{function.__name__} nor a parameter "
                f"of model {model_name!r} {tuple(accepted)}" + (f"; did you mean {close[0]!r}?" if close else "")
            )
