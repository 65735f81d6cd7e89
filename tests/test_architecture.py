"""The shape of the code base: one-way layers, no import cycle, no private name across modules, a fast CLI."""

from __future__ import annotations

import ast
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("privtangent", "attacks", "audits", "reports")
LAYER = {"privtangent": 0, "attacks": 1, "audits": 2, "reports": 3}  # reports → audits → attacks → privtangent


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imports(path: Path, name: str, known: dict[str, Path]) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every import statement of the file, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [a.name for a in node.names]
            submodules = [f"{base}.{n}" for n in names if f"{base}.{n}" in known]
            out += [(m, [], node.lineno) for m in submodules] or [(base, names, node.lineno)]
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    for name, path in known.items():
        for target, _, _ in imports(path, name, known):
            while target and target not in known:  # `import a.b.c` of a module, or a name in a package
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges


def test_no_import_cycle():
    """Tarjan's strongly connected components over every import (function-local ones included)."""
    edges = graph()
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_dependencies_point_one_way():
    bad = []
    for source, targets in graph().items():
        for target in targets:
            a, b = source.split(".")[0], target.split(".")[0]
            if LAYER[b] > LAYER[a]:
                bad.append(f"{source} imports {target}")
    assert not bad, bad


def test_no_private_name_crosses_a_module():
    known = modules()
    bad = []
    for name, path in known.items():
        for target, names, line in imports(path, name, known):
            if target.split(".")[0] in LAYER:
                bad += [f"{path.relative_to(ROOT)}:{line} imports {target}.{n}" for n in names
                        if n.startswith("_") and not n.startswith("__")]
    assert not bad, bad


def test_heavy_imports_only_in_command_line_modules():
    """Outside CLI modules every import is at the top (a function-local import hides a dependency).
    Exceptions: the optional Ray executor, and ``privtangent.load_model``, which keeps
    ``import privtangent`` (hence every ``--help``) free of torch."""
    bad = []
    for name, path in modules().items():
        if ".cli" in f".{name}" or name.endswith(".cli") or name == "privtangent":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        mods = [a.name for a in sub.names] if isinstance(sub, ast.Import) else [sub.module or ""]
                        if not all(m.split(".")[0] == "ray" for m in mods):
                            bad.append(f"{path.relative_to(ROOT)}:{sub.lineno} in {node.name}()")
    assert not bad, bad


def _median_seconds(argv: list[str], runs: int = 3) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def test_help_is_fast():
    """``privtangent --help`` and a subcommand's ``--help`` load no heavy library: on an idle machine
    they take ≤ 1.5 s, i.e. a small multiple of starting Python at all. Measured as a ratio to
    ``python -c pass`` (the same machine load affects both): ≤ 1.5 s / 30 ms = 50×."""
    bare = _median_seconds([sys.executable, "-c", "pass"])
    for argv in (["--help"], ["audit", "--help"], ["train", "--help"], ["audit", "privacy", "--help"]):
        took = _median_seconds([sys.executable, "-m", "privtangent.cli.main", *argv])
        assert took <= max(1.5, 50 * bare), (argv, took, bare)


def test_help_imports_no_heavy_library():
    code = ("import sys; sys.argv = ['privtangent', '--help']\n"
            "from privtangent.cli.main import build_parser\nbuild_parser()\n"
            "heavy = [m for m in ('torch', 'timm', 'scipy', 'sklearn', 'pandas', 'matplotlib') if m in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT).stdout.strip()
    assert out == "", f"building the parser imported {out}"
