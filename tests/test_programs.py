"""Programs as users write them for NUTS, minibatched without a special idiom (both PPLs).

A model that uses its data whole (``with plate("data", N): sample(..., obs=y)``)
gets the minibatch's rows of every argument with N rows; with the same seed
its draws must equal those of the same model written with the subsampling
idiom, which indexes its data by the plate's indices.
"""

import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pytest
import torch

import ppzoo
from ppzoo.backends import make_backend

RUN = dict(method="sgld", step_size=1e-3, batch_size=9, num_warmup=20, num_samples=30, num_chains=2, seed=3, progress_bar=False,
           log_likelihood=False)


def numpyro_as_for_nuts(x, y=None):
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = numpyro.sample("b", ndist.Normal(0.0, 1.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", ndist.Normal(x @ w + b, 0.5), obs=y)


def numpyro_idiom(x, y=None):
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = numpyro.sample("b", ndist.Normal(0.0, 1.0))
    with numpyro.plate("data", x.shape[0], subsample_size=None) as idx:
        numpyro.sample("y", ndist.Normal(x[idx] @ w + b, 0.5), obs=None if y is None else y[idx])


def numpyro_subsample(x, y=None):
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = numpyro.sample("b", ndist.Normal(0.0, 1.0))
    with numpyro.plate("data", x.shape[0], subsample_size=None):
        xb = numpyro.subsample(x, event_dim=1)
        yb = numpyro.subsample(y, event_dim=0)
        numpyro.sample("y", ndist.Normal(xb @ w + b, 0.5), obs=yb)


def numpyro_positional_y(n, x, y):
    """The plate's size an int argument, the observations positional."""
    w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = numpyro.sample("b", ndist.Normal(0.0, 1.0))
    with numpyro.plate("data", n):
        numpyro.sample("y", ndist.Normal(x @ w + b, 0.5), obs=y)


def pyro_as_for_nuts(x, y=None):
    w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = pyro.sample("b", pdist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", pdist.Normal(x @ w + b, 0.5), obs=y)


def pyro_idiom(x, y=None):
    w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    b = pyro.sample("b", pdist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0], subsample_size=None) as idx:
        pyro.sample("y", pdist.Normal(x[idx] @ w + b, 0.5), obs=None if y is None else y[idx])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -0.5, 0.25]) + 0.3 + 0.5 * rng.standard_normal(80)).astype(np.float32)
    return x, y


def _draws(model, *args, **kwargs):
    idata = ppzoo.sample(model, *args, **RUN, **kwargs)
    return {k: idata.posterior[k].values for k in ("w", "b")}, idata


@pytest.mark.parametrize("model", [numpyro_as_for_nuts, numpyro_subsample])
def test_numpyro_programs_give_the_idioms_draws(model, data):
    x, y = data
    reference, _ = _draws(numpyro_idiom, x, y=y)
    got, idata = _draws(model, x, y=y)
    for name in reference:
        np.testing.assert_allclose(got[name], reference[name], rtol=1e-5, atol=1e-6)
    assert idata.posterior.attrs["data_plate"] == "data" and idata.posterior.attrs["batch_size"] == 9


def test_pyro_program_gives_the_idioms_draws(data):
    x, y = (torch.as_tensor(a) for a in data)
    reference, _ = _draws(pyro_idiom, x, y=y)
    got, _ = _draws(pyro_as_for_nuts, x, y=y)
    for name in reference:
        np.testing.assert_allclose(got[name], reference[name], rtol=1e-4, atol=1e-5)


def test_which_arguments_are_sliced(data):
    x, y = data
    as_written = make_backend(numpyro_as_for_nuts, (x,), {"y": y})
    assert as_written.batch_args.positions == (0,) and as_written.batch_args.names == ("y",)
    assert not make_backend(numpyro_idiom, (x,), {"y": y}).batch_args  # it indexes its data itself
    positional = make_backend(numpyro_positional_y, (80, x, y), {})
    assert positional.batch_args.positions == (1, 2)
    reference, _ = _draws(numpyro_idiom, x, y=y)
    got, _ = _draws(numpyro_positional_y, 80, x, y)
    np.testing.assert_allclose(got["w"], reference["w"], rtol=1e-5, atol=1e-6)


