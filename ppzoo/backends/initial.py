"""Where chains start: a PPL's init strategy or the user's unconstrained values, as NumPyro's ``MCMC`` takes them.

Two ways to say it, as for NumPyro's ``MCMC.run`` / Pyro's ``MCMC``:

* ``init_strategy``: a callable of the model's own PPL that gives a latent
  site its first value (``numpyro.infer.init_to_median``,
  ``init_to_uniform``, ``init_to_value(values=...)``, Pyro's
  ``pyro.infer.autoguide.init_to_median``, ...). It runs once per chain,
  each with its own seed, so random strategies start the chains apart;
* ``init_params``: per latent site its value **in the unconstrained space**
  (as NumPyro's ``init_params``), shape the site's unconstrained shape
  (every chain starts there) or ``(C, *shape)`` (one per chain).

Without either, the chains start uniformly in ``[-2, 2]`` of the
unconstrained space (``init_to_uniform``; Stan's default). Under warmup
adaptation, the starts are where the MAP search begins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ppzoo.backends.layout import ModelLayout, model_name

__all__ = ["pack_unconstrained", "initial_positions"]


def pack_unconstrained(values: Mapping, layout: ModelLayout, num_chains: int) -> np.ndarray:
    """``init_params`` (per latent site an unconstrained value, ``(*shape)`` or ``(C, *shape)``)
    -> ``theta`` ``(C, D)`` as a NumPy array."""
    if not isinstance(values, Mapping):
        raise TypeError(f"init_params must be a dict of latent site names to unconstrained values, got {type(values).__name__}")
    names = set(layout.latent_names)
    unknown = sorted(set(values) - names)
    missing = sorted(names - set(values))
    if unknown or missing:
        raise ValueError(
            "init_params must give every latent site an unconstrained value"
            + (f"; not latent sites of the model: {unknown}" if unknown else "")
            + (f"; missing: {missing}" if missing else "")
            + f" (the latent sites are {sorted(names)}; init_strategy=init_to_value(values=...) takes constrained values)"
        )
    theta = np.empty((num_chains, layout.dim))
    for site in layout.latent:
        try:
            value = np.asarray(_numpy(values[site.name]), dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"init_params[{site.name!r}] must be an array of numbers (the site's unconstrained value), "
                f"got {values[site.name]!r}"
            ) from None
        shape = tuple(site.unconstrained_shape)
        if value.shape == shape:
            value = np.broadcast_to(value, (num_chains, *shape))
        elif value.shape != (num_chains, *shape):
            raise ValueError(
                f"init_params[{site.name!r}] has shape {value.shape}; expected the site's unconstrained shape {shape} "
                f"or (num_chains, *shape) = {(num_chains, *shape)}"
            )
        theta[:, site.offset : site.offset + site.size] = value.reshape(num_chains, site.size)
    return theta


#: where each PPL keeps its init strategies, for messages
_OWN_STRATEGIES = {"numpyro": "numpyro.infer", "pyro": "pyro.infer.autoguide"}


def _ppl_of(strategy):
    """``"numpyro"`` or ``"pyro"`` when ``strategy`` (a function, or a ``functools.partial`` of one) is
    defined in that PPL's package, else ``None`` (the user's own)."""
    fn = getattr(strategy, "func", strategy)
    top = (getattr(fn, "__module__", None) or "").split(".")[0]
    return top if top in _OWN_STRATEGIES else None


def _numpy(value):
    """A torch tensor as NumPy (other values as they are), for ``np.asarray``."""
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return value


def initial_positions(backend, num_chains: int, seed: int, init_strategy: Callable | None = None,
                      init_params: Mapping | None = None) -> np.ndarray | None:
    """The chains' starting points ``(C, D)`` in the unconstrained space (NumPy), or ``None`` when
    neither ``init_strategy`` nor ``init_params`` is given (the driver's uniform start).

    ``backend.strategy_values(init_strategy, num_chains, seed)`` runs the strategy under the
    model's PPL and returns per latent site its constrained values ``(C, *shape)``.
    """
    if init_strategy is None and init_params is None:
        return None
    if init_strategy is not None and init_params is not None:
        raise ValueError("give init_strategy or init_params, not both")
    if init_params is not None:
        theta = pack_unconstrained(init_params, backend.layout, num_chains)
    else:
        if not callable(init_strategy):
            raise TypeError(
                f"init_strategy must be an init strategy of the model's PPL (e.g. init_to_median), got {init_strategy!r}"
            )
        name = getattr(init_strategy, "__name__", None) or getattr(getattr(init_strategy, "func", None), "__name__",
                                                                     repr(init_strategy))
        ppl = _ppl_of(init_strategy)
        if ppl is not None and ppl != backend.name:
            raise TypeError(
                f"init_strategy {name!r} is a {ppl} init strategy but model {model_name(backend.model)!r} is a "
                f"{backend.name} program; use {backend.name}'s own ({_OWN_STRATEGIES[backend.name]}.{name})"
            )
        try:
            values = backend.strategy_values(init_strategy, num_chains, seed)
        except Exception as err:  # noqa: BLE001 - reported with the strategy that raised it
            first = (str(err).strip().splitlines() or [""])[0]
            improper = ("; a site with an improper prior has no prior draws to start from: use init_to_value or "
                        "init_params") if isinstance(err, NotImplementedError) else ""
            raise ValueError(
                f"init_strategy {name!r} failed on model {model_name(backend.model)!r}: "
                f"{type(err).__name__}: {first}{improper}"
            ) from err
        theta = np.asarray(backend.to_numpy(backend.unconstrain(values)), dtype=np.float64)
    bad = [s.name for s in backend.layout.latent if not np.all(np.isfinite(theta[:, s.offset : s.offset + s.size]))]
    if bad:
        given = "init_params" if init_params is not None else "init_strategy"
        raise ValueError(
            f"{given}: on model {model_name(backend.model)!r} the starting values of {bad} are not finite in the "
            "unconstrained space (a value on the boundary of its support?); choose others"
        )
    return theta
