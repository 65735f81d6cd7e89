"""Render a run directory's results (report.json + curve CSVs) into the compliance report.

Writes report.html (self-contained), report.pdf (headless Chromium, or matplotlib when
Chromium is absent), the plots as PNG files and the tables as CSV files. Needs nothing
but the run directory: ``privtangent report RUN_DIR`` re-renders without retraining.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from audits.report_file import RunDirectoryError, read_report_json
from privtangent.io.atomic import atomic_write_bytes, atomic_write_text
from reports import browser, plots
from reports.checks import section_confidence
from reports.html import render_html
from reports.pdf_fallback import write_matplotlib_pdf
from reports.summary import released_models


def build_figures(run_dir: Path, report: dict[str, Any]) -> dict[str, list[tuple[str, bytes]]]:
    figures: dict[str, list[tuple[str, bytes]]] = {}
    utility = report.get("utility", {})
    if utility.get("rows"):
        figures["utility"] = [("accuracy vs ε", plots.utility_vs_epsilon(utility["rows"]))]
    roc_csv = run_dir / "roc.csv"
    if roc_csv.exists():
        try:
            curves = pd.read_csv(roc_csv)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise RunDirectoryError(f"{roc_csv} is corrupt: {err}") from None
        if not {"curve", "fpr", "tpr"} <= set(curves.columns):
            raise RunDirectoryError(f"{roc_csv} must have columns curve, fpr, tpr")
        figures["membership_inference"] = [("log-log ROC", plots.roc_loglog(curves))]
    canary = report.get("canary_audit", {})
    if canary.get("rows"):
        figures["canary_audit"] = [("audit tightness", plots.tightness_bars(canary["rows"]))]
    unlearning = report.get("unlearning", {})
    if unlearning.get("mia_before_after"):
        figures["unlearning"] = [("forgotten vs never-seen",
                                  plots.unlearning_bars(unlearning["mia_before_after"],
                                                        section_confidence(report, "unlearning")))]
    return figures


def model_cards(run_dir: Path, report: Mapping[str, Any]) -> dict[str, str]:
    """Released model path (as report.json names it) → link to its ``model_card.md``, for the cards that exist.

    Paths inside the run directory (``models/eps-3``) link relatively, so the directory can be moved
    or archived as a whole; a model directory elsewhere (``audit --model DIR``) links by a path
    relative to the run directory too.
    """
    cards = {}
    for row in released_models(report):
        if not row["model"]:
            continue
        card = run_dir / str(row["model"]) / "model_card.md"  # an absolute model path replaces run_dir
        if card.is_file():
            cards[str(row["model"])] = Path(os.path.relpath(card, run_dir)).as_posix()
    return cards


def write_tables(run_dir: Path, report: dict[str, Any]) -> list[Path]:
    """Every list of rows in report.json as a CSV (pandas), named by its section."""
    written = []
    for section, body in report.items():
        if not isinstance(body, dict):
            continue
        for key, value in body.items():
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                path = run_dir / f"{section}_{key}.csv"
                atomic_write_text(path, pd.DataFrame(value).to_csv(index=False))
                written.append(path)
    checks = run_dir / "checks.csv"
    atomic_write_text(checks, pd.DataFrame(report["checks"]).to_csv(index=False))
    return [checks, *written]


def write_pdf(run_dir: Path, html_path: Path, figures: dict[str, list[tuple[str, bytes]]], report: dict) -> Path:
    pdf = run_dir / "report.pdf"
    tmp = run_dir / ".report.pdf.tmp"
    if browser.find_chromium():
        browser.print_pdf(html_path, tmp)
    else:
        write_matplotlib_pdf(tmp, report, figures)
    atomic_write_bytes(pdf, tmp.read_bytes())
    tmp.unlink()
    return pdf


def render_run(run_dir: str | Path, pdf: bool = True) -> dict[str, Any]:
    """Render ``run_dir``'s report.json; returns the paths written: ``html``, ``tables`` (a list), ``pdf``."""
    run_dir = Path(run_dir)
    report = read_report_json(run_dir)
    figures = build_figures(run_dir, report)
    for section, items in figures.items():
        for i, (_, png) in enumerate(items):
            atomic_write_bytes(run_dir / f"plot_{section}{'' if i == 0 else i}.png", png)
    html_path = atomic_write_text(run_dir / "report.html", render_html(report, figures, model_cards(run_dir, report)))
    out: dict[str, Any] = {"html": html_path, "tables": write_tables(run_dir, report)}
    if pdf:
        out["pdf"] = write_pdf(run_dir, html_path, figures, report)
    return out
