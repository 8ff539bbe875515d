"""Bayesian linear regression with the conjugate normal-inverse-gamma prior.

    sigma2 ~ InverseGamma(a0, b0),   b, w_j | sigma2 ~ N(0, v0 sigma2),
    y_i | x_i ~ N(b + x_i . w, sigma2),   i in the plate "data".

Default data: scikit-learn's diabetes set, features and target standardised
(N = 442, d = 10). The posterior is known in closed form (:func:`closed_form_posterior`):
with ``X1 = [1, X]``, ``V = (X1' X1 + I / v0)^-1``, ``m = V X1' y``,
``a = a0 + N / 2``, ``b = b0 + (y'y - m' V^-1 m) / 2``, the coefficients are
Student-t with ``2a`` degrees of freedom, location ``m`` and scale matrix
``(b / a) V``, and ``sigma2 ~ InverseGamma(a, b)``.
"""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist

from ppzoo.data import load_diabetes

from .registry import ModelSpec

__all__ = ["numpyro_model", "pyro_model", "load_data", "closed_form_posterior", "closed_form_reference", "SPEC"]

A0, B0, V0 = 2.0, 1.0, 10.0


def numpyro_model(x, y=None):
    """``x``: ``(N, d)``; ``y``: ``(N,)`` or ``None``."""
    sigma2 = numpyro.sample("sigma2", ndist.InverseGamma(A0, B0))
    prior_sd = (V0 * sigma2) ** 0.5
    b = numpyro.sample("b", ndist.Normal(0.0, prior_sd))
    w = numpyro.sample("w", ndist.Normal(0.0, prior_sd).expand([x.shape[1]]).to_event(1))
    with numpyro.plate("data", x.shape[0], subsample_size=None) as idx:
        numpyro.sample("y", ndist.Normal(b + x[idx] @ w, sigma2**0.5), obs=None if y is None else y[idx])


def pyro_model(x, y=None):
    """``x``: ``(N, d)`` tensor; ``y``: ``(N,)`` tensor or ``None``."""
    sigma2 = pyro.sample("sigma2", pdist.InverseGamma(A0, B0))
    prior_sd = (V0 * sigma2) ** 0.5
    b = pyro.sample("b", pdist.Normal(0.0, prior_sd))
    w = pyro.sample("w", pdist.Normal(0.0, prior_sd).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0], subsample_size=None) as idx:
        pyro.sample("y", pdist.Normal(b + x[idx] @ w, sigma2**0.5), obs=None if y is None else y[idx])


def load_data():
    """``(args, kwargs)``: the standardised diabetes data."""
    x, y = load_diabetes(standardized=True)
    return (x,), {"y": y}


def closed_form_posterior(x, y):
    """``{"b": {"mean", "sd"}, "w[j]": ..., "sigma2": ...}``, the exact posterior marginals."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n, d = x.shape
    x1 = np.hstack([np.ones((n, 1)), x])
    precision = x1.T @ x1 + np.eye(d + 1) / V0
    cov = np.linalg.inv(precision)
    m = cov @ x1.T @ y
    a = A0 + n / 2
    b = B0 + 0.5 * (y @ y - m @ precision @ m)
    sd = np.sqrt(b / (a - 1) * np.diag(cov))  # Student-t(2a): variance (b / a) V_jj * 2a / (2a - 2)
    params = {"b": {"mean": float(m[0]), "sd": float(sd[0])}}
    params.update({f"w[{j}]": {"mean": float(m[j + 1]), "sd": float(sd[j + 1])} for j in range(d)})
    params["sigma2"] = {"mean": float(b / (a - 1)), "sd": float(b / ((a - 1) * np.sqrt(a - 2)))}
    return params


def closed_form_reference():
    """``(params, how)``: the entry's reference, :func:`closed_form_posterior` on its data."""
    (x,), kwargs = load_data()
    how = {"method": "closed form (normal-inverse-gamma conjugacy)", "a0": A0, "b0": B0, "v0": V0}
    return closed_form_posterior(x, kwargs["y"]), how


SPEC = ModelSpec(
    name="linear_regression",
    description="Bayesian linear regression, conjugate normal-inverse-gamma prior (closed-form posterior)",
    numpyro_model=numpyro_model,
    pyro_model=pyro_model,
    load_data=load_data,
    data="diabetes (standardised)",
    reference_recipe=closed_form_reference,
    # thinning 15: an effective draw of sigma2 takes about 35 Langevin steps, so thinning 5 left its
    # bulk ESS near 550 and its R-hat at 1.015 (a ConvergenceWarning); 15 gives about 1,400
    sampler_defaults={"method": "sgld-cv", "num_warmup": 1000, "num_samples": 1000, "thinning": 15},
)
