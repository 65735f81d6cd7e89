"""The report's layout: tables no wider than an A4 page, plots whose labels do not overlap, and a PDF
whose page 1 is the summary alone. Rendered in headless Chromium (Debian's ``chromium``) and read
back with poppler's ``pdftotext``/``pdfinfo``."""

from __future__ import annotations

import html
import itertools
import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from reports import browser, plots
from reports.evidence import SECTIONS
from reports.html import A4_MARGIN_MM
from reports.render import render_run
from reports.tables import MAX_COLUMNS, rows_table
from tests.report_fixture import make_run
from tests.test_reports import visible_text

needs_chromium = pytest.mark.skipif(browser.find_chromium() is None, reason="Debian chromium not installed")
needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None or shutil.which("pdfinfo") is None,
                                   reason="poppler-utils not installed")
CSS_PX_PER_MM = 96 / 25.4
A4_WIDTH_PX = round(210 * CSS_PX_PER_MM)  # 794: the page
A4_TEXT_WIDTH_PX = round((210 - 2 * A4_MARGIN_MM[1]) * CSS_PX_PER_MM)  # 703: the printed text width


# --- tables ---------------------------------------------------------------------------------------------

def table_widths(page: str) -> list[int]:
    """Number of cells in the widest row of every table."""
    return [max(len(re.findall(r"<t[hd][ >]", row)) for row in re.findall(r"<tr.*?</tr>", table, flags=re.S))
            for table in re.findall(r"<table.*?</table>", page, flags=re.S)]


def test_wide_tables_are_split_with_their_names_repeated():
    rows = [{"model": f"model {i}", "attack": "LiRA", **{f"metric_{j}": i + j / 10 for j in range(12)},
             "members": 166} for i in range(8)]
    page = rows_table(rows)
    assert all(width <= MAX_COLUMNS for width in table_widths(page))
    assert page.count("<table") == 2 and page.count("<th>model</th><th>attack</th>") == 2  # names on every part
    assert "In every row: members <span class='n'>166</span>" in page  # a shared value is said once
    for j in range(12):
        assert f"<th>metric {j}</th>" in page


def test_wide_tables_with_few_rows_are_transposed():
    rows = [{"method": f"method {i}", **{f"value_{j}": i + j for j in range(14)}} for i in range(3)]
    page = rows_table(rows)
    assert page.count("<table") == 1 and "transposed" in page
    assert table_widths(page) == [4]  # one label column and one column per row
    assert page.count("<tr>") == 1 + 14


def test_intervals_are_one_column_and_nothing_is_lost():
    page = rows_table([{"label": "before", "auc": 0.81, "auc_ci_lo": 0.75, "auc_ci_hi": 0.86},
                       {"label": "after", "auc": 0.51, "auc_ci_lo": 0.45, "auc_ci_hi": 0.57}])
    assert "<th>AUC interval</th>" in page and "0.75</span> – <span class='n'>0.86" in page
    page = rows_table([{"tpr": 0.1234, "tpr_lo": 0.0567, "tpr_hi": 0.2345}])  # the point and its interval both kept
    assert all(n in page for n in ("0.1234", "0.0567", "0.2345"))


def test_report_tables_fit_the_column_limit(tmp_path):
    page = render_run(make_run(tmp_path / "run"), pdf=False)["html"].read_text()
    assert max(table_widths(page)) <= MAX_COLUMNS


# --- plots ----------------------------------------------------------------------------------------------

def labels_in_view(axis):
    """The tick labels matplotlib draws: those of ticks inside the axis's view interval."""
    lo, hi = sorted(axis.get_view_interval())
    tolerance = 1e-9 * max(abs(lo), abs(hi), 1.0)
    for tick in axis.get_major_ticks() + axis.get_minor_ticks():
        if lo - tolerance <= tick.get_loc() <= hi + tolerance:
            yield from (t for t in (tick.label1, tick.label2) if t.get_visible())


def drawn_labels(fig) -> list[Text]:
    """Every text artist matplotlib draws: titles, axis labels, the tick labels in view, legends."""
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    ticks, shown = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                ticks.update((tick.label1, tick.label2))
            shown += list(labels_in_view(axis))
    texts = [t for t in fig.findobj(Text) if t not in ticks] + shown
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def overlapping_labels(fig) -> list[tuple[str, str]]:
    labels = drawn_labels(fig)
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in labels]
    out = []
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        inter = Bbox.intersection(box_a, box_b)
        if inter is not None and inter.width * inter.height > 1.0:  # more than touching (pixels²)
            out.append((a, b))
    return out


METHODS = ["white-box binomial (Steinke et al. 2023)", "white-box f-DP (accountant's curve)"]
TIGHTNESS = [{"method": m, "epsilon_claimed": e, "tightness": t, "ideal_tightness": 0.6}
             for e, t in ((0.9999, 0.43), (3.0, 0.62), (7.999, 0.37)) for m in METHODS]
UNLEARNING = [{"label": "forgotten, before removal", "auc": 0.4325, "auc_ci_lo": 0.255, "auc_ci_hi": 0.6563},
              {"label": "forgotten, after removal", "auc": 0.4075, "auc_ci_lo": 0.2212, "auc_ci_hi": 0.6164},
              {"label": "never seen", "auc": 0.505, "auc_ci_lo": 0.2975, "auc_ci_hi": 0.7}]
UTILITY = [{"regime": r, "epsilon": e, "ours": 0.6 + e / 50, "reg": 0.55 + e / 50}
           for r in ("full", "bitfit", "layernorm", "fc") for e in (1.0, 3.0, 8.0)]
