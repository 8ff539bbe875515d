"""Constrained decoder networks (inverse-Lipschitz, bi-Lipschitz, spectrally normalised)."""
