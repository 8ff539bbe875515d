"""The architecture's rules, checked: the import layers and the absence of cycles (``.importlinter``,
run by ``.ci/layers.py`` as CI runs it), and no private name imported from another ppzoo module."""

import ast
import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _layers_script():
    spec = importlib.util.spec_from_file_location("ci_layers", ROOT / ".ci" / "layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_layers_hold_and_nothing_imports_in_a_circle(tmp_path):
    layers = _layers_script()
    result = layers.lint(layers.lay_out(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout
    # the layout is the installed one: the mapped packages are found
    assert (tmp_path / "ppzoo" / "inference" / "sgmcmc" / "driver.py").is_file()
    assert (tmp_path / "ppzoo" / "models" / "registry.py").is_file()


@pytest.mark.parametrize("module, line, broken", [
    # a backend reaching up to the samplers breaks the layers
    ("ppzoo/backends/base.py", "from ppzoo.inference.sgmcmc import driver", "ppzoo.backends is not allowed to import ppzoo.inference"),
    # the driver imports the schedules: the schedules importing the driver make a cycle
    ("ppzoo/inference/sgmcmc/schedules.py", "from . import driver", "no import cycles"),
])
def test_a_broken_rule_fails_the_check(tmp_path, module, line, broken):
    layers = _layers_script()
    layout = layers.lay_out(tmp_path)
    path = layout / module
    path.write_text(path.read_text() + f"\n{line}\n")
    result = layers.lint(layout)
    assert result.returncode != 0
    assert broken in result.stdout


def _private_imports(root):
    """``(file, line, module, name)`` for every ``from ppzoo... import _name`` (and relative ones)."""
    found = []
    for folder in ("ppzoo", "inference", "models"):
        for path in (root / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom):
                    continue
                ours = node.level > 0 or (node.module or "").split(".")[0] == "ppzoo"
                for alias in node.names:
                    if ours and alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append((str(path.relative_to(root)), node.lineno, node.module, alias.name))
    return found


def test_no_private_name_is_imported_from_another_module():
    assert _private_imports(ROOT) == []


def test_the_private_import_check_finds_one(tmp_path):
    (tmp_path / "ppzoo").mkdir()
    (tmp_path / "ppzoo" / "a.py").write_text("from ppzoo.b import _hidden\nfrom .c import _other, public\n")
    assert [(m, n) for _, _, m, n in _private_imports(tmp_path)] == [("ppzoo.b", "_hidden"), ("c", "_other")]
