"""Every import in a benchmark script resolves, including those inside functions.

Benchmarks are run by hand, long after the library they measure has moved on; a renamed or
removed helper would otherwise surface only when someone reruns a section hours in.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py"))
SIBLINGS = {p.stem for p in SCRIPTS}  # benchmark scripts may import each other by file name


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, name) for every absolute import in the file; name None for ``import module``."""
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module != "__future__":
            out += [(node.module, alias.name) for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Import):
            out += [(alias.name, None) for alias in node.names]
    return out


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_every_import_resolves(path: Path):
    missing = []
    for module, name in _imports(path):
        if module.split(".")[0] in SIBLINGS:
            continue
        try:
            mod = importlib.import_module(module)
        except ImportError as err:
            missing.append(f"import {module}: {err}")
            continue
        if name is None or hasattr(mod, name):
            continue
        if not hasattr(mod, "__path__") or importlib.util.find_spec(f"{module}.{name}") is None:  # nor a submodule
            missing.append(f"from {module} import {name}")
    assert not missing, f"{path.name}: " + "; ".join(missing)


def test_a_removed_name_is_caught(tmp_path: Path):
    """The check itself: a script importing a name its module lacks is reported."""
    script = tmp_path / "bad.py"
    script.write_text("def load():\n    from privtangent.inputs import no_such_helper\n")
    assert ("privtangent.inputs", "no_such_helper") in _imports(script)
    with pytest.raises(AssertionError, match="from privtangent.inputs import no_such_helper"):
        test_every_import_resolves(script)
    script.write_text("def load():\n    from privtangent.inputs import random_subset\n")
    test_every_import_resolves(script)
