"""A PDF of the report drawn with matplotlib, for machines without Chromium."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402


def _text_page(pdf: PdfPages, title: str, text: str) -> None:
    lines = [line for para in text.splitlines() for line in (textwrap.wrap(para, 110) or [""])]
    for start in range(0, max(len(lines), 1), 70):
        fig = plt.figure(figsize=(8.27, 11.69))
        fig.text(0.06, 0.96, title, fontsize=13, weight="bold")
        fig.text(0.06, 0.93, "\n".join(lines[start : start + 70]), fontsize=7, family="monospace", va="top")
        pdf.savefig(fig)
        plt.close(fig)


def write_matplotlib_pdf(path: Path, report: dict, figures: dict) -> Path:
    with PdfPages(path) as pdf:
        summary = "\n".join(f"[{c['status']}] {c.get('title', c.get('id'))}: {c.get('reason', '')}" for c in report["checks"])
        _text_page(pdf, f"{report['title']} — verdict {report['verdict']}", summary)
        for key, value in report.items():
            if isinstance(value, dict):
                _text_page(pdf, key.replace("_", " "), json.dumps(value, indent=1))
                for caption, png in figures.get(key, []):
                    fig = plt.figure(figsize=(8.27, 6))
                    plt.imshow(mpimg.imread(io.BytesIO(png)))
                    plt.axis("off")
                    plt.title(caption)
                    pdf.savefig(fig)
                    plt.close(fig)
    return path
