"""Gradient estimators: how a Langevin sampler estimates ``grad U`` from a minibatch.

Each estimator is a pure function of the backend's gradient oracle
(:class:`ppzoo.backends.Backend`) and chain-batched arrays. With
``U(theta) = u_0(theta) + sum_i u_i(theta)``, ``u_0 = -log p(theta) - log|J|``
and ``u_i = -log p(x_i | theta)``, the oracle's ``grad(theta, I)`` is
``grad u_0(theta) + (N / B) sum_{i in I} grad u_i(theta)``. Every estimator
below is unbiased for ``grad U(theta)`` when ``I`` holds ``B`` indices drawn
uniformly with replacement; the variance-reduced ones differ in what they
subtract. The prior term cancels in the differences, so it is always exact.
"""

from __future__ import annotations

__all__ = ["minibatch_gradient", "anchored_gradient", "sarah_gradient"]


def minibatch_gradient(backend, position, idx):
    """SGLD's plain stochastic gradient, ``grad u_0(theta) + (N/B) sum_I grad u_i(theta)``.

    Args:
        position: ``(C, D)``; idx: ``(C, B)``.

    Returns:
        ``(C, D)``. Cost: ``B`` per-datum gradient evaluations per chain.
    """
    return backend.grad(position, idx)


def anchored_gradient(backend, position, idx, anchor, anchor_grad):
    """The control-variate estimate around an anchor point.

    ``v = (N/B) sum_I [grad u_i(theta) - grad u_i(anchor)] + grad U(anchor)``,
    with ``anchor_grad = grad U(anchor)`` a full gradient. SVRG-LD (Dubey et
    al. 2016) refreshes the anchor (its snapshot) every ``m`` steps; SGLD-CV
    (Baker, Fearnhead, Fox & Nemeth 2019) fixes it at a MAP estimate.

    Args:
        position, anchor, anchor_grad: ``(C, D)``; idx: ``(C, B)``.

    Returns:
        ``(C, D)``. Cost: ``2 B`` per chain.
    """
    return backend.grad(position, idx) - backend.grad(anchor, idx) + anchor_grad


def sarah_gradient(backend, position, previous_position, previous_estimate, idx):
    """SARAH's recursive estimate (Nguyen et al. 2017; SARAH-LD, Kinoshita & Suzuki 2022).

    ``v_k = (N/B) sum_I [grad u_i(theta_k) - grad u_i(theta_{k-1})] + v_{k-1}``.
    Unbiased only conditionally on ``v_{k-1}`` being so; the recursion is
    reset to a full gradient every ``m`` steps by the kernel.

    Args:
        position, previous_position, previous_estimate: ``(C, D)``; idx: ``(C, B)``.

    Returns:
        ``(C, D)``. Cost: ``2 B`` per chain.
    """
    return backend.grad(position, idx) - backend.grad(previous_position, idx) + previous_estimate
