"""Probabilistic PCA (Tipping & Bishop 1999), the latent factors marginalised out.

    W W' with W ~ N(0, 1) entrywise (D x K),  mu ~ N(0, 1) (D),  sigma ~ HalfNormal(1),
    x_n ~ N(mu, W W' + sigma^2 I_D),   n in the plate "data".

The per-datum factors ``z_n ~ N(0, I_K)`` of ``x_n = mu + W z_n + sigma eps_n``
are integrated out, so every latent is global and each datum's likelihood is
a Gaussian with the low-rank-plus-diagonal covariance ``W W' + sigma^2 I``
(``MultivariateNormal``; for D = 4 one small Cholesky factor per step is
cheaper than the low-rank form's capacitance matrix, in torch especially).

``W`` is identifiable only up to an orthogonal ``R`` (``W R`` gives the same
likelihood, and the prior is invariant too). Sampled as it stands, every
chain drifts along its own orbit of rotations and reflections, and a
preconditioner learned from all chains' draws fits none of them. The
programs therefore sample the loadings in the factor-analysis convention,
lower-trapezoidal with a positive diagonal, and with the prior that makes
the model *the same*: writing ``W = L Q`` (``L`` lower-trapezoidal, ``Q``
orthogonal), the Bartlett decomposition of Gaussian ``W`` gives independent
``L_kk^2 ~ chi^2(K - k)`` (``k = 0, ..., K - 1``) on the diagonal and
``N(0, 1)`` below it, with ``W W' = L L'``. The sites are ``W_diag_sq``
(``L_kk^2``) and ``W_below`` (the entries below the diagonal, row by row);
:func:`loadings` assembles ``L``.

The price of the positive diagonal is a sign barrier: from a start where the
other rows point against ``L_00 > 0``, a MAP search can end with ``L_00``
near 0 (the first measurement left unexplained), a local mode far below the
main one; about one search in ten from ppzoo's random starts does. R-hat and
the per-chain means show a chain stuck there.

The entry is compared with its reference on the rotation-invariant
quantities (:func:`derived`): the ``D x D`` matrix ``W W'`` (whose leading
eigenvectors are the principal axes), ``sigma`` and ``mu``.

Default data: Fisher's iris measurements (scikit-learn's bundled copy), the
four columns standardised (N = 150, D = 4), with K = 2 components.
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
from ppzoo.data import standardize

from .registry import ModelSpec

__all__ = ["numpyro_model", "pyro_model", "load_data", "loadings", "derived", "SPEC", "COMPONENTS"]

#: latent dimension K
COMPONENTS = 2


def _check_sizes(dim, components):
    check_count("components", components)
    if components > dim:
        raise ValueError(f"components must be an integer K with 1 <= K <= D = {dim}, got {components!r}")


def numpyro_model(x, components=COMPONENTS):
    """``x``: ``(N, D)`` observations; ``components``: ``K``."""
    dim = x.shape[1]
    _check_sizes(dim, components)
    rows, cols = np.tril_indices(dim, -1, components)
    diag_sq = numpyro.sample("W_diag_sq", ndist.Chi2(np.arange(components, 0, -1.0)).to_event(1))
    below = numpyro.sample("W_below", ndist.Normal(0.0, 1.0).expand([rows.size]).to_event(1))
    diag = np.arange(components)
    w = jnp.zeros((dim, components)).at[rows, cols].set(below).at[diag, diag].set(jnp.sqrt(diag_sq))
    mu = numpyro.sample("mu", ndist.Normal(0.0, 1.0).expand([dim]).to_event(1))
    sigma = numpyro.sample("sigma", ndist.HalfNormal(1.0))
    with numpyro.plate("data", x.shape[0], subsample_size=None) as idx:
        numpyro.sample("x", ndist.MultivariateNormal(mu, covariance_matrix=w @ w.T + sigma**2 * jnp.eye(dim)), obs=x[idx])


def pyro_model(x, components=COMPONENTS):
    """``x``: ``(N, D)`` tensor; ``components``: ``K``."""
    dim = x.shape[1]
    _check_sizes(dim, components)
    rows, cols = (torch.as_tensor(i) for i in np.tril_indices(dim, -1, components))
    df = torch.arange(components, 0, -1, dtype=x.dtype)
    diag_sq = pyro.sample("W_diag_sq", pdist.Chi2(df).to_event(1))
    below = pyro.sample("W_below", pdist.Normal(0.0, 1.0).expand([rows.numel()]).to_event(1))
    diag = torch.arange(components)
    w = torch.zeros(dim, components, dtype=x.dtype).index_put((rows, cols), below).index_put((diag, diag), diag_sq.sqrt())
    mu = pyro.sample("mu", pdist.Normal(0.0, 1.0).expand([dim]).to_event(1))
    sigma = pyro.sample("sigma", pdist.HalfNormal(1.0))
    with pyro.plate("data", x.shape[0], subsample_size=None) as idx:
        cov = w @ w.T + sigma**2 * torch.eye(dim, dtype=x.dtype)
        pyro.sample("x", pdist.MultivariateNormal(mu, covariance_matrix=cov), obs=x[idx])


def load_data():
    """``(args, kwargs)``: the four iris measurements, standardised, ``(150, 4)``."""
    from sklearn.datasets import load_iris

    return (standardize(load_iris().data).astype(np.float32),), {}


def loadings(draws, dim):
    """The loadings ``L`` ``(..., D, K)`` from the draws' ``W_diag_sq`` ``(..., K)`` and ``W_below`` ``(..., M)``.

    ``M = D K - K (K + 1) / 2`` entries fill the strictly lower part row by
    row; the diagonal is ``sqrt(W_diag_sq)``; ``W W' = L L'``.
    """
    diag_sq = np.asarray(draws["W_diag_sq"], dtype=np.float64)
    below = np.asarray(draws["W_below"], dtype=np.float64)
    components = diag_sq.shape[-1]
    rows, cols = np.tril_indices(dim, -1, components)
    if below.shape[-1] != rows.size:
        raise ValueError(f"W_below has {below.shape[-1]} entries; D = {dim}, K = {components} needs {rows.size}")
    w = np.zeros(diag_sq.shape[:-1] + (dim, components))
    w[..., rows, cols] = below
    diag = np.arange(components)
    w[..., diag, diag] = np.sqrt(diag_sq)
    return w


def derived(draws):
    """The rotation-invariant quantities: ``{"WWt": (chain, draw, D, D), "sigma": (chain, draw), "mu": (chain, draw, D)}``."""
    mu = np.asarray(draws["mu"])
    w = loadings(draws, mu.shape[-1])
    return {"WWt": w @ np.swapaxes(w, -1, -2), "sigma": np.asarray(draws["sigma"]), "mu": mu}


SPEC = ModelSpec(
    name="probabilistic_pca",
    description="Probabilistic PCA with the factors marginalised (iris, 4 dimensions, 2 components)",
    numpyro_model=numpyro_model,
    pyro_model=pyro_model,
    load_data=load_data,
    data="iris measurements (standardised)",
    # SGLD on all 150 rows (the default batch here): the same chain as SGLD-CV, whose control variate
    # cancels exactly on the full batch, at half the gradients per step. Thinning 20: thinning 3 left
    # bulk ESS at 190 to 270 and R-hat up to 1.02; 20 gives about 1,000 to 1,500
    sampler_defaults={"method": "sgld", "num_warmup": 1000, "num_samples": 1000, "thinning": 20},
    derived=derived,
    # set for bulk ESS of at least about 100: a mean's Monte Carlo error is then at most 0.1 sd, an
    # sd's about 7% of it; the sds come out up to 11% wide (step size), so the tolerances are 3 Monte
    # Carlo errors for the means, and that widening plus 2 for the sds. The defaults above give bulk
    # ESS of 1,000 or more (errors of 0.03 sd and 2%), so they are loose, not tight
    tolerance=(0.3, 0.25),
)
