"""Diagnostics: conversion of every ppzoo result to ``arviz.InferenceData``."""

from ppzoo.diagnostics.inference_data import sampler_run_to_inference_data

__all__ = ["sampler_run_to_inference_data"]
