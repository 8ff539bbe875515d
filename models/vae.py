"""Deep latent-variable models of the zoo: VAEs with plain or constrained decoders, as Pyro and NumPyro programs.

One factory per PPL builds a ``(model, guide)`` pair; the networks are made
once, outside the programs, and registered inside them with ``pyro.module``
(torch) or ``numpyro.contrib.module.eqx_module`` (Equinox)::

    model(x, binarize_step=0, constant=None)
        z_n ~ N(0, I_d)                          n in the data plate "data"
        x_n ~ Bernoulli(logits = f(z_n))          (or N(f(z_n), sigma^2 I) for "gaussian")
    guide(x, binarize_step=0, constant=None)
        z_n ~ N(mu(x_n), diag(s(x_n)^2))          an MLP encoder (linear for the linear VAE)

``x`` holds grey levels in ``[0, 1]`` for the Bernoulli likelihood; each
observation is the binarisation ``1[u < x]`` with ``u`` drawn from a stream
fixed by ``binarize_step``, the same in the model and every particle of a
step. Passing ``step_kwargs=lambda t: {"binarize_step": t}`` to ``ppzoo.fit``
binarises dynamically (a fresh draw each step); the default ``0`` is one fixed
binarisation, used when the fit is evaluated. ``constant`` overrides an
inverse-Lipschitz decoder's constant (for annealing it, the same way).

The zoo's deep entries (:data:`SPECS`, ``ppzoo.models.get(name)``) are a
decoder and an objective, on the digits: VAE (MLP decoder, ELBO), IWAE (the
same model under the IWAE bound), beta-VAE (KL annealing), IL-VAE
(inverse-Lipschitz decoder), BL-VAE (bi-Lipschitz decoder), and the linear VAE
(linear decoder and encoder, Gaussian likelihood with a learned noise scale:
its optimum is probabilistic PCA). ``ModelSpec.fit_programs(backend,
**options)`` builds an entry's ``(model, guide)``; ``fit_defaults`` says how
``ppzoo fit`` trains it.
"""

from __future__ import annotations

import numpy as np

from ppzoo.data.images import check_unit_interval, load_digits
from ppzoo.nn.checks import check_constant, check_dim, check_hidden

from .registry import ModelSpec

__all__ = ["DECODERS", "DECODER_OPTIONS", "LIKELIHOODS", "SPECS", "binarize_each_step", "load_data", "numpyro_vae",
           "programs", "pyro_vae"]

DECODERS = ("mlp", "inverse_lipschitz", "bi_lipschitz", "spectral", "linear")
LIKELIHOODS = ("bernoulli", "gaussian")
#: the binarisation stream's seed; ``binarize_step`` indexes draws from it
BINARIZE_SEED = 20230723


#: the options each decoder takes (``programs`` fills those left ``None`` from here)
DECODER_OPTIONS = {"inverse_lipschitz": {"constant": 1.0}, "bi_lipschitz": {"alpha": 1.0, "beta": 1.0}}
#: digits are 8 x 8 images
DIGITS_DIM = 64


def load_data():
    """``(args, kwargs)``: the deep entries' training images, scikit-learn's digits (1,500 of 8 x 8, grey
    levels in [0, 1]; :func:`ppzoo.data.images.load_digits`, ``"test"`` holds the other 297)."""
    return (load_digits("train"),), {}


def load_test_data():
    """``(args, kwargs)`` of the 297 held-out digits."""
    return (load_digits("test"),), {}


