"""A Bayesian neural network for regression: one hidden layer of tanh units, written identifiably.

    a_h ~ HalfNormal(1),  c ordered: c_1 ~ N(-1.5, 1), log(c_{h+1} - c_h) ~ N(log 0.75, 0.5),
    w2 ~ N(0, 1 / H) (H),  b2 ~ N(0, 1),  sigma ~ HalfNormal(1),
    f(x) = sum_h w2_h tanh(a_h (x - c_h)) + b2,
    y_i | x_i ~ N(f(x_i), sigma),   i in the plate "data".

Default data: scikit-learn's diabetes set, disease progression against body
mass index, both standardised (N = 442, one input), with H = 5 hidden units.
The prior sd of the output weights shrinks as ``1 / sqrt(H)`` so that the
prior on ``f`` does not grow with the width.

Each unit is ``tanh(W1 x + b1)`` written by its slope ``a = W1`` and its kink
``c = -b1 / W1``. The usual weights are not identifiable: permuting the hidden
units, or flipping the signs of one unit's incoming weights, bias and
outgoing weight (tanh is odd), leaves ``f`` unchanged, so that posterior has
``2^H H!`` symmetric copies of every mode and chains settle in different
ones. Here a positive slope removes the sign flips and ordered kinks remove
the permutations (``OrderedTransform`` of a normal vector, the PPLs' own way
to put a proper distribution on ordered vectors: the first kink near the
low end of the data, the gaps about 0.75 apart, so the kinks span the
inputs), so every parameter is identifiable and chains can agree. The entry is still compared
with its reference on the quantities a user reads (:func:`derived`): the
regression function ``f`` at the fixed inputs :data:`X_STAR` (standardised
BMI -1.5, -0.75, 0, 0.75, 1.5, between the 4th and the 92nd percentile of
the data) and the noise scale ``sigma``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import torch
from numpyro.distributions.transforms import OrderedTransform as NumPyroOrdered
from ppzoo.inference import SGHMC
from pyro.distributions.transforms import OrderedTransform as PyroOrdered

from ppzoo.data import load_diabetes

from .registry import ModelSpec

__all__ = ["numpyro_model", "pyro_model", "load_data", "derived", "predict", "SPEC", "HIDDEN", "X_STAR", "FEATURE"]

#: hidden units
HIDDEN = 5
#: column of the diabetes features used as the input (body mass index)
FEATURE = 2
#: inputs (standardised BMI) at which the regression function is compared with the reference
X_STAR = np.array([[-1.5], [-0.75], [0.0], [0.75], [1.5]], dtype=np.float32)


def _kink_base(hidden):
    """``(loc, scale)`` of the normal vector whose ``OrderedTransform`` is ``c``: ``c_1``, then log gaps."""
    loc = np.concatenate([[-1.5], np.full(hidden - 1, np.log(0.75))]).astype(np.float32)
    scale = np.concatenate([[1.0], np.full(hidden - 1, 0.5)]).astype(np.float32)
    return loc, scale


def numpyro_model(x, y=None, hidden=HIDDEN):
    """``x``: ``(N, 1)`` inputs; ``y``: ``(N,)`` targets or ``None``; ``hidden``: ``H``."""
    a = numpyro.sample("a", ndist.HalfNormal(1.0).expand([hidden]).to_event(1))
    loc, scale = _kink_base(hidden)
    c = numpyro.sample("c", ndist.TransformedDistribution(ndist.Normal(loc, scale).to_event(1), NumPyroOrdered()))
    w2 = numpyro.sample("w2", ndist.Normal(0.0, hidden**-0.5).expand([hidden]).to_event(1))
    b2 = numpyro.sample("b2", ndist.Normal(0.0, 1.0))
    sigma = numpyro.sample("sigma", ndist.HalfNormal(1.0))
    with numpyro.plate("data", x.shape[0], subsample_size=None) as idx:
        f = jnp.tanh(a * (x[idx] - c)) @ w2 + b2
        numpyro.sample("y", ndist.Normal(f, sigma), obs=None if y is None else y[idx])


def pyro_model(x, y=None, hidden=HIDDEN):
    """``x``: ``(N, 1)`` tensor; ``y``: ``(N,)`` tensor or ``None``; ``hidden``: ``H``."""
    a = pyro.sample("a", pdist.HalfNormal(1.0).expand([hidden]).to_event(1))
    loc, scale = (torch.as_tensor(v, dtype=x.dtype, device=x.device) for v in _kink_base(hidden))
    c = pyro.sample("c", pdist.TransformedDistribution(pdist.Normal(loc, scale).to_event(1), [PyroOrdered()]))
    w2 = pyro.sample("w2", pdist.Normal(0.0, hidden**-0.5).expand([hidden]).to_event(1))
    b2 = pyro.sample("b2", pdist.Normal(0.0, 1.0))
    sigma = pyro.sample("sigma", pdist.HalfNormal(1.0))
    with pyro.plate("data", x.shape[0], subsample_size=None) as idx:
        f = torch.tanh(a * (x[idx] - c)) @ w2 + b2
        pyro.sample("y", pdist.Normal(f, sigma), obs=None if y is None else y[idx])


def load_data():
    """``(args, kwargs)``: standardised body mass index ``(442, 1)`` and disease progression ``(442,)``."""
    x, y = load_diabetes(standardized=True)
    return (np.ascontiguousarray(x[:, FEATURE:FEATURE + 1]),), {"y": y}


def predict(draws, x_star):
    """The regression function ``f(x*) = sum_h w2_h tanh(a_h (x* - c_h)) + b2`` for every draw.

    Args:
        draws: ``{"a": (..., H), "c": (..., H), "w2": (..., H), "b2": (...)}``
            NumPy arrays with any leading dims (e.g. ``(chain, draw)``).
        x_star: ``(P, 1)`` inputs.

    Returns:
        ``(..., P)``: ``f`` at each input for each draw.
    """
    x_star = np.asarray(x_star, dtype=np.float64)
    if x_star.ndim != 2 or x_star.shape[1] != 1:
        raise ValueError(f"x_star must be a (P, 1) array of inputs (the network takes one), got shape {x_star.shape}")
    a, c = (np.asarray(draws[k], dtype=np.float64)[..., None, :] for k in ("a", "c"))  # (..., 1, H)
    hidden = np.tanh(a * (x_star - c))  # (..., P, H)
    return np.einsum("...ph,...h->...p", hidden, np.asarray(draws["w2"])) + np.asarray(draws["b2"])[..., None]


def derived(draws):
    """The quantities compared with the reference: ``{"f": f(X_STAR) (chain, draw, 5), "sigma": (chain, draw)}``."""
    return {"f": predict(draws, X_STAR), "sigma": np.asarray(draws["sigma"])}


SPEC = ModelSpec(
    name="bnn_regression",
    description="Bayesian neural network regression, one tanh hidden layer of 5 units (diabetes vs BMI)",
    numpyro_model=numpyro_model,
    pyro_model=pyro_model,
    load_data=load_data,
    data="diabetes: progression vs BMI (standardised)",
    # SGHMC with little friction: the data pin f down along directions about a thousand times stiffer
    # than the prior-dominated ones, and first-order Langevin moves along the flat ones as a random walk
    # of steps sized for the stiff ones (SGLD: R-hat 1.46 and bulk ESS 8 after 55,000 steps per chain);
    # momentum that persists about 1 / friction = 50 steps carries the chains across them (at the
    # overdamped step and thinning 20: R-hat 1.15 at friction 0.1, 1.02 at 0.02). Friction 0.02 takes a
    # fifth of that step (SGHMC.adapted_step_fraction: its minibatch noise would widen the sds by up to
    # 47%), and thinning 160 keeps the bulk ESS above 400 (316 at thinning 80; 366 on Pyro at 120)
    sampler_defaults={"method": SGHMC(friction=0.02), "num_warmup": 3000, "num_samples": 1000, "thinning": 160},
    derived=derived,
    # means: SGHMC at these settings came within 0.04 sd, its Monte Carlo error about 0.03 sd (ESS near
    # 450); sds: plain SGHMC widens them by up to 14% (its minibatch noise), plus about 3.5% of error
    tolerance=(0.2, 0.25),
)
