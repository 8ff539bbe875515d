"""Constrained decoders (``ppzoo.nn.torch`` and ``ppzoo.nn.jax``): their Lipschitz bounds hold, the two
frameworks compute the same function, gradients through the bi-Lipschitz solver are right, bad input fails.

The bound checks look for counterexamples on 10^4 random pairs (half of them
close pairs, which probe the Jacobian) and by gradient search for the worst
ratio; a float32 margin of 2% is allowed (close pairs differ by ~1e-3, so
rounding of outputs of size ~10 moves a ratio by ~1e-3). The spectral MLP,
which has no lower bound, is the control: the same search must find ratios
far below 1 there.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import slow_for

from ppzoo.nn import jax as njax
from ppzoo.nn import torch as ntorch

MARGIN = 0.02
SEARCH = dict(num_pairs=10_000, search_pairs=32, search_steps=40)


def _jax_key(seed=0):
    return jax.random.PRNGKey(seed)


def _build(framework, name, **kw):
    if framework == "torch":
        torch.manual_seed(0)
        return getattr(ntorch, name)(**kw)
    return getattr(njax, name)(**kw, key=_jax_key())


def _ratios(framework, f, dim, **kw):
    lib = ntorch if framework == "torch" else njax
    return lib.lipschitz_ratios(f, dim, **{**SEARCH, **kw})


@pytest.mark.parametrize("framework", slow_for(["torch", "jax"], lambda f: f == "jax"))
@pytest.mark.parametrize("constant", [0.25, 4.0])
def test_inverse_lipschitz_decoder_never_beats_its_lower_bound(framework, constant):
    dec = _build(framework, "InverseLipschitz", latent_dim=2, output_dim=6, constant=constant, hidden=(16, 16))
    bound = dec.lower_bound()
    assert bound >= constant  # sigma_min(B) >= 1
    r = _ratios(framework, dec, 2)
    assert min(r["random_min"], r["search_min"]) >= bound * (1 - MARGIN), (bound, r)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_spectral_mlp_keeps_its_upper_bound_and_has_no_lower_one(framework):
    mlp = _build(framework, "SpectralMLP", in_dim=3, out_dim=4, hidden=(16,), lipschitz=2.0)
    r = _ratios(framework, mlp, 3)
    assert max(r["random_max"], r["search_max"]) <= 2.0 * (1 + MARGIN), r
    # the control: the search does find small ratios when nothing bounds them
    assert r["search_min"] < 0.1, r


@pytest.mark.parametrize("framework", slow_for(["torch", "jax"], lambda f: f == "jax"))
def test_bi_lipschitz_map_stays_between_its_bounds(framework):
    bl = _build(framework, "BiLipschitz", dim=3, alpha=0.5, beta=2.0, hidden=(16, 16))
    lo, hi = bl.bounds
    assert (lo, hi) == (0.5, 2.5)
    r = _ratios(framework, bl, 3, search_pairs=16, search_steps=10)
    assert min(r["random_min"], r["search_min"]) >= lo * (1 - MARGIN), r
    assert max(r["random_max"], r["search_max"]) <= hi * (1 + MARGIN), r


@pytest.mark.parametrize("framework", slow_for(["torch", "jax"], lambda f: f == "jax"))
def test_bi_lipschitz_decoder_bounds_multiply(framework):
    dec = _build(framework, "BiLipschitzDecoder", latent_dim=2, output_dim=4, alpha=1.0, beta=0.5, hidden=(8,))
    lo, hi = dec.bounds
    assert (lo, hi) == (1.0, 2.25)
    r = _ratios(framework, dec, 2, num_pairs=2000, search_pairs=8, search_steps=5)
    assert min(r["random_min"], r["search_min"]) >= lo * (1 - MARGIN), r
    assert max(r["random_max"], r["search_max"]) <= hi * (1 + MARGIN), r


def test_icnn_is_convex_along_random_lines():
    torch.manual_seed(1)
    psi = ntorch.ICNN(4, (16, 16))
    a, b = torch.randn(500, 4) * 3, torch.randn(500, 4) * 3
    t = torch.rand(500, 1)
    with torch.no_grad():
        gap = t[:, 0] * psi(a) + (1 - t[:, 0]) * psi(b) - psi(t * a + (1 - t) * b)
    assert float(gap.min()) >= -1e-4
    assert float(gap.max()) > 1e-2  # and not affine


def _copy_torch_into_jax(module, target):
    """The same weights in both frameworks (the modules' attribute names agree)."""
    for name, value in module.named_parameters():
        parts = name.split(".")

        def where(m, parts=parts):
            for p in parts:
                m = m[int(p)] if p.isdigit() else getattr(m, p)
            return m

        target = eqx.tree_at(where, target, jnp.asarray(value.detach().numpy()))
    return target


@pytest.mark.parametrize(
    "name, kw",
    [
        ("InverseLipschitz", dict(latent_dim=2, output_dim=5, constant=1.5, hidden=(8, 8))),
        ("BiLipschitzDecoder", dict(latent_dim=2, output_dim=3, alpha=0.5, beta=1.0, hidden=(8,))),
        ("SpectralMLP", dict(in_dim=3, out_dim=2, hidden=(8,), lipschitz=1.5)),
    ],
)
def test_torch_and_jax_compute_the_same_function_and_gradient(name, kw):
    tmod = _build("torch", name, **kw)
    jmod = _copy_torch_into_jax(tmod, _build("jax", name, **kw))
    in_dim = kw.get("latent_dim", kw.get("in_dim"))
    z = np.random.default_rng(0).normal(size=(7, in_dim)).astype(np.float32)
    zt = torch.tensor(z, requires_grad=True)
    out_t = tmod(zt)
    (out_t ** 2).sum().backward()
    out_j = jax.jit(lambda x: jmod(x))(jnp.asarray(z))
    grad_j = jax.jit(jax.grad(lambda x: jnp.sum(jmod(x) ** 2)))(jnp.asarray(z))
    np.testing.assert_allclose(np.asarray(out_j), out_t.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(grad_j), zt.grad.numpy(), rtol=1e-3, atol=1e-3)


def test_gradients_through_the_conjugate_solver_are_the_implicit_ones():
    torch.manual_seed(2)
    bl = ntorch.BiLipschitz(3, alpha=0.5, beta=2.0, hidden=(8, 8), tol=1e-10).double()
    z = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: bl(z), (z,), eps=1e-6, atol=1e-5)
    w = bl.potential.raw_weights[0]
    assert torch.autograd.gradcheck(
        lambda w_: (torch.func.functional_call(bl, {"potential.raw_weights.0": w_}, (z.detach(),)) ** 2).sum(),
        (w.detach().clone().requires_grad_(True),), eps=1e-6, atol=1e-5,
    )


