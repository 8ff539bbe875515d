"""``ppzoo fit NAME``: fit a zoo entry with ``ppzoo.fit`` and make its ArviZ result.

A sampled entry is fitted with one of the PPL's autoguides (``--guide
normal|mvn|laplace``); a deep entry brings its own encoder, and its decoder can
be changed (``--decoder``, ``--constant``) and its KL term annealed
(``--kl-anneal``). The result is ``Fit.to_arviz()``'s: draws of the fitted
posterior (for an importance-weighted objective, the guide's draws reweighted:
the IWAE posterior) with the fit's report in the posterior group's attrs. A
deep entry's result adds

* ``collapse``: KL to the prior per latent dimension, active units, ``I(x; z)``
  (``Fit.collapse``);
* ``images``: the first :data:`NUM_IMAGES` training images, their
  reconstructions (the decoder's mean at the encoder's mean) and as many
  samples (the decoder's mean at ``z ~ N(0, I)``), pixels ``(image, row,
  column)``, which ``ppzoo plot --kind images`` draws as grids.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FIT_DRAWS", "NUM_IMAGES", "fit_entry", "images_dataset"]

#: draws of the fitted posterior in ``ppzoo fit``'s result, by kind (a deep entry's latents are per datum)
FIT_DRAWS = {"sampled": 1000, "deep": 100}
#: images of each kind in a deep entry's ``images`` group
NUM_IMAGES = 16


def fit_entry(spec, backend: str, *, guide: str = "normal", program_options=None, fit_options=None,
              num_draws: int | None = None, seed: int = 0, device=None, progress_bar: bool = True):
    """``(fit, result)``: ``ppzoo.fit`` of zoo entry ``spec`` on its data, and its ArviZ result.

    ``program_options`` go to ``ModelSpec.fit_programs`` (a deep entry's decoder,
    latent dimension, ...), ``fit_options`` to ``ModelSpec.fit_settings``
    (objective, particles, estimator, steps, batch size, learning rate, KL
    annealing); ``None`` values take the entry's defaults.
    """
    import ppzoo

    program_options = {k: v for k, v in (program_options or {}).items() if v is not None}
    if spec.kind == "sampled" and program_options:
        raise ValueError(f"{', '.join('--' + k.replace('_', '-') for k in sorted(program_options))}: "
                         f"{spec.name!r} is a sampled entry; these options are for deep entries")
    if spec.kind == "deep" and guide != "normal":
        raise ValueError(f"--guide: {spec.name!r} is a deep entry, whose guide is its own encoder")
    settings = spec.fit_settings(backend, **(fit_options or {}))
    model, guide_program = spec.fit_programs(backend, guide=guide, **program_options)
    args, kwargs = spec.load_data()
    fit = ppzoo.fit(model, guide_program, *args, seed=seed, device=device, backend=backend,
                    progress_bar=progress_bar, **settings, **kwargs)
    draws = FIT_DRAWS[spec.kind] if num_draws is None else num_draws
    result = fit.to_arviz(num_samples=draws, seed=seed, collapse=spec.kind == "deep")
    from ppzoo.diagnostics import arviz_compat

    if spec.kind == "deep":
        arviz_compat.add_group(result, "images", images_dataset(fit, args[0], seed=seed))
    arviz_compat.update_attrs(result, {"zoo_entry": spec.name, "zoo_kind": spec.kind}, groups=["posterior"])
    return fit, result


def images_dataset(fit, x, num_images: int = NUM_IMAGES, seed: int = 0, site: str = "z", observed: str = "x"):
    """``xarray.Dataset`` of ``data``, ``reconstruction`` and ``sample`` images ``(image, row, column)``:
    the first ``num_images`` rows of ``x`` (square images, flattened), the model's mean of
    ``observed`` at the encoder's mean of ``site`` for each, and at draws of ``site`` from
    ``N(0, I)``."""
    import xarray as xr

    x = np.asarray(x)[:num_images]
    side = math.isqrt(x.shape[1])
    if side * side != x.shape[1]:
        raise ValueError(f"images must be square, flattened: {x.shape[1]} pixels is not a square")
    codes = np.asarray(fit.encoder_means(x, site=site))
    reconstruction = fit.observed_means({site: codes}, x)[observed]
    prior = np.random.default_rng(seed).standard_normal(codes.shape).astype(codes.dtype)
    sample = fit.observed_means({site: prior}, x)[observed]
    dims = ("image", "row", "column")
    shape = (len(x), side, side)
    return xr.Dataset({"data": (dims, x.reshape(shape)),
                       "reconstruction": (dims, np.asarray(reconstruction).reshape(shape)),
                       "sample": (dims, np.asarray(sample).reshape(shape))},
                      attrs={"what": "reconstruction: the decoder's mean at the encoder's mean of each data "
                                     "image; sample: the decoder's mean at z ~ N(0, I)"})


def plot_images(result, path, dpi: int = 100) -> None:
    """The ``images`` group of a deep entry's fit result as three grids (data, reconstructions,
    samples), saved to ``path``."""
    import matplotlib.pyplot as plt

    from ppzoo.diagnostics import arviz_compat

    images = arviz_compat.get_group(result, "images")
    panels = ("data", "reconstruction", "sample")
    count = images.sizes["image"]
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    try:
        for ax, name in zip(axes, panels):
            values = images[name].values
            side = values.shape[1]
            grid = np.zeros((rows * (side + 1) - 1, columns * (side + 1) - 1))  # white lines between images
            for k in range(count):
                r, c = divmod(k, columns)
                grid[r * (side + 1):r * (side + 1) + side, c * (side + 1):c * (side + 1) + side] = values[k]
            ax.imshow(grid, cmap="gray_r", vmin=0.0, vmax=1.0)
            ax.set_title({"data": "data", "reconstruction": "reconstructions", "sample": "samples"}[name])
            ax.axis("off")
        figure.savefig(path, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(figure)
