"""What each release check means to a reader outside ML, and how the checks add up to a verdict.

Every check of report.json has a stable id (``dp-accounting-eps3``, ``mia-eps8``,
``unlearning-exact``, ...). ``MEANINGS`` maps an id prefix to one plain sentence: what the check
tests, what a PASS shows, and what a PASS does *not* show ("no violation found" is not
"ε confirmed"). The verdict is recomputed from the checks (never read from the file), and a SKIP
is never counted as a pass: a SKIP whose reason starts with "inconclusive" is shown as
INCONCLUSIVE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from audits.report_file import checks_of, report_verdict
from audits.results import Check, Status

INCONCLUSIVE = "INCONCLUSIVE"

# Longest matching prefix wins; "{confidence}" is filled with the confidence level the report
# states for the check's section ("at the stated confidence" when it states none).
MEANINGS: dict[str, str] = {
    "dp-accounting": (
        "The accountant (the sum of every step's privacy cost) keeps ε within the promise. A PASS checks "
        "arithmetic, not that noise was added."),
    "dp-manifest": (
        "The model file's ε was recomputed from its stored settings. A PASS shows the file is self-consistent, not "
        "that the settings are true."),
    "dp-delta": (
        "δ, the chance that the guarantee fails, is below 1/N (N training examples), so no record leaks outright. "
        "A PASS says nothing about ε."),
    "dp-noise": (
        "The noise came from system randomness, not a seed whose holder could recompute and remove it. A PASS is "
        "not about how much noise."),
    "dp-": "A consistency check of the differential-privacy statement. A PASS is not a measurement of privacy.",
    "mia-positive-control": (
        "Control: the attack must catch a model trained without privacy. A PASS shows the attack works; it is not "
        "a privacy guarantee."),
    "mia-": (
        "An attack guesses training examples from the outputs. A PASS means no violation was found at "
        "{confidence}, not that ε is confirmed."),
    "whitebox-": (
        "Canaries in an unreleased copy of the training are traced every step. A PASS means no leak beyond ε at "
        "{confidence}, not ε proven."),
    "unlearning-exact": (
        "The served model is a bit-exact rebuild from the remaining parts. A PASS shows the removed part is "
        "gone, not that others never saw it."),
    "unlearning-ledger": (
        "The deletion log is tamper-evident and matches the served model. A PASS means it is intact; it cannot "
        "show no request was left out."),
    "unlearning-mia": (
        "An attack checks deleted examples now look never-seen. A PASS means no difference was found at "
        "{confidence}, not that none exists."),
    "unlearning-": (
        "A check of how a deletion request was served. A PASS means the records and files examined agree; it says "
        "nothing about others."),
    "utility-": (
        "The private models still learned the task (accuracy above chance). A PASS says they are usable; it says "
        "nothing about privacy."),
    "data-": (
        "The data have the classes and sizes the audit expects. A PASS says the data is well-formed, not that it is "
        "representative or private."),
}
FALLBACK = ("A check recorded by the audit; its finding states what was compared. A PASS means the evidence is "
            "consistent with the claim, not that the claim is proven.")


def meaning_key(check_id: str) -> str | None:
    """The ``MEANINGS`` prefix that explains ``check_id`` (the longest that matches), or None."""
    matches = [prefix for prefix in MEANINGS if check_id.startswith(prefix)]
    return max(matches, key=len) if matches else None


def confidence_text(confidence: float | None) -> str:
    """"95 % confidence" from 0.95, the level the report states; no level is invented."""
    if confidence is None:
        return "the confidence level the audit states"
    return f"{100 * confidence:g} % confidence"


def meaning(check_id: str, confidence: float | None = None) -> str:
    """One plain sentence (or two) on what the check shows and what a PASS does not show."""
    key = meaning_key(check_id)
    return (MEANINGS[key] if key else FALLBACK).replace("{confidence}", confidence_text(confidence))


def section_confidence(report: Mapping[str, Any], section: str) -> float | None:
    """The confidence level a report section states: its ``confidence`` or its ``setup.confidence``."""
    body = report.get(section)
    if not isinstance(body, Mapping):
        return None
    for holder in (body, body.get("setup")):
        if isinstance(holder, Mapping) and isinstance(holder.get("confidence"), (int, float)):
            return float(holder["confidence"])
    return None


def shown_status(check: Check) -> str:
    """PASS, FAIL, SKIP, or INCONCLUSIVE (a SKIP whose reason says it could not decide)."""
    if check.status is Status.SKIP and check.reason.strip().lower().startswith("inconclusive"):
        return INCONCLUSIVE
    return check.status.value


@dataclass(frozen=True)
class Tally:
    """How many checks ended each way, and the verdict recomputed from them."""

    verdict: Status
    passed: int
    failed: int
    inconclusive: int
    skipped: int

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.inconclusive + self.skipped

    def headline(self) -> str:
        """"All 11 checks passed." only when every check passed; otherwise every outcome is counted."""
        if self.total == 0:
            return "No checks were run."
        if self.passed == self.total:
            return f"All {self.total} checks passed." if self.total > 1 else "The one check passed."
        parts = [f"{self.failed} of {self.total} {_checks(self.total)} failed"] if self.failed else []
        parts.append(f"{self.passed} {_checks(self.passed)} passed")
        if self.inconclusive:
            parts.append(f"{self.inconclusive} inconclusive")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        return ", ".join(parts) + "."


def _checks(n: int) -> str:
    return "check" if n == 1 else "checks"


def tally(report: Mapping[str, Any]) -> Tally:
    """The checks of a report counted by shown status; the verdict recomputed from them."""
    checks = checks_of(dict(report))
    shown = [shown_status(c) for c in checks]
    return Tally(verdict=report_verdict(dict(report)), passed=shown.count("PASS"), failed=shown.count("FAIL"),
                 inconclusive=shown.count(INCONCLUSIVE), skipped=shown.count("SKIP"))


def explained_checks(report: Mapping[str, Any]) -> list[tuple[Check, str, str]]:
    """(check, shown status, meaning) for every check, in report order."""
    return [(c, shown_status(c), meaning(c.id, section_confidence(report, c.section))) for c in checks_of(dict(report))]


def groups(explained: Sequence[tuple[Check, str, str]]) -> list[list[tuple[Check, str, str]]]:
    """Consecutive checks that share one meaning, so the page states it once for the group."""
    out: list[list[tuple[Check, str, str]]] = []
    for item in explained:
        if out and out[-1][0][2] == item[2]:
            out[-1].append(item)
        else:
            out.append([item])
    return out


__all__ = ["FALLBACK", "INCONCLUSIVE", "MEANINGS", "Tally", "confidence_text", "explained_checks", "groups",
           "meaning", "meaning_key", "section_confidence", "shown_status", "tally"]