FPR = np.linspace(0, 1, 200)
ROC = pd.DataFrame({"curve": np.repeat(["non-private TAFT-1", "DP ε=1", "DP ε=3", "DP ε=8"], 200),
                    "fpr": np.tile(FPR, 4), "tpr": np.tile(np.sqrt(FPR), 4)})
FIGURES = {
    "tightness, 2 claims": lambda: plots.tightness_figure([r for r in TIGHTNESS if r["epsilon_claimed"] != 3.0]),
    "tightness, 3 claims": lambda: plots.tightness_figure(TIGHTNESS),
    "unlearning": lambda: plots.unlearning_figure(UNLEARNING, 0.95),
    "utility": lambda: plots.utility_figure(UTILITY),
    "roc": lambda: plots.roc_figure(ROC),
}


def clipped_labels(fig) -> list[str]:
    """Labels that stick out of the figure (cut off in the PNG)."""
    renderer = fig.canvas.get_renderer()
    page = fig.bbox.padded(1.0)
    return [t.get_text() for t in drawn_labels(fig)
            if not (page.contains(*t.get_window_extent(renderer).min) and page.contains(*t.get_window_extent(renderer).max))]


@pytest.mark.parametrize("name", FIGURES)
def test_no_two_plot_labels_overlap_or_are_cut_off(name):
    fig = FIGURES[name]()
    labels = drawn_labels(fig)
    assert len(labels) >= 6  # the check looks at something: title, axis labels, ticks, legend
    assert not overlapping_labels(fig), overlapping_labels(fig)
    assert not clipped_labels(fig), clipped_labels(fig)


def test_the_overlap_check_detects_overlap():
    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.set_xticks([0, 1, 2], ["forgotten, before removal", "forgotten, after removal", "never seen"])
    assert overlapping_labels(fig)


# --- the page in Chromium ----------------------------------------------------------------------------------

PROBE = """<script>
window.addEventListener('load', () => {
  const width = document.documentElement.clientWidth, bad = [];
  const describe = (node, r) => (node.nodeType === 3 ? '#text' : node.tagName) + ' right=' + Math.round(r.right)
      + ' ' + (node.textContent || '').trim().slice(0, 50);
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > width + 0.5 || r.left < -0.5)) bad.push(describe(el, r));
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const range = document.createRange();
    range.selectNodeContents(walker.currentNode);
    const r = range.getBoundingClientRect();
    if (r.width > 0 && r.right > width + 0.5) bad.push(describe(walker.currentNode, r));
  }
  const out = document.createElement('pre');
  out.id = 'layout-probe';
  out.textContent = JSON.stringify({width: width, scrollWidth: document.documentElement.scrollWidth,
                                    elements: document.body.querySelectorAll('*').length, overflowing: bad});
  document.body.appendChild(out);
});
</script>"""


def layout_at(html_path, width: int) -> dict:
    """Load the report with the probe script in a window ``width`` CSS pixels wide; the probe's findings."""
    probe = html_path.with_name("probe.html")
    probe.write_text(html_path.read_text().replace("</body>", PROBE + "</body>"))
    dom = browser.dump_dom(probe, width=width, height=1123)
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', dom, flags=re.S)
    assert found, dom[-2000:]
    return json.loads(html.unescape(found.group(1)))


@needs_chromium
@pytest.mark.parametrize("width", [A4_TEXT_WIDTH_PX, A4_WIDTH_PX])
def test_nothing_overflows_an_a4_page_horizontally(tmp_path, width):
    page = render_run(make_run(tmp_path / "run", fail=True), pdf=False)["html"]
    layout = layout_at(page, width)
    assert layout["width"] == width and layout["elements"] > 500
    assert not layout["overflowing"], layout["overflowing"][:10]
    assert layout["scrollWidth"] <= width


def pdf_text(pdf, first: int, last: int) -> str:
    return subprocess.run(["pdftotext", "-f", str(first), "-l", str(last), str(pdf), "-"], check=True,
                          capture_output=True, text=True, timeout=60).stdout


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


@needs_chromium
@needs_poppler
def test_pdf_page_one_is_the_summary_only(tmp_path):
    run = make_run(tmp_path / "run", fail=True)
    pdf = render_run(run)["pdf"]
    page = (run / "report.html").read_text()
    summary = squeeze(visible_text(re.search(r"<section id='summary'>.*?</section>", page, flags=re.S).group(0)))
    info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True, timeout=60).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    width, height = map(float, re.search(r"Page size:\s+([\d.]+) x ([\d.]+)", info).groups())
    assert abs(width - 595.3) < 1 and abs(height - 841.9) < 1  # A4, in points
    first, second = squeeze(pdf_text(pdf, 1, 1)), squeeze(pdf_text(pdf, 2, 2))
    report = json.loads((run / "report.json").read_text())
    for part in ("Verdict: FAIL", "Released models", "Differential-privacy statement", "Checks",
                 report["checks"][-1]["reason"][:40]):
        assert squeeze(part) in first, part
    for _, title, _ in SECTIONS:  # no evidence on page 1 (a heading's words may occur in the summary's own text)
        assert squeeze(title) in summary or squeeze(title) not in first, title
    # The summary is followed by a page break, so when page 2 opens with the first evidence section,
    # the whole summary (ending with the last check) was on page 1.
    assert second.startswith(squeeze("Differential-privacy statement in full")), second[:200]
    assert pages <= 7  # the fixture's evidence on six pages
