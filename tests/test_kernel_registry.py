"""Kernels register themselves by method name and declare their integrator and gradient estimator."""

import dataclasses
import re

import ppzoo.inference
import pytest
from ppzoo.inference import SAMPLERS, get_sampler
from ppzoo.inference.sgmcmc import SGLD
from ppzoo.inference.sgmcmc.base import ESTIMATORS, INTEGRATORS, KERNELS


def test_every_method_is_a_registered_kernel_with_its_parts_declared():
    assert SAMPLERS is KERNELS
    assert sorted(SAMPLERS) == ["psgld", "sarah-ld", "sghmc", "sgld", "sgld-cv", "svrg-ld"]
    parts = {name: (cls.integrator, cls.estimator) for name, cls in SAMPLERS.items()}
    assert parts == {
        "sgld": ("overdamped", "plain"), "psgld": ("overdamped", "plain"), "sgld-cv": ("overdamped", "control-variate"),
        "svrg-ld": ("overdamped", "svrg"), "sarah-ld": ("overdamped", "sarah"), "sghmc": ("underdamped", "plain"),
    }
    assert all(cls.name == name for name, cls in SAMPLERS.items())


def test_a_new_kernel_class_is_found_by_its_method_name():
    try:
        @dataclasses.dataclass(frozen=True, kw_only=True)
        class WarmSGLD(SGLD):
            name = "warm-sgld-for-test"

        assert get_sampler("warm-sgld-for-test") is WarmSGLD
        assert ppzoo.inference.WarmSGLD is WarmSGLD  # importable by class name, no edit of the package
        assert WarmSGLD(temperature=2.0).temperature == 2.0
    finally:
        KERNELS.pop("warm-sgld-for-test", None)
    with pytest.raises(ValueError, match="method must be one of"):
        get_sampler("warm-sgld-for-test")


@pytest.mark.parametrize("attrs, match", [
    ({"name": "bad-integrator-for-test", "integrator": "leapfrog"}, f"integrator must be one of {INTEGRATORS}"),
    ({"name": "bad-estimator-for-test", "estimator": "saga"}, f"estimator one of {ESTIMATORS}"),
    ({"name": "sgld"}, "the method name 'sgld' is SGLD's"),
])
def test_a_kernel_that_declares_wrongly_is_refused(attrs, match):
    with pytest.raises(TypeError, match=re.escape(match)):
        type("Broken", (SGLD,), dict(attrs))
    assert KERNELS["sgld"] is SGLD
