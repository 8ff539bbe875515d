"""Your own model, written in NumPyro and in Pyro, sampled by ppzoo and read in ArviZ.

    python tutorials/custom_models.py            # the full run (about a minute)
    python tutorials/custom_models.py --quick    # a few hundred steps

A robust (Student-t) regression of the bundled diabetes data: the same model
twice, once per PPL. The only ppzoo-specific habit is the data plate with
``subsample_size=None``, indexed by the plate's indices: ppzoo picks the
minibatch indices itself.
"""

from __future__ import annotations

import argparse

import arviz as az
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import torch

import ppzoo
from ppzoo.data import load_diabetes


def numpyro_model(x, y=None):
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = numpyro.sample("b", ndist.Normal(0.0, 1.0))
    scale = numpyro.sample("scale", ndist.HalfNormal(1.0))
    with numpyro.plate("data", x.shape[0], subsample_size=None) as idx:
        numpyro.sample("y", ndist.StudentT(4.0, x[idx] @ w + b, scale), obs=None if y is None else y[idx])


def pyro_model(x, y=None):
    w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = pyro.sample("b", pdist.Normal(0.0, 1.0))
    scale = pyro.sample("scale", pdist.HalfNormal(1.0))
    with pyro.plate("data", x.shape[0], subsample_size=None) as idx:
        pyro.sample("y", pdist.StudentT(4.0, x[idx] @ w + b, scale), obs=None if y is None else y[idx])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run, for a smoke test")
    opts = parser.parse_args(argv)
    settings = dict(num_warmup=200, num_samples=100, thinning=2) if opts.quick else dict(num_warmup=5000, num_samples=1000, thinning=10)

    x, y = load_diabetes()
    results = {
        "numpyro": ppzoo.sample(numpyro_model, x, y=y, method="svrg-ld", **settings),
        "pyro": ppzoo.sample(pyro_model, torch.as_tensor(x), y=torch.as_tensor(y), method="svrg-ld", **settings),
    }
    for name, idata in results.items():
        print(f"\n{name}:")
        print(az.summary(idata, var_names=["b", "scale", "w"]).head(6).to_string())
        print(az.loo(idata))
    print(az.compare(results))


if __name__ == "__main__":
    main()
