"""Diagnostics: conversion of every ppzoo result to ``arviz.InferenceData``, PSIS for VI."""

from ppzoo.diagnostics.inference_data import sampler_run_to_inference_data
from ppzoo.diagnostics.svi import psis_khat, svi_draws_to_inference_data

__all__ = ["sampler_run_to_inference_data", "svi_draws_to_inference_data", "psis_khat"]
