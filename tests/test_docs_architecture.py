"""docs/architecture.md stays a true map of the code: what it names exists, and it names everything.

- every path of the form ``dir/…/name.py`` in the document exists (a ``*`` matches at least one file);
- every dotted name rooted in a package (``privtangent.dp.calibration.calibrate_noise``,
  ``audits.stages.STAGES``, ``privtangent.shards.sharding.ShardedModel.create``) resolves: a module
  or package, then names defined in it (a function, class, assignment or re-export), then a class's
  attributes; entry-point groups declared in pyproject.toml are names too;
- every package directory under privtangent/, attacks/, audits/, reports/ and every module in them
  has its own line (its path, written from the repository root).

Pure file reading (``ast``, no import of the code), so it runs in well under a second.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("privtangent", "attacks", "audits", "reports")

PATH = re.compile(r"(?<![\w./-])((?:[A-Za-z_][\w-]*/)+[\w*]+\.py)\b")
DOTTED = re.compile(rf"(?<![\w./-])((?:{'|'.join(PACKAGES)})(?:\.[A-Za-z_]\w*)+)")


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def source_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def package_dirs() -> list[Path]:
    return sorted({p.parent for p in source_files() if p.name == "__init__.py"})


def entry_point_groups() -> set[str]:
    return set(re.findall(r'^\[project\.entry-points\."([^"]+)"\]', (ROOT / "pyproject.toml").read_text(), re.M))


# -- resolving a dotted name by reading the source ---------------------------------------------
def module_file(dotted: str) -> Path | None:
    path = ROOT.joinpath(*dotted.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def definitions(body: list[ast.stmt]) -> dict[str, ast.AST]:
    """Names a module or class body defines: functions, classes, (annotated) assignments, imports."""
    out: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                out[alias.asname or alias.name] = node
        elif isinstance(node, ast.If):  # e.g. `if TYPE_CHECKING:` blocks
            out.update(definitions(node.body))
    return out


def resolve_in(module: str, names: list[str], depth: int = 0) -> bool:
    """Whether ``names`` (attribute by attribute) are defined in ``module``, following re-exports."""
    if not names:
        return True
    if depth > 10:
        return False
    path = module_file(module)
    if path is None:
        return False
    defs = definitions(ast.parse(path.read_text(encoding="utf-8")).body)
    node = defs.get(names[0])
    if node is None:
        return module_file(f"{module}.{names[0]}") is not None and resolve_in(f"{module}.{names[0]}", names[1:], depth)
    if isinstance(node, ast.ImportFrom):
        alias = next(a for a in node.names if (a.asname or a.name) == names[0])
        source = node.module or ""
        if node.level:
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            source = ".".join(parts + ([source] if source else []))
        if source.split(".")[0] not in PACKAGES:
            return len(names) == 1  # a re-exported third-party name: its attributes are not checked
        if module_file(f"{source}.{alias.name}") is not None:  # `from package import module`
            return resolve_in(f"{source}.{alias.name}", names[1:], depth + 1)
        return resolve_in(source, [alias.name, *names[1:]], depth + 1)
    if len(names) == 1:
        return True
    if isinstance(node, ast.ClassDef):
        members = definitions(node.body)
        return names[1] in members and len(names) == 2
    return False


def resolves(dotted: str) -> bool:
    if dotted in entry_point_groups():
        return True
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):  # the longest prefix that is a module or package
        if module_file(".".join(parts[:cut])) is not None:
            return resolve_in(".".join(parts[:cut]), parts[cut:])
    return False


def mentioned_paths() -> set[str]:
    return set(PATH.findall(doc_text()))


# -- the tests ---------------------------------------------------------------------------------
def test_every_path_named_exists():
    paths = mentioned_paths()
    assert paths, "the document names no module path"
    missing = sorted(p for p in paths if not list(ROOT.glob(p)))
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_every_dotted_name_resolves():
    names = set(DOTTED.findall(doc_text()))
    assert len(names) > 20, names
    broken = sorted(n for n in names if not resolves(n))
    assert not broken, f"docs/architecture.md names modules or attributes that do not exist: {broken}"


def test_every_package_is_mentioned():
    text = doc_text()
    missing = []
    for folder in package_dirs():
        rel = folder.relative_to(ROOT).as_posix()
        dotted = rel.replace("/", ".")
        if f"`{rel}/`" not in text and not re.search(rf"`{re.escape(dotted)}`", text):
            missing.append(f"{rel}/")
    assert not missing, f"docs/architecture.md has no entry for the packages {missing}"


def test_every_module_has_a_line():
    paths = mentioned_paths()
    missing = [p.relative_to(ROOT).as_posix() for p in source_files()
               if p.name != "__init__.py" and p.relative_to(ROOT).as_posix() not in paths]
    assert not missing, f"docs/architecture.md does not map the modules {missing}: add one line each"


@pytest.mark.parametrize("name, ok", [
    ("privtangent.dp.calibration.calibrate_noise", True),      # a function of a module
    ("privtangent.dp.calibrate_noise", True),                  # re-exported by the package
    ("privtangent.shards.sharding.ShardedModel.create", True),  # a class's method
    ("privtangent.dp.analysis", True),                         # a package
    ("privtangent.dp.calibration.calibrate_nosie", False),     # a typo
    ("privtangent.features_cache", False),                     # a module that does not exist
    ("privtangent.shards.sharding.ShardedModel.forget", False),  # a method the class lacks
    ("audits.stages.STAGES", True),
])
def test_the_resolver_itself(name, ok):
    """The checks above can fail: the resolver refuses names that do not exist."""
    assert resolves(name) is ok


def test_the_path_pattern_itself():
    found = PATH.findall("see `privtangent/dp/run.py`, privtangent/cli/cmd_*.py and main.py; not x.py")
    assert found == ["privtangent/dp/run.py", "privtangent/cli/cmd_*.py"]
    assert not list(ROOT.glob("privtangent/dp/nonexistent_module.py"))