def programs(backend: str, *, decoder: str, latent_dim: int, hidden=(100, 100), seed: int = 0,
             noise_scale: float | None = None, data_dim: int = DIGITS_DIM, **options):
    """``(model, guide)`` of a deep entry (``data_dim``: 64, the digits).

    ``options`` are the decoder's (:data:`DECODER_OPTIONS`): left ``None``, a
    decoder's own take its default; one given to a decoder that has no such
    option is an error. The linear decoder has a Gaussian likelihood (its
    ``noise_scale`` learned when ``None``), the others a Bernoulli one.
    """
    allowed = DECODER_OPTIONS.get(decoder, {})
    wrong = sorted(k for k, v in options.items() if v is not None and k not in allowed)
    if wrong:
        raise ValueError(f"decoder {decoder!r} takes {sorted(allowed) or 'no options'}, not {wrong}")
    options = {k: allowed[k] if options.get(k) is None else options[k] for k in allowed}
    likelihood = "gaussian" if decoder == "linear" else "bernoulli"
    if noise_scale is not None and likelihood != "gaussian":
        raise ValueError(f"noise_scale is the linear decoder's Gaussian likelihood's; decoder {decoder!r} has a Bernoulli one")
    make = numpyro_vae if backend == "numpyro" else pyro_vae
    return make(data_dim, latent_dim, decoder, likelihood=likelihood, hidden=hidden, seed=seed,
                noise_scale=noise_scale, **options)


def binarize_each_step(t):
    """``ppzoo.fit``'s ``step_kwargs`` for a fresh binarisation of the images at every step."""
    return {"binarize_step": t}


def _entry(name, description, decoder, *, objective="elbo", num_particles=1, kl_anneal=None, **options):
    program_options = {"decoder": decoder, "latent_dim": 10, "hidden": (100, 100), "seed": 0,
                       "noise_scale": None, "constant": None, "alpha": None, "beta": None, **options}
    fit_defaults = {"objective": objective, "num_particles": num_particles, "kl_anneal": kl_anneal,
                    "num_steps": 6000, "batch_size": 100, "learning_rate": 1e-3,
                    # binarised images: a fresh binarisation of each batch every step (module docstring)
                    "binarize_each_step": decoder != "linear"}
    return ModelSpec(name=name, description=description, load_data=load_data, data="digits 8x8 (train split)",
                     programs=programs, program_options=program_options, fit_defaults=fit_defaults,
                     step_kwargs=binarize_each_step)


#: the deep entries: a decoder and an objective each
SPECS = (
    _entry("vae", "VAE with an MLP decoder, trained by the ELBO", "mlp"),
    _entry("iwae", "the same VAE trained by the IWAE bound (K = 5)", "mlp", objective="iwae", num_particles=5),
    _entry("beta_vae", "VAE with KL annealing (beta warmed up linearly to 1 over 1,000 steps)", "mlp", kl_anneal=1000),
    _entry("il_vae", "VAE with an inverse-Lipschitz decoder (constant c = 1)", "inverse_lipschitz"),
    _entry("bl_vae", "VAE with a bi-Lipschitz decoder", "bi_lipschitz"),
    _entry("linear_vae", "linear VAE with a Gaussian likelihood (probabilistic PCA at the optimum)", "linear"),
)


def _check(data_dim, latent_dim, decoder, likelihood, hidden, options, noise_scale=None):
    data_dim, latent_dim = check_dim("data_dim", data_dim), check_dim("latent_dim", latent_dim)
    if noise_scale is not None:
        check_constant("noise_scale", noise_scale, positive=True)
        if likelihood != "gaussian":
            raise ValueError("noise_scale is the Gaussian likelihood's; pass likelihood='gaussian' with it")
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    hidden = check_hidden(hidden)
    if "constant" in options:
        check_constant("constant", options["constant"])
    return data_dim, latent_dim, hidden


def _check_images(x, likelihood):
    """Concrete images (NumPy, JAX or torch) must lie in [0, 1]; ``ppzoo.fit`` runs the program on concrete
    data before it compiles it, so a traced ``x`` (which cannot be read) was checked then."""
    if likelihood != "bernoulli":
        return
    try:
        values = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)
    except TypeError:  # a JAX tracer
        return
    check_unit_interval("x", values)


# -- NumPyro -----------------------------------------------------------------