def test_inverse_lipschitz_constant_can_be_annealed():
    dec = _build("torch", "InverseLipschitz", latent_dim=2, output_dim=4, constant=0.0, hidden=(8,))
    z = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(dec(z), dec(z, constant=2.0))
    dec.constant = 2.0
    torch.testing.assert_close(dec(z), dec(z, constant=2.0))
    jdec = _build("jax", "InverseLipschitz", latent_dim=2, output_dim=4, constant=0.0, hidden=(8,))
    zj = jnp.asarray(z.numpy())
    traced = jax.jit(lambda c: jdec(zj, constant=c))(jnp.float32(2.0))
    # jit fuses the float32 arithmetic differently from eager mode: agreement to a few ulps of the
    # output's O(1) scale, far inside the O(1) change a constant of 0 instead of 2 makes
    np.testing.assert_allclose(np.asarray(traced), np.asarray(jdec(zj, constant=2.0)), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(traced), np.asarray(jdec(zj, constant=0.0)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize(
    "name, kw, match",
    [
        ("InverseLipschitz", dict(latent_dim=5, output_dim=3), r"latent_dim \(5\) must be <= output_dim \(3\)"),
        ("InverseLipschitz", dict(latent_dim=2, output_dim=3, constant=-1.0), "constant must be a finite number >= 0"),
        ("InverseLipschitz", dict(latent_dim=2, output_dim=3, embedding="free"), "embedding must be one of"),
        ("BiLipschitz", dict(dim=2, alpha=0.0), "alpha must be a finite number > 0"),
        ("BiLipschitzDecoder", dict(latent_dim=4, output_dim=2), "latent_dim"),
        ("SpectralMLP", dict(in_dim=2, out_dim=2, hidden=()), "hidden must name at least one layer width"),
        ("ICNN", dict(dim=2, hidden=(3,), hidden_weights=[np.array([0.5, -0.1, 1.0])]), r"hidden_weights\[0\] must be entrywise >= 0"),
        ("ICNN", dict(dim=2, hidden=(3,), hidden_weights=[np.ones(4)]), r"hidden_weights\[0\] must have shape \(3,\)"),
    ],
)
def test_bad_arguments_name_themselves(framework, name, kw, match):
    with pytest.raises(ValueError, match=match):
        _build(framework, name, **kw)


def test_user_given_nonnegative_weights_are_kept():
    w = [np.array([[0.0, 1.0], [2.0, 0.5]]), np.array([0.3, 0.0])]
    psi = ntorch.ICNN(2, (2, 2), hidden_weights=w)
    got = [p.detach().numpy() for p in psi.hidden_path_weights()]
    np.testing.assert_allclose(got[0], w[0], atol=2e-6)
    np.testing.assert_allclose(got[1], w[1], atol=2e-6)  # an exact 0 is kept as 1e-6