def test_minibatch_potential_is_unbiased_for_the_full_one(data):
    """Averaged over every single-datum batch, the sliced program's potential is the full-data one."""
    x, y = data
    backend = make_backend(numpyro_as_for_nuts, (x,), {"y": y})
    theta = np.random.default_rng(1).uniform(-1, 1, (1, backend.dim))
    full = float(backend.full_potential(backend.asarray(theta))[0])
    idx = np.arange(80)[:, None].astype(np.int32)
    each = backend.to_numpy(backend.potential(backend.asarray(np.repeat(theta, 80, axis=0)), idx))
    assert float(np.mean(each)) == pytest.approx(full, rel=1e-5)


def test_batch_args_say_which_arguments_are_per_datum(data):
    x, y = data

    def with_group_effects(x, effects, y=None):
        """``effects`` has N entries by coincidence: a per-feature scale, not per datum."""
        w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("y", ndist.Normal(x @ (w * effects[: x.shape[1]]), 0.5), obs=y)

    effects = np.ones(80, dtype=np.float32)
    # by the rule both x and effects would be sliced, and the model then fails: ppzoo says what it tried
    with pytest.raises(ValueError, match=r"slicing the arguments with N rows \(argument 0, argument 1, y=\), and the "
                                         r"model then raised TypeError: .*say which arguments are per-datum with batch_args"):
        make_backend(with_group_effects, (x, effects), {"y": y})
    backend = make_backend(with_group_effects, (x, effects), {"y": y}, batch_args=[0, "y"])
    assert backend.batch_args.positions == (0,) and backend.batch_args.names == ("y",)
    with pytest.raises(ValueError, match=r"batch_args names argument 1, which has 3 rows; .* needs N=80 rows"):
        make_backend(with_group_effects, (x, effects[:3]), {"y": y}, batch_args=[0, 1, "y"])
    with pytest.raises(ValueError, match=r"batch_args names argument 0, which is not an array"):
        make_backend(numpyro_positional_y, (80, x, y), {}, batch_args=[0, 1, 2])
    with pytest.raises(ValueError, match=r"batch_args names 'z', which is not among the keyword arguments"):
        make_backend(numpyro_as_for_nuts, (x,), {"y": y}, batch_args=["z"])


def test_a_model_whose_data_cannot_be_sliced_says_so():
    def closed_over(n):
        y = np.zeros(n, dtype=np.float32)  # the data live inside the program, not in its arguments
        mu = numpyro.sample("mu", ndist.Normal(0.0, 1.0))
        with numpyro.plate("data", n):
            numpyro.sample("y", ndist.Normal(mu, 1.0), obs=y)

    with pytest.raises(ValueError, match=r"uses the data plate 'data' \(N=50\) without indexing its data.*subsample_size=None"):
        make_backend(closed_over, (50,), {})


def numpyro_varying_intercepts(group, y=None):
    mu = numpyro.sample("mu", ndist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", ndist.HalfNormal(2.0))
    with numpyro.plate("groups", 3):
        alpha = numpyro.sample("alpha", ndist.Normal(mu, tau))
    with numpyro.plate("data", group.shape[0]):
        numpyro.sample("y", ndist.Normal(alpha[group], 1.0), obs=y)


def pyro_varying_intercepts(group, y=None):
    mu = pyro.sample("mu", pdist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", pdist.HalfNormal(2.0))
    with pyro.plate("groups", 3):
        alpha = pyro.sample("alpha", pdist.Normal(mu, tau))
    with pyro.plate("data", group.shape[0]):
        pyro.sample("y", pdist.Normal(alpha[group], 1.0), obs=y)


@pytest.mark.parametrize("name", ["numpyro", "pyro"])
def test_latents_in_a_plate_are_named_after_it(name):
    """An integer index argument with N rows is sliced like the data; the group latents' dim is the
    plate's name, as az.from_numpyro names it, and the data's dims are the data plate's."""
    rng = np.random.default_rng(2)
    group = rng.integers(0, 3, 60)
    y = (np.array([-1.0, 0.0, 2.0])[group] + rng.standard_normal(60)).astype(np.float32)
    if name == "numpyro":
        model, args = numpyro_varying_intercepts, (group,)
    else:
        model, args, y = pyro_varying_intercepts, (torch.as_tensor(group),), torch.as_tensor(y)
    idata = ppzoo.sample(model, *args, y=y, **{**RUN, "log_likelihood": True})
    assert idata.posterior["alpha"].dims == ("chain", "draw", "groups")
    assert idata.posterior["alpha"].shape == (2, 30, 3)
    assert idata.posterior["mu"].dims == ("chain", "draw")
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "data")
    assert idata.observed_data["y"].dims == ("data",)
