"""SVI objectives that are the ``loss`` of Pyro's and of NumPyro's ``SVI`` alike.

One object, two entry points, each the one its PPL calls:

* Pyro's ``pyro.infer.SVI(model, guide, optim, loss=IWAE(...))`` calls
  ``loss.loss_and_grads(model, guide, *args, **kwargs)`` (back-propagate,
  return the loss as a float) and ``loss.loss(model, guide, ...)``: the
  objectives are registered as virtual subclasses of Pyro's ``ELBO`` (an
  ``abc`` registration, made when an objective is created with Pyro
  imported, so that NumPyro users never import torch). Calling the object,
  ``IWAE(...)(model, guide, *args)``, returns the differentiable loss tensor
  (value: minus the bound; gradient: the chosen estimator's).
* NumPyro's ``numpyro.infer.SVI(model, guide, optim, loss=IWAE(...))`` calls
  ``loss.loss(rng_key, param_map, model, guide, *args, **kwargs)`` under
  ``jax.grad``: here :meth:`SVIObjective.loss` (which, given a model first,
  also answers Pyro-style with a float, as Pyro's ``ELBO.loss`` does).

Neither PPL is imported until the objective is used with it.
"""

from __future__ import annotations

import numbers
import sys

from ppzoo.backends.svi_common import ESTIMATORS

from .estimators import annealed_elbo_objective, iwae_objective

__all__ = ["IWAE", "AnnealedELBO", "LinearWarmup", "SVIObjective"]


def _register_with_pyro():
    """Make ``isinstance(objective, pyro.infer.ELBO)`` true, so Pyro's ``SVI`` calls ``loss_and_grads``."""
    from pyro.infer.elbo import ELBO

    if not issubclass(SVIObjective, ELBO):
        ELBO.register(SVIObjective)


class SVIObjective:
    """Shared machinery: particles, data plate, the two PPL entry points.

    Args:
        num_particles: ``K >= 1`` draws from the guide per datum and step.
        data_plate: the plate holding the data (default: the outermost plate
            around every observed site).
        max_plate_nesting: Pyro only: plates nested in the program (default:
            found by tracing it once); particles take the next dimension left.
    """

    #: NumPyro's SVI asks this before fitting models with discrete latents
    can_infer_discrete = False
    estimator = "reparam"

    def __init__(self, num_particles: int = 1, *, data_plate: str | None = None, max_plate_nesting: int | None = None):
        if isinstance(num_particles, bool) or not isinstance(num_particles, numbers.Integral):
            raise TypeError(f"num_particles must be an integer >= 1, got {num_particles!r}")
        if num_particles < 1:
            raise ValueError(f"num_particles must be >= 1, got {num_particles}")
        if max_plate_nesting is not None and (not isinstance(max_plate_nesting, numbers.Integral) or max_plate_nesting < 0):
            raise ValueError(f"max_plate_nesting must be a non-negative integer or None, got {max_plate_nesting!r}")
        if "pyro" in sys.modules:
            _register_with_pyro()
        self.num_particles = int(num_particles)
        self.data_plate = data_plate
        self.max_plate_nesting = max_plate_nesting
        self._nesting_cache = {}

    # -- the objective proper: (value, surrogate) from the per-particle terms
    def objective(self, terms, **extra):
        raise NotImplementedError

    def _extra(self, kwargs, backend):
        return {}, kwargs

    # -- Pyro
    def pyro_terms(self, model, guide, *args, **kwargs):
        """``LogDensityTerms`` (torch) of one vectorised run of ``guide`` and ``model``."""
        from ppzoo.backends import pyro_svi

        key = (id(model), id(guide))
        nesting = self.max_plate_nesting
        if nesting is None:
            if key not in self._nesting_cache:
                self._nesting_cache[key] = pyro_svi.guess_max_plate_nesting(model, guide, args, kwargs)
            nesting = self._nesting_cache[key]
        terms, _, _ = pyro_svi.log_density_terms(
            model, guide, args, kwargs, num_particles=self.num_particles, max_plate_nesting=nesting,
            estimator=self.estimator, data_plate=self.data_plate,
        )
        return terms

    def __call__(self, model, guide, *args, **kwargs):
        """Pyro: the differentiable loss ``-surrogate`` (value: minus the bound)."""
        extra, kwargs = self._extra(kwargs, "pyro")
        terms = self.pyro_terms(model, guide, *args, **kwargs)
        _, surrogate = self.objective(terms, **extra)
        return -surrogate

    def loss_and_grads(self, model, guide, *args, **kwargs):
        """Pyro's ``ELBO`` contract: back-propagate the loss and return its value as a float."""
        loss = self(model, guide, *args, **kwargs)
        if loss.requires_grad:
            loss.backward()
        return float(loss.detach())

    # -- NumPyro
    def numpyro_terms(self, rng_key, param_map, model, guide, *args, **kwargs):
        """``LogDensityTerms`` (JAX) of ``K`` vmapped particles."""
        from ppzoo.backends import numpyro_svi

        return numpyro_svi.log_density_terms(
            model, guide, args, kwargs, rng_key=rng_key, param_map=param_map, num_particles=self.num_particles,
            estimator=self.estimator, data_plate=self.data_plate,
        )

    def loss(self, *args, **kwargs):
        """NumPyro: ``loss(rng_key, param_map, model, guide, *args, **kwargs)``, differentiable.

        Pyro style, ``loss(model, guide, *args, **kwargs)``: the negative bound as a float.
        """
        if args and callable(args[0]):
            import torch

            with torch.no_grad():
                return float(self(*args, **kwargs))
        rng_key, param_map, model, guide, *args = args
        extra, kwargs = self._extra(kwargs, "numpyro")
        terms = self.numpyro_terms(rng_key, param_map, model, guide, *args, **kwargs)
        _, surrogate = self.objective(terms, **extra)
        return -surrogate

    def loss_with_mutable_state(self, rng_key, param_map, model, guide, *args, **kwargs):
        """NumPyro: ``{"loss": ..., "mutable_state": None}`` (no mutable sites are tracked)."""
        return {"loss": self.loss(rng_key, param_map, model, guide, *args, **kwargs), "mutable_state": None}


