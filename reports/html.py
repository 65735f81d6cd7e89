"""The compliance report as one self-contained HTML page (plots embedded as data URIs).

Written for a reviewer outside ML: the verdict table comes first, every section opens with
one plain sentence on what it shows, and every number of report.json is printed (with the
same rounding) in the section it belongs to.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from typing import Any

from audits.report_file import format_number

SECTIONS = [
    ("dp_statement", "Differential-privacy statement",
     "What was promised: the (ε, δ) guarantee, for which unit of data, how it was accounted, and what it covers."),
    ("utility", "Utility: accuracy under differential privacy",
     "Test accuracy of each fine-tuning regime at each ε, for the tangent model (Ours) and the original network (Reg), "
     "shaped like Table 3 of the tangent-transformers paper."),
    ("membership_inference", "Membership inference (black-box)",
     "An attacker tries to tell training samples from unseen ones using only the model's outputs (LiRA, Carlini et al. 2022). "
     "The ε lower bound is what the attack's success proves at 95% confidence; audit power is the most that a test of this "
     "size could ever prove, so 'no violation found' is not mistaken for 'ε confirmed'."),
    ("canary_audit", "White-box canary audit of the DP training",
     "Canary gradients are inserted into a separate training run of the same configuration and every privatized update is "
     "observed; the ε lower bound tests whether the training is as private as the accountant claims."),
    ("unlearning", "Unlearning",
     "Forget requests served by removing the shard that held the samples, the ledger that records them, and checks that the "
     "forgotten samples now look like samples the model never saw."),
    ("reproducibility", "Reproducibility", "Versions, hashes, seeds and the command line that produced this report."),
]

LABELS = {
    "epsilon": "ε", "epsilon_target": "target ε", "epsilon_claimed": "claimed ε", "epsilon_lb": "ε lower bound (95%)",
    "epsilon_rdp": "ε (RDP cross-check)", "delta": "δ", "sigma": "noise multiplier σ", "clip": "clipping norm C",
    "sample_rate": "sampling rate q", "steps": "steps T", "auc": "AUC", "tpr_at_fpr_1pct": "TPR @ 1% FPR",
    "tpr_at_fpr_0_1pct": "TPR @ 0.1% FPR", "audit_power": "audit power (max provable ε)", "ours": "Ours (tangent)",
    "reg": "Reg (non-linear)", "test_accuracy": "test accuracy", "num_canaries": "canaries m", "num_guesses": "guesses",
    "num_correct": "correct", "tightness": "tightness (ε_lb / ε)", "ideal_tightness": "ideal tightness",
}


def esc(value: Any) -> str:
    return html.escape(str(value))


def label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " "))


def cell(value: Any) -> str:
    if isinstance(value, (int, float, bool)) or value is None:
        return format_number(value)
    if isinstance(value, str) and value in ("PASS", "FAIL", "SKIP"):
        return f'<span class="badge {value.lower()}">{value}</span>'
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) or v is None for v in value):
        return ", ".join(format_number(v) for v in value)
    return esc(value)


def table(rows: list[Mapping[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    head = "".join(f"<th>{esc(label(c))}</th>" for c in columns)
    body = "".join(
        f'<tr class="{str(r.get("status", "")).lower()}">' + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def table3(rows: list[Mapping[str, Any]]) -> str:
    """Utility rows pivoted like the paper's Table 3: one row per ε, Ours/Reg per regime."""
    regimes = list(dict.fromkeys(r["regime"] for r in rows))
    epsilons = sorted({r["epsilon"] for r in rows}, key=lambda e: (e is None, e or 0))
    by = {(r["regime"], r["epsilon"]): r for r in rows}
    head = "<tr><th rowspan=2>ε</th>" + "".join(f"<th colspan=2>{esc(g)}</th>" for g in regimes) + "</tr><tr>" + \
        "".join("<th>Ours</th><th>Reg</th>" for _ in regimes) + "</tr>"
    body = ""
    for e in epsilons:
        body += f"<tr><td>{cell(e) if e is not None else 'non-private'}</td>"
        for g in regimes:
            r = by.get((g, e), {})
            ours, reg = r.get("ours"), r.get("reg")
            best = ours is not None and reg is not None and ours >= reg
            body += f"<td>{'<b>' if best else ''}{cell(ours)}{'</b>' if best else ''}</td><td>{cell(reg)}</td>"
        body += "</tr>"
    return f"<table>{head}{body}</table><p class='intro'>Bold: the tangent model is at least as accurate.</p>"


