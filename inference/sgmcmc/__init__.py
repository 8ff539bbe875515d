"""Stochastic-gradient Langevin samplers.

Gradient estimators (:mod:`.gradients`) are kept apart from the Langevin
update (:mod:`.diffusions`, which also holds the :class:`~.diffusions.Tuning`
every step reads); a sampler is an estimator plus an update
(:mod:`.sgld`, :mod:`.svrg_ld`, :mod:`.sarah_ld`, :mod:`.sgld_cv`; :mod:`.psgld` is SGLD
with a preconditioner learned from the gradients), driven by
:func:`.driver.run_chains` on any backend, or by ``numpyro.infer.MCMC``
(``NumPyroLangevin(SARAHLD(), model)`` is the kernel's NumPyro ``MCMCKernel`` face; imported
on first use, as it imports NumPyro).
"""

from .base import KERNELS, LangevinKernel
from .diffusions import Tuning
from .driver import SamplerRun, run_chains
from .psgld import PSGLD
from .sarah_ld import SARAHLD
from .schedules import Constant, PolynomialDecay
from .sgld import SGLD
from .sgld_cv import SGLDCV
from .svrg_ld import SVRGLD

__all__ = [
    "SGLD", "SVRGLD", "SARAHLD", "SGLDCV", "PSGLD", "LangevinKernel", "Tuning", "Constant", "PolynomialDecay",
    "SamplerRun", "run_chains", "get_sampler", "SAMPLERS", "NumPyroLangevin",
]

#: method name -> kernel class, for ``ppzoo.sample(method=...)``: the kernels registered themselves
#: (:data:`.base.KERNELS`) as their modules were imported above, or by :func:`_import_kernels`
SAMPLERS = KERNELS


def _import_kernels():
    """Import every module of this package but the NumPyro wrapper (which imports NumPyro), so that
    a kernel in a new module is registered without an edit here."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if module.name != "numpyro_mcmc":
            importlib.import_module(f"{__name__}.{module.name}")


_import_kernels()


def get_sampler(method: str):
    """The kernel class for a method name; ``ValueError`` listing the known ones otherwise."""
    if method not in SAMPLERS:
        raise ValueError(f"method must be one of {sorted(SAMPLERS)}, got {method!r}")
    return SAMPLERS[method]


def __getattr__(name):
    if name == "NumPyroLangevin":  # imports NumPyro and JAX: only when asked for
        from .numpyro_mcmc import NumPyroLangevin

        return NumPyroLangevin
    for kernel in KERNELS.values():  # a registered kernel by its class name (SGHMC), without an edit here
        if kernel.__name__ == name:
            return kernel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
