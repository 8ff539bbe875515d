"""Diagnostics: every ppzoo result as the ArviZ object of the installed line, PSIS for VI.

``xarray.DataTree`` under ArviZ 1.x, ``arviz.InferenceData`` under 0.23; the
switch between the two lines is :mod:`ppzoo.diagnostics.arviz_compat`.
"""

from ppzoo.diagnostics import arviz_compat
from ppzoo.diagnostics.inference_data import sampler_run_to_inference_data
from ppzoo.diagnostics.svi import psis_khat, svi_draws_to_inference_data

__all__ = ["arviz_compat", "sampler_run_to_inference_data", "svi_draws_to_inference_data", "psis_khat"]
