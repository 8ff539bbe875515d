"""A two-component Gaussian mixture, the assignments marginalised out.

    weights ~ Dirichlet(1, 1),
    locs ~ ordered: locs[0] ~ N(0, 2), log(locs[1] - locs[0]) ~ N(0, 1),
    scales ~ HalfNormal(1) (each),
    y_i ~ sum_k weights[k] N(locs[k], scales[k]),   i in the plate "data".

The discrete component of each datum is summed out (``MixtureSameFamily``
in both PPLs), so every latent is global and continuous. The locations are
ordered (``OrderedTransform`` of a normal vector, the PPLs' own way to put a
distribution on ordered vectors): ``locs[0] < locs[1]`` removes label
switching, so every parameter is identifiable and the entry is compared
with its reference on the parameters themselves.

Default data: Fisher's iris petal lengths (scikit-learn's bundled copy),
standardised (N = 150), clearly bimodal: setosa's short petals against the
other two species'.

Like any mixture, the posterior has spurious local modes far below the main
one: both components broad and covering both clusters, or, under the
ordering, the broad component left of the narrow one. About one MAP search in
25 from ppzoo's random starts ends in one of them, and a Langevin chain
started there stays; R-hat and the per-chain means show it.
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
from pyro.distributions.transforms import OrderedTransform as PyroOrdered

from ppzoo.data import standardize

from .registry import ModelSpec

__all__ = ["numpyro_model", "pyro_model", "load_data", "SPEC", "COMPONENTS"]

#: mixture components K
COMPONENTS = 2
#: scales of the normal vector that ``OrderedTransform`` maps to ``locs``: ``locs[0]``, then ``log`` of the gap
BASE_SCALES = (2.0, 1.0)
#: prior scale of the components' standard deviations
SCALE_PRIOR = 1.0


def numpyro_model(y):
    """``y``: ``(N,)`` observations."""
    weights = numpyro.sample("weights", ndist.Dirichlet(jnp.ones(COMPONENTS)))
    base = ndist.Normal(0.0, jnp.asarray(BASE_SCALES))
    locs = numpyro.sample("locs", ndist.TransformedDistribution(base.to_event(1), NumPyroOrdered()))
    scales = numpyro.sample("scales", ndist.HalfNormal(SCALE_PRIOR).expand([COMPONENTS]).to_event(1))
    with numpyro.plate("data", y.shape[0], subsample_size=None) as idx:
        mixture = ndist.MixtureSameFamily(ndist.Categorical(probs=weights), ndist.Normal(locs, scales))
        numpyro.sample("y", mixture, obs=y[idx])


def pyro_model(y):
    """``y``: ``(N,)`` tensor."""
    weights = pyro.sample("weights", pdist.Dirichlet(torch.ones(COMPONENTS, dtype=y.dtype)))
    base = pdist.Normal(0.0, torch.tensor(BASE_SCALES, dtype=y.dtype))
    locs = pyro.sample("locs", pdist.TransformedDistribution(base.to_event(1), [PyroOrdered()]))
    scales = pyro.sample("scales", pdist.HalfNormal(SCALE_PRIOR).expand([COMPONENTS]).to_event(1))
    with pyro.plate("data", y.shape[0], subsample_size=None) as idx:
        mixture = pdist.MixtureSameFamily(pdist.Categorical(probs=weights), pdist.Normal(locs, scales))
        pyro.sample("y", mixture, obs=y[idx])


def load_data():
    """``(args, kwargs)``: the iris petal lengths, standardised, ``(150,)``."""
    from sklearn.datasets import load_iris

    return (standardize(load_iris().data[:, 2:3])[:, 0].astype(np.float32),), {}


SPEC = ModelSpec(
    name="gaussian_mixture",
    description="Two-component Gaussian mixture, ordered means, assignments marginalised (iris petal length)",
    numpyro_model=numpyro_model,
    pyro_model=pyro_model,
    load_data=load_data,
    data="iris petal length (standardised)",
    # SGLD on all 150 rows (the default batch here): the same chain as SGLD-CV, whose control variate
    # cancels exactly on the full batch, at half the gradients per step. Thinning 15: thinning 3 left
    # bulk ESS near 300 and R-hat up to 1.03; 15 gives about 1,000 to 1,400
    sampler_defaults={"method": "sgld", "num_warmup": 1000, "num_samples": 1000, "thinning": 15},
    # set for bulk ESS of at least about 100: a mean's Monte Carlo error is then at most 0.1 sd, an
    # sd's about 7% of it; the sds come out up to 10% wide (step size), so the tolerances are 3 Monte
    # Carlo errors for the means, and that widening plus 2 for the sds. The defaults above give bulk
    # ESS of 1,000 or more (errors of 0.03 sd and 2%), so they are loose, not tight
    tolerance=(0.3, 0.25),
)
