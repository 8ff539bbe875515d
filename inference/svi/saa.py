"""The sample-average objective a fit is refined on: the bound over a fixed set of draws.

With the guide's base noise ``eps_1..M`` drawn once and held, the objective
``L_M(phi) = (1/G) sum_g L_K(phi; eps_g)`` (``G`` groups of ``K`` particles,
``M = G K``) is a deterministic, smooth function of the guide's parameters
``phi`` (draws ``z = g(eps, phi)``, reparameterised), so a quasi-Newton method
minimises it to machine precision. Its optimum ``phi_M`` tends to the optimum
of the expected bound as ``M`` grows, with an error of order ``M^-1/2``
(Giordano, Ingram and Broderick 2024, "Black box variational inference with a
deterministic objective"; Kim et al.'s earlier "sample average approximation"
for SVI). The gradient is the plain reparameterised one: ``stl`` and ``dreg``
are lower-variance *estimators* of the same gradient, which a fixed sample
does not need, and their surrogates are not the gradient of ``L_M``.

``ppzoo.fit`` starts this refinement from where its stochastic optimisation
ended (:mod:`ppzoo.diagnostics.fit_convergence` says when and why).
"""

from __future__ import annotations

import math
import numbers

import array_api_compat

from ppzoo.checks import check_count

from .annealed_elbo import AnnealedELBO
from .estimators import group_log_weights, logsumexp
from .iwae import IWAE

__all__ = ["GroupedIWAE", "sample_average_objective", "refinable"]


class GroupedIWAE(IWAE):
    """The mean of ``G`` independent IWAE bounds of ``K`` particles each, run as ``G K`` particles at once.

    ``(1/G) sum_g [c_g + s sum_b (logsumexp_k log w_gkb - log K)]`` per datum, or
    ``(1/G) sum_g [logsumexp_k log w_gk - log K]`` jointly, grouped as :class:`IWAE`
    groups its ``K`` particles (:func:`~ppzoo.inference.svi.estimators.group_log_weights`);
    reparameterised gradient. Particle ``g K + k`` is particle ``k`` of group ``g``.
    """

    def __init__(self, num_particles: int, num_groups: int, **options):
        self.group_size = check_count("num_particles", num_particles)
        self.num_groups = check_count("num_groups", num_groups)
        super().__init__(self.group_size * self.num_groups, "reparam", **options)

    def objective(self, terms, **extra):
        g, k = self.num_groups, self.group_size
        local = None if terms.model_local is None else terms.model_local - terms.guide_local
        lw, const, scale = group_log_weights(terms, terms.model_global - terms.guide_global, local)
        xp = array_api_compat.array_namespace(lw)
        grouped = xp.reshape(lw, (g, k, lw.shape[1]))  # (G, K, groups of IWAE)
        per_group = scale * xp.sum(logsumexp(grouped, axis=1) - math.log(k), axis=1)
        value = xp.mean(const) + xp.mean(per_group)
        return value, value

    def __repr__(self):
        return f"GroupedIWAE(num_particles={self.group_size}, num_groups={self.num_groups})"


def refinable(objective) -> bool:
    """Whether ``objective`` has a sample-average twin: an :class:`IWAE`, or an :class:`AnnealedELBO`
    with a constant ``beta`` (a schedule changes the optimum from step to step)."""
    if isinstance(objective, GroupedIWAE):
        return False
    if type(objective) is IWAE:
        return True
    return type(objective) is AnnealedELBO and isinstance(objective.beta, numbers.Real)


def sample_average_objective(objective, total_particles: int):
    """The reparameterised twin of ``objective`` over about ``total_particles`` fixed draws.

    ELBO: ``M = total_particles`` particles averaged (the ELBO of ``K``
    particles averaged is the same expectation). IWAE with ``K``: ``G =
    max(1, total_particles // K)`` groups of ``K``.

    The fixed-sample optimum errs by ``O(G^-1/2)`` in the guide's own units
    whatever ``K``; IWAE's bound is flatter in the guide's parameters the
    larger ``K`` (its guide gradient weakens), so it needs more groups than
    the ELBO needs particles: callers give IWAE ``K`` times the draws.
    """
    if not refinable(objective):
        raise ValueError(f"objective {objective!r} has no sample-average twin (an IWAE or a constant-beta ELBO)")
    options = dict(data_plate=objective.data_plate, max_plate_nesting=objective.max_plate_nesting)
    if isinstance(objective, IWAE):
        k = objective.num_particles
        return GroupedIWAE(k, max(1, total_particles // k), **options)
    return AnnealedELBO(objective.beta, total_particles, "reparam", **options)
