"""Gradient estimators: how a Langevin sampler estimates ``grad U`` from a minibatch.

Each estimator is a pure function of the backend's gradient oracle
(:class:`ppzoo.backends.Backend`) and arrays; it returns the estimate and the
per-datum gradient evaluations it spent, per chain, so samplers are compared
per unit of work.
"""

from __future__ import annotations

__all__ = ["minibatch_gradient"]


def minibatch_gradient(backend, position, idx):
    """The plain stochastic gradient of SGLD.

    ``g = grad[-log p(theta)] + (N / B) * sum_{i in idx} grad[-log p(x_i | theta)]``,
    unbiased for ``grad U(theta)`` when ``idx`` is drawn uniformly.

    Args:
        backend: the gradient oracle.
        position: ``(C, D)``.
        idx: ``(C, B)`` indices into the data plate.

    Returns:
        ``(g, cost)``: ``g`` of shape ``(C, D)`` and ``cost = B`` per-datum
        gradient evaluations per chain.
    """
    return backend.grad(position, idx), idx.shape[1]