def _eqx_decoder(kind, latent_dim, data_dim, hidden, key, options):
    import equinox as eqx
    import jax

    from ppzoo.nn import jax as nnj

    if kind == "inverse_lipschitz":
        return nnj.InverseLipschitz(latent_dim, data_dim, hidden=hidden, key=key, **options)
    if kind == "bi_lipschitz":
        return nnj.BiLipschitzDecoder(latent_dim, data_dim, hidden=hidden, key=key, **options)
    if kind == "spectral":
        return nnj.SpectralMLP(latent_dim, data_dim, hidden, key=key, **options)
    if kind == "linear":
        return nnj.Dense(latent_dim, data_dim, key=key)
    return eqx.nn.MLP(latent_dim, data_dim, hidden[0], len(hidden), activation=jax.nn.tanh, key=key)


def numpyro_vae(data_dim: int, latent_dim: int = 16, decoder: str = "mlp", *, likelihood: str = "bernoulli",
                hidden=(256, 256), seed: int = 0, noise_scale: float | None = None, **options):
    """``(model, guide)`` NumPyro programs of a VAE (module docstring).

    Args:
        data_dim, latent_dim: ``D`` and ``d``.
        decoder: one of :data:`DECODERS`; ``options`` go to its constructor
            (``constant=`` for ``"inverse_lipschitz"``, ``alpha=``/``beta=`` for
            ``"bi_lipschitz"``, ``lipschitz=`` for ``"spectral"``).
        likelihood: ``"bernoulli"`` (binarised images) or ``"gaussian"`` (noise
            scale ``sigma``; the linear VAE's).
        noise_scale: the Gaussian likelihood's ``sigma``, fixed; ``None`` learns it
            (the parameter ``"sigma"``).
        hidden: hidden widths of the encoder and decoder networks.
        seed: initialises the networks.
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.contrib.module import eqx_module

    data_dim, latent_dim, hidden = _check(data_dim, latent_dim, decoder, likelihood, hidden, options, noise_scale)
    k_dec, k_enc = jax.random.split(jax.random.PRNGKey(seed))
    dec_net = _eqx_decoder(decoder, latent_dim, data_dim, hidden, k_dec, options)
    if decoder == "linear":
        from ppzoo.nn.jax import Dense

        enc_net = Dense(data_dim, latent_dim, key=k_enc)
    else:
        enc_net = eqx.nn.MLP(data_dim, 2 * latent_dim, hidden[0], len(hidden), activation=jax.nn.tanh, key=k_enc)
    constant_decoder = decoder == "inverse_lipschitz"

    def observations(x, idx, binarize_step):
        xb = x[idx]
        if likelihood != "bernoulli":
            return xb
        key = jax.random.fold_in(jax.random.PRNGKey(BINARIZE_SEED), binarize_step)
        u = jax.random.uniform(key, x.shape)[idx]
        return (u < xb).astype(xb.dtype)

    def model(x, binarize_step=0, constant=None):
        _check_images(x, likelihood)
        net = eqx_module("decoder", dec_net)
        sigma = noise_scale
        if likelihood == "gaussian" and noise_scale is None:
            sigma = numpyro.param("sigma", jnp.ones(()), constraint=dist.constraints.positive)
        with numpyro.plate("data", x.shape[0], subsample_size=None) as idx:
            z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([latent_dim]).to_event(1))
            out = net(z, constant=constant) if (constant_decoder and constant is not None) else _apply(net, z)
            if likelihood == "bernoulli":
                numpyro.sample("x", dist.Bernoulli(logits=out).to_event(1), obs=observations(x, idx, binarize_step))
            else:
                numpyro.sample("x", dist.Normal(out, sigma).to_event(1), obs=x[idx])

    def guide(x, binarize_step=0, constant=None):
        net = eqx_module("encoder", enc_net)
        if decoder == "linear":
            log_scale = numpyro.param("encoder_log_scale", jnp.full((latent_dim,), -1.0))
        with numpyro.plate("data", x.shape[0], subsample_size=None) as idx:
            xb = observations(x, idx, binarize_step)
            if decoder == "linear":
                loc, scale = net(xb), jnp.exp(log_scale)
            else:
                h = _apply(net, xb)
                loc, scale = h[..., :latent_dim], jax.nn.softplus(h[..., latent_dim:]) + 1e-4
            numpyro.sample("z", dist.Normal(loc, scale).to_event(1))

    return model, guide


def _apply(net, z):
    """Equinox's ``nn.MLP`` reads one vector; the ppzoo networks take batches."""
    import equinox as eqx
    import jax

    if isinstance(net, eqx.nn.MLP):
        flat = z.reshape(-1, z.shape[-1])
        return jax.vmap(net)(flat).reshape(z.shape[:-1] + (-1,))
    return net(z)


