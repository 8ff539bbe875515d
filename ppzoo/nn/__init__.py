"""Constrained decoder networks, in torch (``ppzoo.nn.torch``) and JAX (``ppzoo.nn.jax``).

- ``InverseLipschitz``: ``||f(z_1) - f(z_2)|| >= c ||z_1 - z_2||`` (Kinoshita et al., ICML 2023),
  gradients of strongly convex ICNN potentials around an injective linear map.
- ``BiLipschitz`` / ``BiLipschitzDecoder``: bounded from both sides through the
  Legendre-Fenchel conjugate of a strongly convex ICNN (Kinoshita & Toyoizumi, NeurIPS 2024).
- ``SpectralMLP``: an upper bound only (exact spectral normalisation), the baseline.
- ``lipschitz_ratios``: empirical smallest/largest ratios, to check a map's bounds.

The two subpackages import their framework only when used, so a NumPyro user
never imports torch and a Pyro user never imports Equinox.
"""