class IWAE(SVIObjective):
    """The importance-weighted bound ``L_K = E[log (1/K) sum_k p(x, z_k) / q(z_k | x)]`` (Burda et al. 2016).

    ``K = 1`` is the ELBO. Per datum when every latent is in the data plate
    (a VAE), jointly otherwise (see :mod:`ppzoo.inference.svi.estimators`).

    Args:
        num_particles: ``K``.
        estimator: ``"reparam"`` (the plain reparameterised gradient),
            ``"stl"`` (sticking the landing, Roeder et al. 2017) or ``"dreg"``
            (doubly reparameterised, Tucker et al. 2019). All three give the
            same gradient for the model's parameters; they differ for the
            guide's. ``stl`` is biased for the guide when ``K > 1``; ``dreg``
            is not. Every guide site must be reparameterisable.

    Example (either PPL)::

        svi = SVI(model, guide, optim, loss=IWAE(num_particles=50, estimator="dreg"))
    """

    def __init__(self, num_particles: int = 1, estimator: str = "reparam", **options):
        super().__init__(num_particles, **options)
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        self.estimator = estimator

    def objective(self, terms, **extra):
        return iwae_objective(terms, self.estimator)

    def __repr__(self):
        return f"IWAE(num_particles={self.num_particles}, estimator={self.estimator!r})"


class LinearWarmup:
    """``beta_t = final * min(1, t / steps)``: the usual KL warm-up (``t`` counts steps from 0)."""

    def __init__(self, steps: int, final: float = 1.0):
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        if not isinstance(final, numbers.Real) or not final >= 0:
            raise ValueError(f"final must be a number >= 0, got {final!r}")
        self.steps, self.final = int(steps), float(final)

    def __call__(self, t):
        x = t / self.steps
        return self.final * 0.5 * (x + 1 - abs(x - 1))  # min(x, 1), arithmetic only so t may be traced

    def __repr__(self):
        return f"LinearWarmup(steps={self.steps}, final={self.final})"


class AnnealedELBO(SVIObjective):
    """The beta-weighted ELBO ``E_q[log p(x|z)] - beta_t KL(q(z|x) || p(z))``, ``K`` particles averaged.

    ``beta`` is a number (beta-VAE, Higgins et al. 2017) or a schedule
    ``t -> beta_t`` such as :class:`LinearWarmup` (KL annealing, Bowman et al.
    2016). ``estimator="stl"`` drops the guide's score term (Roeder et al. 2017). The step ``t`` is the keyword ``annealing_step=`` of the call
    (``svi.update(state, x, annealing_step=i)``; ``ppzoo.fit`` passes it);
    under Pyro, without it, the object counts its own differentiated calls.
    NumPyro traces the loss under ``jit``, so a schedule there needs
    ``annealing_step=``.
    """

    def __init__(self, beta=1.0, num_particles: int = 1, estimator: str = "reparam", **options):
        super().__init__(num_particles, **options)
        if estimator not in ("reparam", "stl"):
            raise ValueError(
                f"estimator must be one of ('reparam', 'stl') for the ELBO, got {estimator!r} "
                "(with one particle per average, 'dreg' is 'stl'; use IWAE for 'dreg')"
            )
        self.estimator = estimator
        if callable(beta):
            self.beta = beta
        elif isinstance(beta, numbers.Real) and not isinstance(beta, bool) and beta >= 0:
            self.beta = float(beta)
        else:
            raise ValueError(f"beta must be a number >= 0 or a schedule t -> beta_t, got {beta!r}")
        self.step = 0

    def beta_at(self, t):
        return self.beta(t) if callable(self.beta) else self.beta

    def _extra(self, kwargs, backend):
        kwargs = dict(kwargs)
        t = kwargs.pop("annealing_step", None)
        if t is None and callable(self.beta):
            if backend == "numpyro":
                raise ValueError(
                    "AnnealedELBO with a beta schedule needs annealing_step= on NumPyro "
                    "(e.g. svi.update(state, *args, annealing_step=i)); ppzoo.fit passes it"
                )
            import torch

            t = self.step
            if torch.is_grad_enabled():
                self.step += 1
        return {"beta": self.beta_at(t if t is not None else 0)}, kwargs

    def objective(self, terms, beta=1.0):
        return annealed_elbo_objective(terms, beta)

    def __repr__(self):
        return f"AnnealedELBO(beta={self.beta!r}, num_particles={self.num_particles}, estimator={self.estimator!r})"
