"""Constrained decoders in JAX, as Equinox modules (for NumPyro models, registered with
``numpyro.contrib.module.eqx_module``).

    >>> import jax
    >>> from ppzoo.nn.jax import InverseLipschitz
    >>> decoder = InverseLipschitz(latent_dim=2, output_dim=64, constant=1.0, key=jax.random.PRNGKey(0))
    >>> logits = decoder(z)              # z (..., 2) -> (..., 64)
"""

from .bi_lipschitz import BiLipschitz, BiLipschitzDecoder, conjugate_gradient_map
from .icnn import ICNN, Dense, gradient_map
from .inverse_lipschitz import InjectiveLinear, InverseLipschitz, StronglyMonotoneMap
from .lipschitz_ratio import lipschitz_ratios
from .spectral import SpectralMLP

__all__ = [
    "ICNN", "Dense", "gradient_map", "StronglyMonotoneMap", "InjectiveLinear", "InverseLipschitz",
    "BiLipschitz", "BiLipschitzDecoder", "conjugate_gradient_map", "SpectralMLP", "lipschitz_ratios",
]
