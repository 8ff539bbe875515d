"""Constrained decoders in torch (for Pyro models, registered with ``pyro.module``).

    >>> from ppzoo.nn.torch import InverseLipschitz
    >>> decoder = InverseLipschitz(latent_dim=2, output_dim=64, constant=1.0)
    >>> logits = decoder(z)              # z (..., 2) -> (..., 64)
"""

from .bi_lipschitz import BiLipschitz, BiLipschitzDecoder, conjugate_gradient_map
from .icnn import ICNN, gradient_map
from .inverse_lipschitz import InjectiveLinear, InverseLipschitz, StronglyMonotoneMap
from .lipschitz_ratio import lipschitz_ratios
from .spectral import SpectralMLP

__all__ = [
    "ICNN", "gradient_map", "StronglyMonotoneMap", "InjectiveLinear", "InverseLipschitz",
    "BiLipschitz", "BiLipschitzDecoder", "conjugate_gradient_map", "SpectralMLP", "lipschitz_ratios",
]
