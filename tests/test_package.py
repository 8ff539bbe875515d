"""The installed package: one namespace, every module importable."""

import importlib
import pathlib
import pkgutil

import ppzoo


def test_models_and_inference_are_subpackages_of_ppzoo():
    import ppzoo.inference
    import ppzoo.models

    assert ppzoo.inference.__name__ == "ppzoo.inference"
    assert ppzoo.models.__name__ == "ppzoo.models"
    assert hasattr(ppzoo.inference, "SGLD")


def test_every_module_imports():
    names = [m.name for m in pkgutil.walk_packages(ppzoo.__path__, prefix="ppzoo.")]
    for sub in ("ppzoo.models", "ppzoo.inference"):
        pkg = importlib.import_module(sub)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=sub + ".")]
    # every folder with an __init__ in the source tree is among them
    root = pathlib.Path(__file__).resolve().parents[1]
    for folder, prefix in (("inference", "ppzoo.inference"), ("models", "ppzoo.models"), ("ppzoo", "ppzoo")):
        for init in (root / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(root / folder).parts
            if rel:
                assert ".".join((prefix,) + rel) in names
    assert "ppzoo.inference.sgmcmc.sgld" in names
    assert "ppzoo.backends.pyro_backend" in names
    for name in names:
        importlib.import_module(name)