# -- Pyro --------------------------------------------------------------------


def _torch_mlp(in_dim, out_dim, hidden):
    from torch import nn

    widths = (in_dim, *hidden)
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(widths[-1], out_dim))


def _torch_decoder(kind, latent_dim, data_dim, hidden, options):
    from torch import nn

    from ppzoo.nn import torch as nnt

    if kind == "inverse_lipschitz":
        return nnt.InverseLipschitz(latent_dim, data_dim, hidden=hidden, **options)
    if kind == "bi_lipschitz":
        return nnt.BiLipschitzDecoder(latent_dim, data_dim, hidden=hidden, **options)
    if kind == "spectral":
        return nnt.SpectralMLP(latent_dim, data_dim, hidden, **options)
    if kind == "linear":
        return nn.Linear(latent_dim, data_dim)
    return _torch_mlp(latent_dim, data_dim, hidden)


def pyro_vae(data_dim: int, latent_dim: int = 16, decoder: str = "mlp", *, likelihood: str = "bernoulli",
             hidden=(256, 256), seed: int = 0, noise_scale: float | None = None, **options):
    """``(model, guide)`` Pyro programs of a VAE; arguments as :func:`numpyro_vae`.

    The networks are ``torch.nn`` modules registered with ``pyro.module`` and
    trained in place by ``ppzoo.fit``.
    """
    import pyro
    import pyro.distributions as dist
    import torch
    from torch.nn import functional as F

    data_dim, latent_dim, hidden = _check(data_dim, latent_dim, decoder, likelihood, hidden, options, noise_scale)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        dec_net = _torch_decoder(decoder, latent_dim, data_dim, hidden, options)
        enc_net = torch.nn.Linear(data_dim, latent_dim) if decoder == "linear" else _torch_mlp(data_dim, 2 * latent_dim, hidden)
    constant_decoder = decoder == "inverse_lipschitz"

    def observations(x, idx, binarize_step):
        xb = x[idx]
        if likelihood != "bernoulli":
            return xb
        gen = torch.Generator().manual_seed(BINARIZE_SEED + int(binarize_step))
        u = torch.rand(x.shape, generator=gen).to(x.device)[idx]
        return (u < xb).to(xb.dtype)

    def model(x, binarize_step=0, constant=None):
        _check_images(x, likelihood)
        net = pyro.module("decoder", dec_net.to(x.device))
        sigma = noise_scale
        if likelihood == "gaussian" and noise_scale is None:
            sigma = pyro.param("sigma", torch.ones((), device=x.device), constraint=dist.constraints.positive)
        with pyro.plate("data", x.shape[0], subsample_size=None) as idx:
            z = pyro.sample("z", dist.Normal(torch.zeros(latent_dim, device=x.device), 1.0).to_event(1))
            out = net(z, constant=constant) if (constant_decoder and constant is not None) else net(z)
            if likelihood == "bernoulli":
                pyro.sample("x", dist.Bernoulli(logits=out).to_event(1), obs=observations(x, idx, binarize_step))
            else:
                pyro.sample("x", dist.Normal(out, sigma).to_event(1), obs=x[idx])

    def guide(x, binarize_step=0, constant=None):
        net = pyro.module("encoder", enc_net.to(x.device))
        if decoder == "linear":
            log_scale = pyro.param("encoder_log_scale", torch.full((latent_dim,), -1.0, device=x.device))
        with pyro.plate("data", x.shape[0], subsample_size=None) as idx:
            xb = observations(x, idx, binarize_step)
            if decoder == "linear":
                loc, scale = net(xb), log_scale.exp()
            else:
                h = net(xb)
                loc, scale = h[..., :latent_dim], F.softplus(h[..., latent_dim:]) + 1e-4
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    return model, guide
