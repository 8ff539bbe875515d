"""A Bayesian neural network for regression: one hidden layer of tanh units.

    W1 ~ N(0, 1) (d x H),  b1 ~ N(0, 1) (H),  w2 ~ N(0, 1 / H) (H),  b2 ~ N(0, 1),  sigma ~ HalfNormal(1),
    f(x) = tanh(x W1 + b1) . w2 + b2,
    y_i | x_i ~ N(f(x_i), sigma),   i in the plate "data".

Default data: scikit-learn's diabetes set, disease progression against body
mass index, both standardised (N = 442, d = 1), with H = 5 hidden units. The
prior sd of the output weights shrinks as ``1 / sqrt(H)`` so that the prior
on ``f`` does not grow with the width.

The weights are not identifiable: permuting the hidden units, or flipping
the signs of one unit's incoming weights, bias and outgoing weight (tanh is
odd), leaves ``f`` unchanged, so the posterior has ``2^H H!`` symmetric
copies of every mode and chains settle in different ones. The entry is
therefore compared with its reference on identifiable quantities
(:func:`derived`): the regression function ``f`` at the fixed inputs
:data:`X_STAR` (standardised BMI -1.5, -0.75, 0, 0.75, 1.5, between the 4th and
the 92nd percentile of the data) and the noise scale ``sigma``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import torch

from ppzoo.checks import check_count
from ppzoo.data import load_diabetes

from .registry import ModelSpec

__all__ = [
    "numpyro_model", "pyro_model", "load_data", "derived", "predict", "prior_inverse_mass",
    "SPEC", "HIDDEN", "X_STAR", "FEATURE", "INVERSE_MASS",
]

#: hidden units
HIDDEN = 5
#: column of the diabetes features used as the input (body mass index)
FEATURE = 2
#: inputs (standardised BMI) at which the regression function is compared with the reference
X_STAR = np.array([[-1.5], [-0.75], [0.0], [0.75], [1.5]], dtype=np.float32)


def numpyro_model(x, y=None, hidden=HIDDEN):
    """``x``: ``(N, d)`` inputs; ``y``: ``(N,)`` targets or ``None``; ``hidden``: ``H``."""
    w1 = numpyro.sample("w1", ndist.Normal(0.0, 1.0).expand([x.shape[1], hidden]).to_event(2))
    b1 = numpyro.sample("b1", ndist.Normal(0.0, 1.0).expand([hidden]).to_event(1))
    w2 = numpyro.sample("w2", ndist.Normal(0.0, hidden**-0.5).expand([hidden]).to_event(1))
    b2 = numpyro.sample("b2", ndist.Normal(0.0, 1.0))
    sigma = numpyro.sample("sigma", ndist.HalfNormal(1.0))
    with numpyro.plate("data", x.shape[0], subsample_size=None) as idx:
        f = jnp.tanh(x[idx] @ w1 + b1) @ w2 + b2
        numpyro.sample("y", ndist.Normal(f, sigma), obs=None if y is None else y[idx])


def pyro_model(x, y=None, hidden=HIDDEN):
    """``x``: ``(N, d)`` tensor; ``y``: ``(N,)`` tensor or ``None``; ``hidden``: ``H``."""
    w1 = pyro.sample("w1", pdist.Normal(0.0, 1.0).expand([x.shape[1], hidden]).to_event(2))
    b1 = pyro.sample("b1", pdist.Normal(0.0, 1.0).expand([hidden]).to_event(1))
    w2 = pyro.sample("w2", pdist.Normal(0.0, hidden**-0.5).expand([hidden]).to_event(1))
    b2 = pyro.sample("b2", pdist.Normal(0.0, 1.0))
    sigma = pyro.sample("sigma", pdist.HalfNormal(1.0))
    with pyro.plate("data", x.shape[0], subsample_size=None) as idx:
        f = torch.tanh(x[idx] @ w1 + b1) @ w2 + b2
        pyro.sample("y", pdist.Normal(f, sigma), obs=None if y is None else y[idx])


def load_data():
    """``(args, kwargs)``: standardised body mass index ``(442, 1)`` and disease progression ``(442,)``."""
    x, y = load_diabetes(standardized=True)
    return (np.ascontiguousarray(x[:, FEATURE:FEATURE + 1]),), {"y": y}


def predict(draws, x_star):
    """The regression function ``f(x*) = tanh(x* W1 + b1) . w2 + b2`` for every draw.

    Args:
        draws: ``{"w1": (..., d, H), "b1": (..., H), "w2": (..., H), "b2": (...)}``
            NumPy arrays with any leading dims (e.g. ``(chain, draw)``).
        x_star: ``(P, d)`` inputs.

    Returns:
        ``(..., P)``: ``f`` at each input for each draw.
    """
    x_star = np.asarray(x_star, dtype=np.float64)
    if x_star.ndim != 2:
        raise ValueError(f"x_star must be a (P, d) array of inputs, got shape {x_star.shape}")
    w1 = np.asarray(draws["w1"], dtype=np.float64)
    if w1.shape[-2] != x_star.shape[1]:
        raise ValueError(f"x_star has {x_star.shape[1]} columns but the network takes {w1.shape[-2]} inputs")
    hidden = np.tanh(np.einsum("pd,...dh->...ph", x_star, w1) + np.asarray(draws["b1"])[..., None, :])
    return np.einsum("...ph,...h->...p", hidden, np.asarray(draws["w2"])) + np.asarray(draws["b2"])[..., None]


def derived(draws):
    """The identifiable quantities: ``{"f": f(X_STAR) (chain, draw, 5), "sigma": (chain, draw)}``."""
    return {"f": predict(draws, X_STAR), "sigma": np.asarray(draws["sigma"])}


def prior_inverse_mass(inputs: int = 1, hidden: int = HIDDEN) -> np.ndarray:
    """A fixed diagonal preconditioner ``M^-1`` for the sampler: the prior variances.

    ppzoo packs the unconstrained latents sorted by site name: ``b1`` (H),
    ``b2``, ``log sigma``, ``W1`` (d H), ``w2`` (H); their prior variances are
    1, 1, 1 (``log sigma``, whose prior has no one variance: unit scale),
    1 and ``1 / H``. Returns an array ``(H (d + 2) + 2,)`` for ``d = inputs``,
    ``H = hidden``.

    Why fixed: warmup adaptation would learn ``M^-1`` from the draws of all
    chains pooled, and chains that settle in different symmetric copies of the
    posterior (hidden units permuted or sign-flipped) make that covariance span
    the copies rather than any one of them (``h`` then falls to about ``1e-4``
    and ``sigma``'s posterior sd comes out a third of the reference's). A
    preconditioner that treats every hidden unit alike is the same in every
    copy; warmup still chooses the step size.
    """
    inputs, hidden = check_count("inputs", inputs), check_count("hidden", hidden)
    return np.concatenate([
        np.ones(hidden), [1.0], [1.0], np.ones(inputs * hidden), np.full(hidden, 1.0 / hidden),
    ])


#: the sampler's fixed preconditioner for the default data (d = 1) and width
INVERSE_MASS = prior_inverse_mass()

SPEC = ModelSpec(
    name="bnn_regression",
    description="Bayesian neural network regression, one tanh hidden layer of 5 units (diabetes vs BMI)",
    numpyro_model=numpyro_model,
    pyro_model=pyro_model,
    load_data=load_data,
    data="diabetes: progression vs BMI (standardised)",
    # SGLD rather than SGLD-CV: a control variate pays off where the posterior concentrates around
    # its MAP, which this one does not (hidden units wander over their prior), and SGLD costs half
    # as much per step; its minibatch noise widens the sds by 5 to 20%
    sampler_defaults={
        "method": "sgld", "num_warmup": 3000, "num_samples": 1000, "thinning": 5, "inverse_mass": INVERSE_MASS,
    },
    derived=derived,
    # the network mixes slowly under any fixed preconditioner (the data pin f down along directions
    # whose curvature is about a thousand times that of the prior-dominated ones): the bulk ESS of f
    # is about 40 (NumPyro) and 11 (Pyro, half the draws), so a mean's Monte Carlo error is up to
    # 0.3 sd and an sd's about 20% of it. The tolerances are 2.7 Monte Carlo errors for the means,
    # and for the sds SGLD's widening (up to 20%) plus 1.2 errors: loose, but they still fail the
    # sds that pooled warmup adaptation gives this posterior (ratios 0.3 to 0.5)
    tolerance=(0.8, 0.45),
)
