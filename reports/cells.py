"""How one key and one value of report.json are printed: labels with units, numbers, lists, hashes.

Numbers are printed with ``audits.report_file.format_number``, the rounding report.json was
written with, so every number of the file appears verbatim on the page. Fractions stay
fractions (the label says so) rather than being rescaled to percent. A long hexadecimal hash
is shortened to its first ``HASH_SHOWN`` digits; the full value is in the element's title and
in the report's appendix.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from typing import Any

from audits.report_file import format_number

HASH_SHOWN = 12
HASH_PATTERN = re.compile(r"^[0-9a-f]{32,}$")
STATUSES = ("PASS", "FAIL", "SKIP", "INCONCLUSIVE")

LABELS = {
    "epsilon": "ε", "epsilon_target": "target ε", "target_epsilon": "target ε", "epsilon_claimed": "claimed ε",
    "epsilon_lb": "ε lower bound", "epsilon_rdp": "ε (RDP cross-check)", "epsilon_accounted": "accounted ε",
    "epsilon_rederived": "ε re-derived", "epsilon_rdp_rederived": "ε re-derived (RDP cross-check)",
    "ideal_epsilon_lb": "ε lower bound of the ideal mechanism", "delta": "δ", "sigma": "noise multiplier σ",
    "noise_multiplier": "noise multiplier σ", "run_noise_multiplier": "noise multiplier σ",
    "clip": "clipping norm C", "max_grad_norm": "clipping norm C", "run_max_grad_norm": "clipping norm C",
    "sample_rate": "sampling rate q", "run_sample_rate": "sampling rate q", "steps": "steps T",
    "run_steps": "steps T", "mu": "μ (Gaussian DP)",
    "auc": "AUC", "auc_ci_lo": "AUC interval low", "auc_ci_hi": "AUC interval high",
    "tpr_at_fpr_1pct": "TPR at 1 % FPR (fraction)", "tpr_at_fpr_0_1pct": "TPR at 0.1 % FPR (fraction)",
    "tpr_at_fpr_1pct_ci_lo": "TPR at 1 % FPR, interval low", "tpr_at_fpr_1pct_ci_hi": "TPR at 1 % FPR, interval high",
    "audit_power": "audit power (largest provable ε)", "ours": "Ours (tangent)", "reg": "Reg (non-linear)",
    "ours_std": "Ours, std over seeds", "reg_std": "Reg, std over seeds",
    "num_canaries": "canaries", "num_guesses": "guesses", "num_correct": "correct guesses",
    "tightness": "tightness (ε lower bound / claimed ε)", "ideal_tightness": "tightness of the ideal mechanism",
    "tp": "true positives", "fn": "false negatives", "fp": "false positives", "tn": "true negatives",
    "p_value": "p-value", "p_value_tpr": "p-value (TPR)", "sha256": "sha256", "model_sha256": "model sha256",
    "rows": "results", "privacy_unit": "unit of privacy", "tuning_accounted": "tuning accounted in ε",
    "noise_seeded": "noise seeded",
}


def label(key: str) -> str:
    """A column or row label: the known name, else the key in words, with its unit."""
    if key in LABELS:
        return LABELS[key]
    words = key.replace("_", " ")
    if "seconds" in key.split("_"):
        return f"{words.replace('seconds', 'time')} (s)"
    if "accuracy" in key:
        return f"{words} (fraction)"
    return words


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def is_hash(value: Any) -> bool:
    return isinstance(value, str) and bool(HASH_PATTERN.match(value))


def short_hash(value: str) -> str:
    """The first digits of a hash; the full value in the title (hover) and the appendix."""
    return f'<span class="hash" title="{esc(value)}">{esc(value[:HASH_SHOWN])}…</span>'


def badge(status: str) -> str:
    return f'<span class="badge {status.lower()}">{esc(status)}</span>'


def cell(value: Any) -> str:
    """One value as inline HTML: numbers rounded as in report.json (never broken across lines), lists
    joined, dicts as ``key: value``."""
    if isinstance(value, bool) or value is None:
        return format_number(value)
    if isinstance(value, (int, float)):
        return f"<span class='n'>{format_number(value)}</span>"
    if isinstance(value, str):
        if value in STATUSES:
            return badge(value)
        return short_hash(value) if is_hash(value) else esc(value)
    if isinstance(value, Mapping):
        return "; ".join(f"{esc(label(str(k)))}: {cell(v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value) if value else "none"
    return esc(value)


def hashes(value: Any, where: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """(where, hash) for every hash in a JSON value; ``where`` reads like ``unlearning › ledger › head``."""
    if is_hash(value):
        yield " › ".join(label(w) for w in where), value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from hashes(v, (*where, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from hashes(v, (*where, str(i + 1)) if len(value) > 1 else where)


__all__ = ["HASH_SHOWN", "LABELS", "STATUSES", "badge", "cell", "esc", "hashes", "is_hash", "label", "short_hash"]
