"""The results file of a run directory, ``report.json``: schema, number rounding, reading, writing.

Audits write it; ``reports`` renders it (and nothing else). Numbers are rounded once, here,
to the precision a reviewer reads (``SIGNIFICANT`` digits), and ``format_number`` prints a
rounded number the same way everywhere, so every number in report.json appears verbatim in
report.html. NaN and ±∞ become null (JSON has neither).
"""

from __future__ import annotations

import dataclasses
import json
import math
from enum import Enum
from pathlib import Path
from typing import Any

from audits.results import Check, Status, verdict
from privtangent.errors import PrivtangentError
from privtangent.io.atomic import atomic_write_json

SCHEMA = "privtangent-report"
SCHEMA_VERSION = 1
SIGNIFICANT = 4
REQUIRED = ("schema", "schema_version", "title", "verdict", "checks")


class RunDirectoryError(PrivtangentError):
    """A run directory is missing, incomplete or corrupt."""


def round_number(x: float) -> float | int | None:
    """``x`` to ``SIGNIFICANT`` significant digits; NaN/∞ become None (JSON has no NaN)."""
    if isinstance(x, bool) or isinstance(x, int):
        return x
    if not math.isfinite(x):
        return None
    return float(f"{x:.{SIGNIFICANT}g}")


def round_numbers(obj: Any) -> Any:
    """``obj`` JSON-ready: floats rounded, checks and dataclasses as dicts, enums as their value."""
    if isinstance(obj, Check):
        return obj.to_dict()
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, float):
        return round_number(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return round_numbers(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): round_numbers(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [round_numbers(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 0) == 0:  # numpy / torch scalars
        return round_numbers(obj.item())
    return obj


def format_number(x: Any) -> str:
    """How a (rounded) number is printed in every report."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    return f"{x:.{SIGNIFICANT}g}"


def write_report_json(run_dir: str | Path, report: dict[str, Any]) -> Path:
    report = round_numbers({"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **report})
    validate(report)
    return atomic_write_json(Path(run_dir) / "report.json", report, sort_keys=False)


def validate(report: Any) -> dict[str, Any]:
    if not isinstance(report, dict):
        raise RunDirectoryError("report.json must hold a JSON object")
    missing = [k for k in REQUIRED if k not in report]
    if missing:
        raise RunDirectoryError(f"report.json lacks {', '.join(missing)}")
    if report["schema"] != SCHEMA:
        raise RunDirectoryError(f"report.json is not a privtangent report (schema {report['schema']!r})")
    if report["schema_version"] != SCHEMA_VERSION:
        raise RunDirectoryError(f"report.json has schema version {report['schema_version']}; "
                                f"this privtangent reads {SCHEMA_VERSION}")
    if report["verdict"] not in ("PASS", "FAIL"):
        raise RunDirectoryError(f"report.json verdict must be PASS or FAIL, got {report['verdict']!r}")
    for i, check in enumerate(report["checks"]):
        if not isinstance(check, dict) or check.get("status") not in [s.value for s in Status]:
            raise RunDirectoryError(f"report.json checks[{i}] needs a status PASS, FAIL or SKIP")
        if not isinstance(check.get("id"), str) or not check["id"]:
            raise RunDirectoryError(f"report.json checks[{i}] needs an id")
    return report


def read_report_json(run_dir: str | Path) -> dict[str, Any]:
    """The results of a run directory; a clear error when missing or corrupt."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirectoryError(f"run directory {run_dir} does not exist")
    path = run_dir / "report.json"
    if not path.is_file():
        raise RunDirectoryError(f"{run_dir} is not a privtangent run directory (no report.json); "
                                f"run `privtangent audit --out {run_dir}` first")
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunDirectoryError(f"{path} is corrupt: {err}") from None
    return validate(report)


def checks_of(report: dict[str, Any]) -> list[Check]:
    """The checks of a read report.json, typed."""
    return [Check.from_dict(c) for c in report["checks"]]


def report_verdict(report: dict[str, Any]) -> Status:
    """The verdict recomputed from the checks (never trusted from the file)."""
    return verdict(checks_of(report))


__all__ = ["RunDirectoryError", "SCHEMA", "SCHEMA_VERSION", "checks_of", "format_number", "read_report_json",
           "report_verdict", "round_number", "round_numbers", "validate", "write_report_json"]
