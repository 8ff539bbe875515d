"""The base of the SVI objectives: one object that is the ``loss`` of Pyro's and of NumPyro's ``SVI`` alike.

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

import sys

from ppzoo.checks import check_count

__all__ = ["SVIObjective"]


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
        num_particles = check_count("num_particles", num_particles)
        if max_plate_nesting is not None:
            max_plate_nesting = check_count("max_plate_nesting", max_plate_nesting, 0)
        if "pyro" in sys.modules:
            _register_with_pyro()
        self.num_particles = int(num_particles)
        self.data_plate = data_plate
        self.max_plate_nesting = max_plate_nesting
        #: Pyro: ``{(model, guide): pyro_svi.Probe}``, one unvectorised trace per pair of programs
        self._probes = {}
        #: Pyro: how each (model, guide) pair's particles run (``pyro_svi.ParticleWays``), made when used
        self._particle_ways = None

    # -- the objective proper: (value, surrogate) from the per-particle terms
    def objective(self, terms, **extra):
        raise NotImplementedError

    def split_extras(self, kwargs, count_step=None):
        """``(extras, kwargs)``: the objective's own per-call numbers (e.g. ``beta``) and the programs' keyword arguments.

        ``count_step``: ``None`` where the caller must say the step (NumPyro's
        ``SVI``, whose updates are pure functions); ``True`` or ``False`` where
        the objective may count training calls itself (Pyro's ``SVI``: whether
        this call is one, i.e. computes gradients).
        """
        return {}, kwargs

    # -- Pyro
    def pyro_terms(self, model, guide, *args, **kwargs):
        """``LogDensityTerms`` (torch) of one run of ``guide`` and ``model``, particles vectorised.

        The particles are vectorised in a ``pyro.plate``, else with the model
        under ``torch.func.vmap``, else run one at a time (with one warning);
        ``pyro_svi.ParticleWays`` remembers which for the pair of programs.
        """
        from ppzoo.backends import pyro_svi

        key = (model, guide)  # the programs themselves (not ids, which can be reused)
        probe = lambda: self._pyro_probe(key, args, kwargs)  # noqa: E731 - asked only where needed
        nesting = self.max_plate_nesting
        if nesting is None:
            nesting = probe().max_plate_nesting
        options = dict(num_particles=self.num_particles, max_plate_nesting=nesting, estimator=self.estimator,
                       data_plate=self.data_plate)
        if self._particle_ways is None:
            self._particle_ways = pyro_svi.ParticleWays()
        run = self._particle_ways.run(
            model, guide, args, kwargs, batch_ranks=lambda: probe().batch_ranks, **options
        )
        if run is None:
            return pyro_svi.looped_terms(model, guide, args, kwargs, **options)
        return run.terms

    def _pyro_probe(self, key, args, kwargs):
        """``pyro_svi.probe`` of the pair ``key = (model, guide)``, traced once (16 pairs kept)."""
        from ppzoo.backends import pyro_svi

        if key not in self._probes:
            if len(self._probes) >= 16:
                self._probes.pop(next(iter(self._probes)))
            self._probes[key] = pyro_svi.probe(*key, args, kwargs)
        return self._probes[key]

    def __call__(self, model, guide, *args, **kwargs):
        """Pyro: the differentiable loss ``-surrogate`` (value: minus the bound)."""
        import torch

        extras, kwargs = self.split_extras(kwargs, count_step=torch.is_grad_enabled())
        return self.pyro_loss(model, guide, args, kwargs, extras)

    def pyro_loss(self, model, guide, args, kwargs, extras):
        """Pyro: the differentiable loss given the extras already split off (:meth:`split_extras`)."""
        terms = self.pyro_terms(model, guide, *args, **kwargs)
        _, surrogate = self.objective(terms, **extras)
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
        extra, kwargs = self.split_extras(kwargs, count_step=None)
        terms = self.numpyro_terms(rng_key, param_map, model, guide, *args, **kwargs)
        _, surrogate = self.objective(terms, **extra)
        return -surrogate

    def loss_with_mutable_state(self, rng_key, param_map, model, guide, *args, **kwargs):
        """NumPyro: ``{"loss": ..., "mutable_state": None}`` (no mutable sites are tracked)."""
        return {"loss": self.loss(rng_key, param_map, model, guide, *args, **kwargs), "mutable_state": None}
