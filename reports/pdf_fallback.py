"""A PDF of the report drawn with matplotlib, for machines without Chromium.

It holds what page 1 of the HTML report holds (the verdict recomputed from the checks, the
released models, the DP statement, every check with what it means), then the plots; the
evidence tables are in report.html and the CSV files beside it.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from audits.report_file import format_number  # noqa: E402
from reports.checks import explained_checks, tally  # noqa: E402
from reports.summary import DP_SUMMARY_KEYS, released_models  # noqa: E402

A4 = (8.27, 11.69)  # inches
LINES_PER_PAGE = 74
CHARS_PER_LINE = 120


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """Page 1 of the report as plain text lines."""
    counts = tally(report)
    lines = [f"Verdict: {counts.verdict.value}. {counts.headline()}", ""]
    if report.get("verdict") != counts.verdict.value:
        lines += [f"(report.json records {report.get('verdict')}; the verdict above is recomputed from the checks.)",
                  ""]
    if report.get("summary"):
        lines += [str(report["summary"]), ""]
    models = released_models(report)
    if models:
        lines.append("RELEASED MODELS")
        lines += [f"  {m['model'] or 'not saved'}: promised ε {format_number(m['epsilon_target'])}, accounted ε "
                  f"{format_number(m['epsilon'])}, δ {format_number(m['delta'])}, sha256 {m['sha256'] or 'n/a'}"
                  for m in models]
        lines.append("")
    statement = report.get("dp_statement")
    if isinstance(statement, Mapping):
        lines.append("DIFFERENTIAL-PRIVACY STATEMENT")
        lines += [f"  {name}: {statement[key]}" for key, name in DP_SUMMARY_KEYS if key in statement]
        lines.append("")
    lines.append("CHECKS")
    last_meaning = None
    for check, shown, meaning in explained_checks(report):
        if meaning != last_meaning:
            lines.append(f"  ({meaning})")
            last_meaning = meaning
        lines.append(f"  [{shown}] {check.title}: {check.reason}")
    lines += ["", "The evidence (tables of every audit) is in report.html and the CSV files beside it."]
    return lines


def _text_pages(pdf: PdfPages, title: str, lines: Sequence[str]) -> None:
    wrapped = [w for line in lines
               for w in (textwrap.wrap(line, CHARS_PER_LINE, subsequent_indent="      ") or [""])]
    for start in range(0, max(len(wrapped), 1), LINES_PER_PAGE):
        fig = Figure(figsize=A4)
        fig.text(0.06, 0.96, title, fontsize=13, weight="bold")
        fig.text(0.06, 0.935, "\n".join(wrapped[start : start + LINES_PER_PAGE]), fontsize=7.5, va="top",
                 linespacing=1.35)
        pdf.savefig(fig)


def _figure_pages(pdf: PdfPages, figures: Mapping[str, Sequence[tuple[str, bytes]]]) -> None:
    images = [(caption, png) for items in figures.values() for caption, png in items]
    for start in range(0, len(images), 2):
        fig = Figure(figsize=A4)
        for i, (caption, png) in enumerate(images[start : start + 2]):
            ax = fig.add_axes((0.08, 0.52 - 0.47 * i, 0.84, 0.42))
            ax.imshow(mpimg.imread(io.BytesIO(png)))
            ax.set_axis_off()
            ax.set_title(caption, fontsize=9)
        pdf.savefig(fig)


def write_matplotlib_pdf(path: Path, report: Mapping[str, Any],
                         figures: Mapping[str, Sequence[tuple[str, bytes]]]) -> Path:
    with PdfPages(path) as pdf:
        _text_pages(pdf, str(report["title"]), summary_lines(report))
        _figure_pages(pdf, figures)
    return path


__all__ = ["summary_lines", "write_matplotlib_pdf"]
