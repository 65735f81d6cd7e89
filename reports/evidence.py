"""The evidence pages: every section of report.json after the summary, rendered without raw dicts.

Known sections open with one plain sentence on what they show; confidence levels in those
sentences are the ones the section records. Sections the renderer does not know (added by a
later audit) are rendered by the same generic rules: long text as paragraphs, short values as
key/value tables, lists of rows as tables that fit the page, lists of words joined by commas.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from reports.cells import cell, esc, hashes, is_hash, label
from reports.checks import confidence_text, section_confidence
from reports.tables import is_utility_grid, kv_line, kv_table, rows_table, utility_table

PROSE = 60  # characters: a text value longer than this is a sentence, printed as a paragraph
INLINE_DEPTH = 2  # a dict nested this deep (e.g. reproducibility › config › training) is printed as one line
HEADER_KEYS = {"schema", "schema_version", "title", "subtitle", "created_at", "privtangent_version", "verdict",
               "checks", "summary"}
UTILITY_KEYS = {"regime", "epsilon", "ours", "reg", "ours_std", "reg_std", "seeds"}

# (key, title, what the section shows); "{confidence}" is the level the section records.
SECTIONS: list[tuple[str, str, str]] = [
    ("released_model", "The released model",
     "The model file that was audited, identified by its sha256, and its accuracy as logged at training time and as "
     "measured again by the audit."),
    ("dp_statement", "Differential-privacy statement in full",
     "What was promised: the (ε, δ) guarantee, for which unit of data, how it was accounted, and what it covers."),
    ("data", "Data", "The training and test data: classes, counts, and anything the audit found unusual."),
    ("utility", "Utility: accuracy under differential privacy",
     "Test accuracy of each fine-tuning regime at each ε, for the tangent model (Ours) and the original network "
     "(Reg), laid out like Table 3 of the tangent-transformers paper."),
    ("membership_inference", "Membership inference (black-box)",
     "An attacker tries to tell training examples from unseen ones using only the model's outputs (LiRA, Carlini et "
     "al. 2022). The ε lower bound is what the attack's success proves at {confidence}; audit power is the most that "
     "a test of this size could ever prove, so 'no violation found' is not mistaken for 'ε confirmed'."),
    ("canary_audit", "White-box canary audit of the DP training",
     "Canary gradients are inserted into a separate training run of the same configuration and every privatized "
     "update is observed; the ε lower bound, at {confidence}, tests whether the training is as private as the "
     "accountant claims."),
    ("unlearning", "Unlearning",
     "Forget requests served by removing the shard that held the examples, the ledger that records them, and checks "
     "at {confidence} that the forgotten examples now look like examples the model never saw."),
    ("base_model", "Base model", "The pretrained network the fine-tuning started from."),
    ("reproducibility", "Reproducibility", "Versions, hashes, seeds and the command line that produced this report."),
]


def is_prose(value: Any) -> bool:
    return isinstance(value, str) and not is_hash(value) and (len(value) > PROSE or "\n" in value)


def is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def is_long_list(value: Any) -> bool:
    """A list of sentences (warnings, notes), printed one per line."""
    return isinstance(value, list) and any(is_prose(v) for v in value)


def is_scalar_map(value: Any) -> bool:
    """A dict of short values only (numbers, words, short lists): printable as one line."""
    return isinstance(value, Mapping) and bool(value) and not any(
        isinstance(v, Mapping) or is_rows(v) or is_long_list(v) or is_prose(v) for v in value.values())


def heading(key: str, depth: int) -> str:
    level = min(3 + depth, 5)
    return f"<h{level}>{esc(label(key))}</h{level}>"


def render_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    if not is_utility_grid(rows):
        return rows_table(rows)
    html = utility_table(rows)
    extra = [{k: r.get(k) for k in ("regime", "epsilon", *sorted(set(r) - UTILITY_KEYS))} for r in rows]
    if any(set(r) - {"regime", "epsilon"} for r in extra):
        html += rows_table(extra)
    return html


def render_mapping(value: Mapping[str, Any], depth: int = 0) -> str:
    """A dict: its sentences as paragraphs, its short values as one key/value table, then the rest."""
    prose = [(k, v) for k, v in value.items() if is_prose(v)]
    scalars = {k: v for k, v in value.items()
               if not (is_prose(v) or is_rows(v) or is_long_list(v) or (isinstance(v, Mapping) and v))}
    parts = [f"<p><b>{esc(label(k))}.</b> {cell(v)}</p>" for k, v in prose]
    if scalars:
        parts.append(kv_table(scalars))
    for k, v in value.items():
        if is_rows(v):
            parts.append(heading(k, depth) + render_rows(v))
        elif is_long_list(v):
            parts.append(heading(k, depth) + "<ul>" + "".join(f"<li>{cell(item)}</li>" for item in v) + "</ul>")
        elif isinstance(v, Mapping) and v and depth + 1 >= INLINE_DEPTH and is_scalar_map(v):
            parts.append(f"<p class='inline'><b>{esc(label(k))}:</b> {kv_line(v)}</p>")
        elif isinstance(v, Mapping) and v:
            parts.append(heading(k, depth) + render_mapping(v, depth + 1))
    return "".join(parts)


def render_value(value: Any) -> str:
    """Any JSON value of report.json as HTML."""
    if isinstance(value, Mapping):
        return render_mapping(value)
    if is_rows(value):
        return render_rows(value)
    if is_long_list(value):
        return "<ul>" + "".join(f"<li>{cell(item)}</li>" for item in value) + "</ul>"
    return f"<p>{cell(value)}</p>"


def img(png: bytes, alt: str) -> str:
    """A plot embedded as a data URI, so the page needs no other file."""
    return f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></figure>'


def section_html(key: str, title: str, intro: str, body: Any, figures: Sequence[tuple[str, bytes]]) -> str:
    parts = [f"<section id='{esc(key)}'><h2>{esc(title)}</h2>"]
    if intro:
        parts.append(f"<p class='intro'>{esc(intro)}</p>")
    parts += [img(png, caption) for caption, png in figures]
    parts.append(render_value(body))
    return "".join(parts) + "</section>"


def evidence_html(report: Mapping[str, Any], figures: Mapping[str, Sequence[tuple[str, bytes]]]) -> str:
    """Every section after the summary: the known ones in order, then any other, then the hash appendix."""
    known = {key for key, _, _ in SECTIONS}
    parts = []
    for key, title, intro in SECTIONS:
        if key in report:
            intro = intro.replace("{confidence}", confidence_text(section_confidence(report, key)))
            parts.append(section_html(key, title, intro, report[key], figures.get(key, [])))
    other = {k: v for k, v in report.items() if k not in known | HEADER_KEYS}
    for key, value in other.items():
        if isinstance(value, (Mapping, list)):
            parts.append(section_html(key, label(key).capitalize(), "", value, figures.get(key, [])))
    scalars = {k: v for k, v in other.items() if not isinstance(v, (Mapping, list))}
    if scalars:
        parts.append(section_html("other", "Other recorded values", "", scalars, []))
    parts.append(hash_appendix(report))
    return "".join(parts)


def hash_appendix(report: Mapping[str, Any]) -> str:
    """Every hash of the report in full (the pages above show the first digits)."""
    rows = "".join(f"<tr><td>{esc(where)}</td><td class='fullhash'>{esc(value)}</td></tr>"
                   for where, value in hashes({k: v for k, v in report.items() if k not in HEADER_KEYS}))
    if not rows:
        return ""
    return ("<section id='hashes'><h2>Appendix: hashes in full</h2><p class='intro'>SHA-256 digests identify the "
            "exact files and data this report is about; the pages above show their first digits.</p>"
            f"<table class='hashes'><thead><tr><th>what</th><th>sha256</th></tr></thead><tbody>{rows}</tbody></table>"
            "</section>")


__all__ = ["HEADER_KEYS", "SECTIONS", "evidence_html", "hash_appendix", "render_value", "section_html"]
