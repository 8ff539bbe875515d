"""Make the netCDF files of ``tests/test_arviz_lines.py``: one set per ArviZ line.

Run once under each line, from the repository root:

    python tests/data/make_arviz_files.py     # Python 3.11: ArviZ 0.23 -> *_arviz0.nc
    python tests/data/make_arviz_files.py     # Python 3.13: ArviZ 1.x  -> *_arviz1.nc

``sample_arviz<major>.nc``: ``ppzoo run eight_schools`` (2 chains x 100 draws);
``fit_arviz<major>.nc``: ``Fit.to_arviz`` of an ELBO fit of a Gaussian location
model (200 guide draws). The files are small (tens of kB) and stored in git.
"""

from __future__ import annotations

import pathlib

import arviz as az
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent


def main():
    import numpyro
    import numpyro.distributions as dist

    import ppzoo
    from ppzoo.cli import main as cli
    from ppzoo.diagnostics import arviz_compat

    major = int(az.__version__.split(".")[0])
    sample_path = HERE / f"sample_arviz{major}.nc"
    code = cli([
        "run", "eight_schools", "--num-samples", "100", "--num-warmup", "300", "--num-chains", "2",
        "--seed", "1", "--no-progress", "--out", str(sample_path),
    ])
    assert code == 0

    def model(x):
        theta = numpyro.sample("theta", dist.Normal(0.0, 1.0))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("x", dist.Normal(theta, 1.0), obs=x)

    def guide(x):
        m = numpyro.param("m", 0.0)
        s = numpyro.param("s", 1.0, constraint=dist.constraints.positive)
        numpyro.sample("theta", dist.Normal(m, s))

    x = np.random.default_rng(0).normal(0.5, 1.0, size=20).astype(np.float32)
    fit = ppzoo.fit(model, guide, x, num_steps=2000, progress_bar=False)
    arviz_compat.to_netcdf(fit.to_arviz(num_samples=200), HERE / f"fit_arviz{major}.nc")
    print(f"wrote {sample_path.name} and fit_arviz{major}.nc under ArviZ {az.__version__}")


if __name__ == "__main__":
    main()
