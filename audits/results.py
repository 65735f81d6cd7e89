"""What an audit returns: checks with a status, and the evidence behind them.

- ``Check``: one release check (PASS / FAIL / SKIP) with a one-sentence reason;
- ``AuditSection``: one audit's result — its section of the report (``body``: the evidence, as
  typed rows, JSON-ready), its checks, and its ROC curves if it has any;
- ``AuditResult``: the whole pre-release audit — every section and every check, the verdict.

The pipeline builds them, ``audits.report_file`` writes them as report.json, and the report
renders that file. Evidence rows are ``TypedDict``s (declared next to the audit that makes
them), so they are plain dicts in JSON and typed for the reader of the code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pandas as pd


class Status(str, Enum):
    """The outcome of one check."""

    PASS = "PASS"  # the evidence is consistent with the claim (no violation found)
    FAIL = "FAIL"  # the evidence contradicts the claim: the release gate closes
    SKIP = "SKIP"  # not run, or could not decide (its reason says which)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Check:
    """One release check: ``id`` is stable across runs (``dp-accounting-eps3``), ``section`` is the
    report section holding its evidence, ``reason`` one plain sentence with the numbers."""

    id: str
    section: str
    title: str
    status: Status
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "section": self.section, "title": self.title, "status": self.status.value,
                "reason": self.reason}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Check:
        return cls(str(values["id"]), str(values.get("section", "")), str(values.get("title", values["id"])),
                   Status(values["status"]), str(values.get("reason", "")))


def verdict(checks: Iterable[Check]) -> Status:
    """FAIL when any check failed, else PASS."""
    return Status.FAIL if any(c.status is Status.FAIL for c in checks) else Status.PASS


@dataclass
class AuditSection:
    """One audit's result: ``body`` is its report section (JSON-ready evidence)."""

    key: str  # the report section: "membership_inference", "canary_audit", "utility", "unlearning", ...
    body: dict[str, Any]
    checks: list[Check] = field(default_factory=list)
    roc: pd.DataFrame | None = None  # columns curve, fpr, tpr

    @property
    def verdict(self) -> Status:
        return verdict(self.checks)


@dataclass
class AuditResult:
    """The whole audit: the sections in report order, and every check."""

    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    rocs: list[pd.DataFrame] = field(default_factory=list)

    def add(self, section: AuditSection) -> None:
        """Merge an audit's section (a section may be filled by several audits)."""
        self.sections.setdefault(section.key, {}).update(section.body)
        self.checks.extend(section.checks)
        if section.roc is not None:
            self.rocs.append(section.roc)

    @property
    def verdict(self) -> Status:
        return verdict(self.checks)


__all__ = ["AuditResult", "AuditSection", "Check", "Status", "verdict"]
