"""ppzoo.models: the zoo. Each entry is the same model written as a NumPyro and a Pyro program."""

from . import logistic_regression

__all__ = ["logistic_regression"]
