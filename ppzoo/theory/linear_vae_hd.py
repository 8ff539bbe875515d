"""The linear VAE in high dimension: order-parameter ODEs of online SGD, and the minimiser on
``P = alpha N`` samples.

Data (the spiked covariance model): ``x = sqrt(rho / N) W* c + sqrt(eta) n`` in ``R^N``,
``c ~ N(0, I_{M*})``, ``n ~ N(0, I_N)``, with ``W*' W* / N = I_{M*}``.

VAE, no biases: encoder ``q(z | x) = N(W~ x / sqrt(N), diag(v))`` (``v`` the same for
every ``x``), decoder ``p(x | z) = N(W z / sqrt(N), I_N)``, prior ``N(0, I_M)``. With
``s = W' x / sqrt(N)``, ``mu = W~ x / sqrt(N)`` and ``Q = W' W / N`` the loss per datum
(the negative beta-ELBO, constants dropped, the expectation over ``z`` exact) is::

    l(x) = 1/2 [-2 s . mu + mu' Q mu + sum_k Q_kk v_k] + beta/2 sum_k (mu_k^2 + v_k - log v_k)

Order parameters: ``m = W' W* / N`` (M, M*), ``d = W~ W* / N`` (M, M*), ``Q = W' W / N``,
``E = W~ W~' / N``, ``R = W' W~' / N`` (M, M) and ``v`` (M,).

**Online SGD** (Ichikawa & Hukushima, AISTATS 2024): one fresh datum a step, step ``tau`` for
``W`` and ``W~`` and ``tau / N`` for ``v``, a ridge ``lambda / (2N) (|W|^2 + |W~|^2)`` per
datum. As ``N -> infinity`` at ``t = step / N`` the order parameters follow deterministic
ODEs (:func:`rhs`). With ``D = diag(v)``, ``C = <mu mu'> = rho d d' + eta E``,
``<s mu'> = rho m d' + eta R``, ``<s s'> = rho m m' + eta Q`` and ``g = (Q + beta) mu - s``
(the loss's gradient in ``mu``)::

    dm/dt = tau [(rho + eta) d - (C + D + lambda) m]
    dd/dt = tau [(rho + eta)(m - (Q + beta) d) - lambda d]
    dQ/dt = tau (A + A') + tau^2 eta C,                  A = <s mu'> - Q (C + D) - lambda Q
    dE/dt = -tau (B + B') + tau^2 eta <g g'>,            B = <mu g'> + lambda E
    dR/dt = tau [C - (C + D) R - 2 lambda R - <s g'>] - tau^2 eta <mu g'>
    dv_k/dt = -(tau / 2) [Q_kk + beta (1 - 1 / v_k)]

The ``tau^2`` terms come from ``|x|^2 / N -> eta`` in the squared update. Each moment is a
Gaussian second moment (``g`` is linear in ``x``), so the system is closed.

As ``tau -> 0`` with ``lambda = 0`` and ``M = M* = 1`` the stable fixed point is
``Q* = rho + eta - beta``, ``m*^2 = Q*``, ``v* = beta / (rho + eta)`` for ``beta < rho + eta`` and
the collapsed state ``m = d = Q = E = R = 0``, ``v = 1`` beyond (:func:`small_step_fixed_point`).

**SVI's estimate** (``Setting(sampled_z=True)``): with one ``z = mu + D^{1/2} eps`` per datum and
the KL sampled as ``log q(z) - log p(z)`` (its ``mu``-gradient is then ``z``), the gradients are
``-x z' / sqrt(N) + W z z' / N`` for ``W`` and ``((Q + beta) z - s) x' / sqrt(N)`` for ``W~``: the
same means, so the ``tau`` terms stand, while the ``tau^2`` terms read ``<z z'> = C + D`` for
``C`` in ``dQ/dt``, ``<g g'> + (Q + beta) D (Q + beta)`` in ``dE/dt`` and ``<mu g'> + D (Q + beta)``
for ``<mu g'>`` in ``dR/dt``. ``v``'s own noise vanishes as ``N -> infinity`` (its step is
``tau / N``).

**A data set of** ``P = alpha N`` **samples** (Ichikawa & Hukushima, J. Stat. Mech. 2025), the
loss summed over the samples and the ridge ``lambda/2 (|W|^2 + |W~|^2)`` added once, with
``M = M* = 1``: divided by ``P`` and with ``w = W / sqrt(N)``, ``w~ = W~' / sqrt(N)`` and
``S = (1/P) sum_mu x_mu x_mu'`` it is::

    -w' S w~ + 1/2 (|w|^2 + beta) w~' S w~ + 1/2 |w|^2 v + beta/2 (v - log v) + lambda/(2 alpha) (|w|^2 + |w~|^2)

minimised along the top eigenvector ``u`` of ``S`` (eigenvalue ``c_1``): ``w = a u``,
``w~ = b u`` with ``v = beta / (a^2 + beta)``, ``b = a c_1 / ((a^2 + beta) c_1 + l)``
(``l = lambda / alpha``, ``ridge`` in the code) and ``q = a^2 > 0`` solving::

    q c_1^3 / ((q + beta) c_1 + l)^2 + beta / (q + beta) + l = c_1^2 / ((q + beta) c_1 + l)

(:func:`dataset_minimiser`). There is no root, and the minimiser is collapsed (``w = 0``),
iff ``c_1^2 <= (1 + l)(beta c_1 + l)``. As ``N -> infinity`` above the BBP threshold
``alpha > eta^2 / rho^2``: ``c_1 = (rho + eta)(1 + eta / (alpha rho))`` and the squared
overlap of ``u`` with ``W* / sqrt(N)`` is ``(1 - eta^2/(alpha rho^2)) / (1 + eta/(alpha rho))``
(:func:`spike_limit`, :func:`limit_minimiser`); at ``rho = eta = lambda = 1`` collapse holds up
to ``alpha_c = (2 beta - 3) / (2 (2 - beta))`` where that is at least 1 (:func:`collapse_alpha`).

Rate and distortion of that minimiser on data whose second moment along ``u`` is
``c = E[(u . x)^2]`` (``c_1`` on the training set; ``rho o^2 + eta`` on fresh data, ``o`` the
overlap): the mean KL ``R = 1/2 (b^2 c + v - log v - 1)`` and the distortion excess
``D = E_q 1/2 |x - W z / sqrt(N)|^2 - 1/2 |x|^2 = -a b c + 1/2 a^2 (b^2 c + v)``, which is
``0`` for the collapsed model (:func:`rate_distortion`, :func:`limit_rate_distortion`).

The generalisation error is ``eps_g = (1/N) |sqrt(rho) W* - W|^2`` up to the sign of each
latent: ``rho M* - 2 sqrt(rho) sum_k |m_k| + sum_kl s_k s_l Q_kl`` with ``s_k = sign(m_k)``
for ``M* = 1`` (:func:`generalisation_error`; ``rho - 2 sqrt(rho) |m| + Q`` at ``M = 1``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
from scipy import optimize
from scipy.integrate import solve_ivp

__all__ = [
    "OrderParameters",
    "Setting",
    "moments",
    "rhs",
    "integrate",
    "fixed_point",
    "small_step_fixed_point",
    "generalisation_error",
    "dataset_minimiser",
    "spike_limit",
    "limit_minimiser",
    "collapse_alpha",
    "collapses",
    "rate_distortion",
    "limit_rate_distortion",
]


@dataclass(frozen=True)
class OrderParameters:
    """``m``, ``d`` ``(M, M*)``; ``Q``, ``E``, ``R`` ``(M, M)``; ``v`` ``(M,)``, NumPy float64."""

    m: np.ndarray
    d: np.ndarray
    Q: np.ndarray
    E: np.ndarray
    R: np.ndarray
    v: np.ndarray

    @property
    def latent_dim(self) -> int:
        return self.m.shape[0]

    @property
    def teacher_dim(self) -> int:
        return self.m.shape[1]

    def pack(self) -> np.ndarray:
        """One flat vector (the ODE's state)."""
        return np.concatenate([np.asarray(getattr(self, f.name), dtype=np.float64).ravel() for f in fields(self)])

    @classmethod
    def unpack(cls, y, latent_dim: int, teacher_dim: int) -> OrderParameters:
        M, K = latent_dim, teacher_dim
        sizes = [M * K, M * K, M * M, M * M, M * M, M]
        shapes = [(M, K), (M, K), (M, M), (M, M), (M, M), (M,)]
        parts, start = [], 0
        for size, shape in zip(sizes, shapes):
            parts.append(np.asarray(y[start:start + size], dtype=np.float64).reshape(shape))
            start += size
        if start != len(y):
            raise ValueError(f"y: expected {start} values for M={M}, M*={K}, got {len(y)}")
        return cls(*parts)


@dataclass(frozen=True)
class Setting:
    """The data's and the SGD's constants. ``beta`` is a number or a schedule ``beta(t)``.

    ``sampled_z=True`` describes SGD on the ELBO estimated as SVI does it, with one reparameterised
    ``z = mu + D^{1/2} eps`` per datum and the KL term sampled too (``log q(z) - log p(z)``), rather
    than on the exact loss: see :func:`rhs`."""

    rho: float = 1.0
    eta: float = 1.0
    beta: object = 1.0
    lam: float = 0.0
    tau: float = 0.1
    sampled_z: bool = False

    def __post_init__(self):
        for name in ("rho", "eta", "tau"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not (np.isfinite(self.lam) and self.lam >= 0):
            raise ValueError(f"lam must be a finite number >= 0, got {self.lam!r}")
        if not callable(self.beta) and not (np.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta must be a finite number > 0 or a schedule beta(t), got {self.beta!r}")

    def beta_at(self, t: float) -> float:
        return float(self.beta(t)) if callable(self.beta) else float(self.beta)


def moments(p: OrderParameters, setting: Setting, beta: float) -> dict:
    """The Gaussian second moments the ODEs need, each ``(M, M)``: ``C = <mu mu'>``,
    ``s_mu = <s mu'>``, ``s_s = <s s'>``, ``mu_g = <mu g'>``, ``s_g = <s g'>``, ``g_g = <g g'>``."""
    rho, eta = setting.rho, setting.eta
    qb = p.Q + beta * np.eye(p.latent_dim)
    C = rho * p.d @ p.d.T + eta * p.E
    s_mu = rho * p.m @ p.d.T + eta * p.R
    s_s = rho * p.m @ p.m.T + eta * p.Q
    mu_g = C @ qb - s_mu.T
    s_g = s_mu @ qb - s_s
    g_g = qb @ C @ qb - qb @ s_mu.T - s_mu @ qb + s_s
    return {"C": C, "s_mu": s_mu, "s_s": s_s, "mu_g": mu_g, "s_g": s_g, "g_g": g_g}


def _symmetric(a: np.ndarray) -> np.ndarray:
    """``(a + a') / 2``, exactly symmetric in floating point."""
    return 0.5 * (a + a.T)


def _on_symmetric_matrices(p: OrderParameters) -> OrderParameters:
    return replace(p, Q=_symmetric(p.Q), E=_symmetric(p.E))


def rhs(t: float, y: np.ndarray, setting: Setting, latent_dim: int, teacher_dim: int) -> np.ndarray:
    """``dy/dt`` of the packed order parameters ``y`` (:meth:`OrderParameters.pack`) at time ``t``.

    ``Q`` and ``E`` are Gram matrices: the flow reads their symmetric parts and its ``dQ``, ``dE``
    are exactly symmetric, so an antisymmetric part stays where it started. Without this, rounding
    in ``<g g'>`` seeds one that grows (as ``e^{0.027 t}`` at ``M = 2``, ``beta = 0.5``, ``tau = 0.1``)
    until the flow leaves its fixed point near ``t = 1500``.
    """
    p = _on_symmetric_matrices(OrderParameters.unpack(y, latent_dim, teacher_dim))
    rho, eta, lam, tau = setting.rho, setting.eta, setting.lam, setting.tau
    beta = setting.beta_at(t)
    mo = moments(p, setting, beta)
    eye = np.eye(latent_dim)
    D = np.diag(p.v)
    qb = p.Q + beta * eye
    C, s_mu, mu_g = mo["C"], mo["s_mu"], mo["mu_g"]
    dm = tau * ((rho + eta) * p.d - (C + D + lam * eye) @ p.m)
    dd = tau * ((rho + eta) * (p.m - qb @ p.d) - lam * p.d)
    A = s_mu - p.Q @ (C + D) - lam * p.Q
    B = mu_g + lam * p.E
    z_z, g_g, z_g = C, mo["g_g"], mu_g
    if setting.sampled_z:
        # z = mu + D^{1/2} eps moves the gradients' second moments only (their means are the exact
        # loss's): <z z'> = C + D, and g becomes (Q + beta) z - s, adding (Q + beta) D^{1/2} eps
        z_z, g_g, z_g = C + D, g_g + qb @ D @ qb, mu_g + D @ qb
    dQ = _symmetric(tau * (A + A.T) + tau**2 * eta * z_z)
    dE = _symmetric(-tau * (B + B.T) + tau**2 * eta * g_g)
    dR = tau * (C - (C + D) @ p.R - 2 * lam * p.R - mo["s_g"]) - tau**2 * eta * z_g
    dv = -(tau / 2) * (np.diag(p.Q) + beta * (1 - 1 / p.v))
    return OrderParameters(dm, dd, dQ, dE, dR, dv).pack()


# The order parameters of a flow that settles stay within a few times their start and of
# rho + eta; beyond this multiple the integration stops and says so rather than chasing the blow-up.
_RUNAWAY = 1e4


def integrate(initial: OrderParameters, setting: Setting, times, rtol: float = 1e-8, atol: float = 1e-10):
    """The ODEs from ``initial`` at ``t = 0`` to the sorted ``times`` ``(T,)``: a list of
    :class:`OrderParameters`, one per time (``scipy.integrate.solve_ivp`` with LSODA, which switches
    to a stiff method where the flow needs one, as near collapse). Raises ``RuntimeError`` where the
    integration fails or an order parameter runs past ``1e4`` times the largest initial one."""
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or len(times) == 0 or np.any(np.diff(times) < 0) or times[0] < 0:
        raise ValueError("times: expected a non-empty increasing 1-d array of times >= 0")
    M, K = initial.latent_dim, initial.teacher_dim
    start = _on_symmetric_matrices(initial).pack()
    bound = _RUNAWAY * max(1.0, float(np.abs(start).max()))

    def runaway(t, y, *args):
        return bound - np.abs(y).max()

    runaway.terminal = True
    sol = solve_ivp(rhs, (0.0, float(times[-1])), start, method="LSODA", t_eval=times, events=runaway,
                    args=(setting, M, K), rtol=rtol, atol=atol)
    if sol.status == 1:
        raise RuntimeError(f"the ODE's order parameters ran away: |y| reached {bound:g} at t = {sol.t_events[0][0]:.4g}")
    if not sol.success:
        raise RuntimeError(f"the ODE integration failed: {sol.message}")
    return [OrderParameters.unpack(sol.y[:, i], M, K) for i in range(sol.y.shape[1])]


def fixed_point(start: OrderParameters, setting: Setting, t_max: float = 2e4) -> OrderParameters:
    """The fixed point the ODEs reach from ``start`` (constant ``beta``): integrated to ``t_max``,
    then polished by root finding on :func:`rhs`; its ``Q`` and ``E`` are exactly symmetric. Raises
    where the flow has not settled."""
    if callable(setting.beta):
        raise ValueError("beta: fixed_point needs a constant beta, got a schedule")
    end = integrate(start, setting, [t_max])[-1]
    M, K = start.latent_dim, start.teacher_dim
    found = optimize.root(lambda y: rhs(0.0, y, setting, M, K), end.pack(), method="hybr", tol=1e-12)
    # rhs does not see the antisymmetric parts of Q and E, so the root finder may move them freely:
    # the point is put back on symmetric matrices.
    point = _on_symmetric_matrices(OrderParameters.unpack(found.x if found.success else end.pack(), M, K))
    residual = np.abs(rhs(0.0, point.pack(), setting, M, K)).max()
    if residual > 1e-8 or np.abs(point.pack() - end.pack()).max() > 1e-3:
        raise RuntimeError(f"the flow has not settled by t = {t_max:g} (residual {residual:.2g}); raise t_max")
    return point


def small_step_fixed_point(rho: float, eta: float, beta: float) -> dict:
    """The ``tau -> 0``, ``lambda = 0``, ``M = M* = 1`` fixed point in closed form:
    ``Q* = max(rho + eta - beta, 0)``, ``|m*| = sqrt(Q*)``, ``v* = min(beta / (rho + eta), 1)``,
    ``eps_g* = (sqrt(rho) - sqrt(Q*))^2``."""
    q = max(rho + eta - beta, 0.0)
    return {"Q": q, "m": np.sqrt(q), "v": min(beta / (rho + eta), 1.0), "eps_g": (np.sqrt(rho) - np.sqrt(q)) ** 2}


def generalisation_error(p: OrderParameters, rho: float) -> float:
    """``(1/N) |sqrt(rho) W* - W S|^2`` for ``M* = 1``, ``S`` the diagonal of latent signs that
    best aligns ``W`` with ``W*``: ``rho - 2 sqrt(rho) sum_k |m_k| + s' Q s``, ``s = sign(m)``."""
    if p.teacher_dim != 1:
        raise ValueError(f"generalisation_error: defined here for M* = 1, got M* = {p.teacher_dim}")
    m = p.m[:, 0]
    s = np.where(m >= 0, 1.0, -1.0)
    return float(rho - 2 * np.sqrt(rho) * np.abs(m).sum() + s @ p.Q @ s)


# -- a data set of P = alpha N samples -------------------------------------------------------------
def _minimiser_q(c1: float, beta: float, ridge: float) -> float:
    """``q = a^2`` of the minimiser along an eigenvector of eigenvalue ``c1`` (0 when collapsed)."""
    if c1**2 <= (1 + ridge) * (beta * c1 + ridge):
        return 0.0

    def gap(q):
        den = (q + beta) * c1 + ridge
        return c1**2 / den - q * c1**3 / den**2 - beta / (q + beta) - ridge

    upper = 1.0
    while gap(upper) > 0:  # gap(0) > 0 here; gap < 0 for q large (-> -ridge, or past c1 - beta at ridge = 0)
        upper *= 2.0
        if upper > 1e12:
            raise RuntimeError("dataset_minimiser: no sign change of the stationarity condition")
    return float(optimize.brentq(gap, 0.0, upper, xtol=1e-14, rtol=1e-14))


def _top_eigenpair(x: np.ndarray, method: str | None = None) -> tuple[float, np.ndarray]:
    """The largest eigenvalue ``c_1`` of ``S = x' x / P`` and its unit eigenvector ``(N,)``.

    ``method="eigh"`` diagonalises ``S`` (``P N^2 + N^3`` work); ``"svds"`` finds the top singular
    pair of ``x / sqrt(P)`` by Lanczos iterations (``P N`` a step), without forming ``S``. The
    default takes ``eigh`` up to ``N = 1000`` and ``svds`` beyond (at ``N = 4000``, ``P = 16000`` one
    ``eigh`` took 8.8 s here, ``svds`` 2.0 s, to the same pair within 3e-15)."""
    P, N = x.shape
    method = method or ("eigh" if N <= 1000 or min(P, N) < 3 else "svds")
    if method == "eigh":
        values, vectors = np.linalg.eigh(x.T @ x / P)
        return float(values[-1]), vectors[:, -1]
    if method == "svds":
        from scipy.sparse.linalg import svds

        _, singular, vt = svds(x / np.sqrt(P), k=1, tol=0, random_state=0)
        return float(singular[0] ** 2), vt[0]
    raise ValueError(f"method: expected 'eigh', 'svds' or None, got {method!r}")


def dataset_minimiser(x, W_star, beta: float, lam: float, rho: float = 1.0) -> dict:
    """The minimiser of the summed loss on the data set ``x`` ``(P, N)`` (ridge ``lambda`` added
    once, ``M = M* = 1``) and its order parameters: ``{"Q", "m", "E", "d", "R", "v", "eps_g",
    "c1", "alpha", "collapsed", "w", "w_tilde"}``, the last two the minimiser's ``w = W / sqrt(N)``
    and ``w~ = W~' / sqrt(N)`` ``(N,)``. ``W_star`` ``(N, 1)`` with ``W*' W* / N = 1``."""
    x = np.asarray(x, dtype=np.float64)
    P, N = x.shape
    alpha, ridge = P / N, lam / (P / N)
    c1, u = _top_eigenpair(x)
    q = _minimiser_q(c1, beta, ridge)
    a = np.sqrt(q)
    b = a * c1 / ((q + beta) * c1 + ridge)
    overlap = float(u @ np.asarray(W_star, dtype=np.float64)[:, 0] / np.sqrt(N))
    m = a * abs(overlap)
    return {
        "Q": q, "m": m, "E": b**2, "d": b * abs(overlap), "R": a * b, "v": beta / (q + beta),
        "eps_g": rho - 2 * np.sqrt(rho) * m + q, "c1": c1, "alpha": alpha, "collapsed": q == 0.0,
        "w": a * u, "w_tilde": b * u,
    }


def rate_distortion(x, w, w_tilde, v: float) -> tuple[float, float]:
    """``(R, D)`` of the linear VAE ``(w, w~, v)`` (``M = 1``, ``w = W / sqrt(N)``,
    ``w~ = W~' / sqrt(N)``, each ``(N,)``) on the data ``x`` ``(P, N)``: the mean over the data of
    the KL ``1/2 (mu^2 + v - log v - 1)`` and of the distortion excess
    ``E_q 1/2 |x - W z / sqrt(N)|^2 - 1/2 |x|^2 = -s mu + 1/2 Q (mu^2 + v)``, with ``s = w . x``,
    ``mu = w~ . x``, ``Q = |w|^2``."""
    x = np.asarray(x, dtype=np.float64)
    w, w_tilde = np.asarray(w, dtype=np.float64), np.asarray(w_tilde, dtype=np.float64)
    if not v > 0:
        raise ValueError(f"v: expected the encoder variance > 0, got {v!r}")
    s, mu, q = x @ w, x @ w_tilde, float(w @ w)
    rate = 0.5 * (np.mean(mu**2) + v - np.log(v) - 1)
    distortion = np.mean(-s * mu + 0.5 * q * (mu**2 + v))
    return float(rate), float(distortion)


def limit_rate_distortion(alpha: float, beta: float, lam: float, rho: float = 1.0, eta: float = 1.0) -> dict:
    """:func:`rate_distortion` of the data-set minimiser as ``N -> infinity`` at ``P = alpha N``, on
    its training set (``c = c_1``) and on fresh data (``c = rho o^2 + eta``):
    ``{"train": (R, D), "test": (R, D)}``."""
    c1, overlap2 = spike_limit(alpha, rho, eta)
    ridge = lam / alpha
    q = _minimiser_q(c1, beta, ridge)
    a = np.sqrt(q)
    b = a * c1 / ((q + beta) * c1 + ridge)
    v = beta / (q + beta)

    def at(c):
        return (float(0.5 * (b**2 * c + v - np.log(v) - 1)), float(-a * b * c + 0.5 * q * (b**2 * c + v)))

    return {"train": at(c1), "test": at(rho * overlap2 + eta)}


def spike_limit(alpha: float, rho: float = 1.0, eta: float = 1.0) -> tuple[float, float]:
    """``(c_1, overlap^2)`` of the sample covariance's top eigenpair as ``N -> infinity`` at
    ``P = alpha N`` (BBP): above ``alpha = eta^2 / rho^2`` the spike
    ``(rho + eta)(1 + eta / (alpha rho))`` with overlap^2 ``(1 - eta^2/(alpha rho^2)) / (1 + eta/(alpha rho))``;
    below, the bulk edge ``eta (1 + 1/sqrt(alpha))^2`` and overlap 0."""
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    if alpha * rho**2 <= eta**2:
        return eta * (1 + 1 / np.sqrt(alpha)) ** 2, 0.0
    c1 = (rho + eta) * (1 + eta / (alpha * rho))
    return c1, (1 - eta**2 / (alpha * rho**2)) / (1 + eta / (alpha * rho))


def collapses(alpha: float, beta: float, lam: float, rho: float = 1.0, eta: float = 1.0) -> bool:
    """Whether the ``N -> infinity`` minimiser at ``P = alpha N`` is collapsed:
    ``c_1^2 <= (1 + lambda/alpha)(beta c_1 + lambda/alpha)``."""
    c1, _ = spike_limit(alpha, rho, eta)
    ridge = lam / alpha
    return bool(c1**2 <= (1 + ridge) * (beta * c1 + ridge))


def limit_minimiser(alpha: float, beta: float, lam: float, rho: float = 1.0, eta: float = 1.0) -> dict:
    """:func:`dataset_minimiser`'s ``Q``, ``m`` and ``eps_g`` as ``N -> infinity`` at ``P = alpha N``."""
    c1, overlap2 = spike_limit(alpha, rho, eta)
    q = _minimiser_q(c1, beta, lam / alpha)
    m = np.sqrt(q * overlap2)
    return {"Q": q, "m": m, "eps_g": rho - 2 * np.sqrt(rho) * m + q, "c1": c1}


def collapse_alpha(beta: float, lam: float = 1.0, rho: float = 1.0, eta: float = 1.0, alpha_max: float = 1e6) -> float:
    """The data-set size ``alpha_c`` up to which the ``N -> infinity`` minimiser is collapsed
    (:func:`collapses`, bisected in ``alpha``): ``0`` where it never is, ``inf`` where it is up to
    ``alpha_max``. At ``rho = eta = lambda = 1`` and ``alpha_c >= 1`` (``beta >= 7/4``) it is
    ``(2 beta - 3) / (2 (2 - beta))``, ``inf`` from ``beta = 2``."""
    if collapses(alpha_max, beta, lam, rho, eta):
        return float("inf")
    low = 1e-6
    if not collapses(low, beta, lam, rho, eta):
        return 0.0
    high = alpha_max
    for _ in range(200):
        mid = np.sqrt(low * high)
        low, high = (mid, high) if collapses(mid, beta, lam, rho, eta) else (low, mid)
        if high / low < 1 + 1e-12:
            break
    return float(np.sqrt(low * high))
