"""The importance-weighted bound (IWAE) with the reparam, STL and DReG gradient estimators."""

from __future__ import annotations

from ppzoo.backends.svi_common import ESTIMATORS

from .base import SVIObjective
from .estimators import iwae_objective

__all__ = ["IWAE"]


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
