"""Quasi-Newton minimisation of a fit's sample-average objective (:mod:`ppzoo.inference.svi.saa`).

SciPy's L-BFGS-B on the flat unconstrained vector of a
:class:`ppzoo.backends.saa_problem.SAAProblem`. The objective over fixed
draws is deterministic and smooth, so the method converges superlinearly
where stochastic steps with a shrinking learning rate creep (see
:mod:`ppzoo.diagnostics.fit_convergence`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

__all__ = ["MinimizeResult", "minimize_sample_average", "MAX_ITERATIONS"]

#: L-BFGS iterations per refinement
MAX_ITERATIONS = 1000
#: a stop of the line search counts as converged when a quasi-Newton step would lower the objective by
#: at most this many nats: near an optimum the objective is about ``delta^2 / 2`` for a guide ``delta``
#: of its own sds away (a KL), so this is a remaining distance of about 0.014 sd
MAX_DECREASE = 1e-4


def _predicted_decrease(result, grad) -> float:
    """``g' H^-1 g / 2``: what a quasi-Newton step from ``result.x`` would gain, with L-BFGS's own
    inverse-Hessian estimate (infinite without one)."""
    hess_inv = getattr(result, "hess_inv", None)
    if hess_inv is None:
        return float("inf")
    return 0.5 * float(grad @ hess_inv.matvec(grad))


@dataclass
class MinimizeResult:
    """``x`` ``(P,)``: where it stopped; ``loss``: the objective there; ``start_loss``; ``iterations``;
    ``evaluations``; ``converged``: SciPy's convergence test was met (or the objective stopped
    changing at the precision it is computed in); ``message``: SciPy's word."""

    x: np.ndarray
    loss: float
    start_loss: float
    iterations: int
    evaluations: int
    converged: bool
    message: str


def minimize_sample_average(problem, seed: int, max_iterations: int = MAX_ITERATIONS, start=None) -> MinimizeResult:
    """Minimise ``problem.evaluate(., seed)`` from ``start`` (default ``problem.x0``) by L-BFGS-B.

    A line search that cannot lower the objective further counts as
    converged when a quasi-Newton step would gain at most :data:`MAX_DECREASE`:
    the objective is computed in single precision, and there the line search
    runs out of digits before SciPy's tolerances are met.
    """
    x0 = problem.x0 if start is None else np.asarray(start, dtype=np.float64)
    start_loss, start_grad = problem.evaluate(x0, seed)
    if not np.isfinite(start_loss) or not np.all(np.isfinite(start_grad)):
        return MinimizeResult(x0, start_loss, start_loss, 0, 1, False, "the objective is not finite at the start")

    def fun(x):
        loss, grad = problem.evaluate(x, seed)
        if not np.isfinite(loss) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros_like(grad)  # the line search backs off from non-finite points
        return loss, grad

    result = minimize(fun, x0, jac=True, method="L-BFGS-B",
                      options={"maxiter": max_iterations, "ftol": 1e-12, "gtol": 1e-6})
    _, grad = problem.evaluate(result.x, seed)
    message = str(result.message)
    converged = bool(result.success) or ("ABNORMAL" in message and _predicted_decrease(result, grad) <= MAX_DECREASE)
    return MinimizeResult(np.asarray(result.x, dtype=np.float64), float(result.fun), float(start_loss), int(result.nit),
                          int(result.nfev), converged, message)
