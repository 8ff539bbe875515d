"""The beta-weighted ELBO with a schedule for beta (KL annealing, beta-VAE)."""

from __future__ import annotations

import numbers

from ppzoo.checks import check_count, check_number

from .base import SVIObjective
from .estimators import annealed_elbo_objective

__all__ = ["AnnealedELBO", "LinearWarmup"]


class LinearWarmup:
    """``beta_t = final * min(1, t / steps)``: the usual KL warm-up (``t`` counts steps from 0)."""

    def __init__(self, steps: int, final: float = 1.0):
        self.steps, self.final = check_count("steps", steps), check_number("final", final, low=0.0)

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

    def split_extras(self, kwargs, count_step=None):
        kwargs = dict(kwargs)
        t = kwargs.pop("annealing_step", None)
        if t is None and callable(self.beta):
            if count_step is None:
                raise ValueError(
                    "AnnealedELBO with a beta schedule needs annealing_step= on NumPyro "
                    "(e.g. svi.update(state, *args, annealing_step=i)); ppzoo.fit passes it"
                )
            t = self.step
            if count_step:
                self.step += 1
        return {"beta": self.beta_at(t if t is not None else 0)}, kwargs

    def objective(self, terms, beta=1.0):
        return annealed_elbo_objective(terms, beta)

    def __repr__(self):
        return f"AnnealedELBO(beta={self.beta!r}, num_particles={self.num_particles}, estimator={self.estimator!r})"