def render_value(key: str, value: Any, depth: int = 0) -> str:
    """Any JSON value as HTML: prose, key/value table, table of rows, or nested block."""
    if isinstance(value, Mapping):
        scalars = {k: v for k, v in value.items() if not isinstance(v, (Mapping, list)) and not _is_prose(v)}
        prose = {k: v for k, v in value.items() if _is_prose(v)}
        parts = [f'<p><b>{esc(label(k))}.</b> {esc(v)}</p>' for k, v in prose.items()]
        if scalars:
            parts.append("<table class='kv'>" + "".join(
                f"<tr><th>{esc(label(k))}</th><td>{cell(v)}</td></tr>" for k, v in scalars.items()) + "</table>")
        for k, v in value.items():
            if isinstance(v, (Mapping, list)):
                parts.append(f"<h{min(3 + depth, 5)}>{esc(label(k))}</h{min(3 + depth, 5)}>" + render_value(k, v, depth + 1))
        return "".join(parts)
    if isinstance(value, list):
        if value and all(isinstance(v, Mapping) for v in value):
            if all({"regime", "epsilon", "ours"} <= set(v) for v in value):
                return table3(value) + table(value)
            return table(value)
        return f"<p>{cell(value)}</p>"
    return f"<p>{cell(value)}</p>"


def _is_prose(value: Any) -> bool:
    return isinstance(value, str) and (len(value) > 60 or "\n" in value)


def img(png: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:24px auto;color:#1b1f24;padding:0 16px}
h1{margin-bottom:4px} .sub{color:#57606a;margin-top:0}
.verdict{font-size:1.4em;padding:12px 16px;border-radius:6px;margin:16px 0;font-weight:600}
.verdict.pass{background:#dafbe1;color:#116329;border:1px solid #4ac26b} .verdict.fail{background:#ffebe9;color:#a40e26;border:1px solid #ff8182}
table{border-collapse:collapse;margin:8px 0 16px;font-size:0.92em} th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa} table.kv th{width:260px}
tr.fail td{background:#ffebe9} .badge{padding:1px 8px;border-radius:10px;font-weight:600;font-size:0.9em}
.badge.pass{background:#1a7f37;color:white} .badge.fail{background:#cf222e;color:white} .badge.skip{background:#8c959f;color:white}
section{border-top:2px solid #d0d7de;margin-top:28px;padding-top:4px} .intro{color:#57606a}
img{max-width:100%;margin:8px 0} pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:0.85em}
@media print{section{page-break-inside:auto} .verdict{page-break-after:avoid}}
"""


def render_html(report: Mapping[str, Any], figures: Mapping[str, list[tuple[str, bytes]]] | None = None) -> str:
    """The report page. ``figures`` maps a section key to [(caption, png bytes)]."""
    figures = figures or {}
    verdict = report["verdict"]
    checks = report["checks"]
    failed = [c for c in checks if c["status"] == "FAIL"]
    headline = ("All checks passed." if verdict == "PASS"
                else f"{len(failed)} check{'s' if len(failed) != 1 else ''} failed: " + "; ".join(c.get("title", c.get("id", "")) for c in failed) + ".")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(report['title'])}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(report['title'])}</h1>",
        f"<p class='sub'>{esc(report.get('subtitle', ''))} Generated {esc(report.get('created_at', ''))} by privtangent "
        f"{esc(report.get('privtangent_version', ''))}.</p>",
        f"<div class='verdict {verdict.lower()}'>Verdict: {verdict}. {esc(headline)}</div>",
    ]
    if report.get("summary"):
        parts.append(f"<p>{esc(report['summary'])}</p>")
    parts += ["<h2>Checks</h2>",
              "<p class='intro'>Each row is one release check. PASS: the evidence is consistent with the claim. "
              "FAIL: the evidence contradicts the claim (the release gate exits with status 1). "
              "SKIP: not run in this configuration.</p>",
              table([{"check": c.get("title", c.get("id")), "section": c.get("section", ""), "status": c["status"],
                      "reason": c.get("reason", "")} for c in checks])]
    for key, title, intro in SECTIONS:
        if key not in report:
            continue
        parts.append(f"<section id='{key}'><h2>{esc(title)}</h2><p class='intro'>{esc(intro)}</p>")
        for caption, png in figures.get(key, []):
            parts.append(img(png, caption))
        parts.append(render_value(key, report[key]))
        parts.append("</section>")
    extra = {k: v for k, v in report.items()
             if k not in {s[0] for s in SECTIONS} | {"schema", "schema_version", "title", "subtitle", "created_at",
                                                      "privtangent_version", "verdict", "checks", "summary"}}
    if extra:
        parts.append("<section id='other'><h2>Other recorded values</h2>" + render_value("other", extra) + "</section>")
    parts.append(f"<p class='sub'>report schema {esc(report['schema'])} v{esc(report['schema_version'])}</p></body></html>")
    return "".join(parts)
