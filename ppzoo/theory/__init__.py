"""Closed-form and high-dimensional theory the benchmarks compare ppzoo's models against.

:mod:`ppzoo.theory.linear_vae_hd`: the linear VAE as ``N -> infinity``, under
online SGD (the order parameters' ODEs, after Ichikawa & Hukushima, AISTATS
2024) and on ``P = alpha N`` samples (the minimiser and its ``N -> infinity``
limit, after Ichikawa & Hukushima, J. Stat. Mech. 2025).
"""
