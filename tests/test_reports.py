"""The compliance report renders from a run directory alone, and says what it should."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from audits.report_file import format_number
from privtangent.cli.main import main
from reports import browser
from reports.render import render_run
from tests.report_fixture import make_run


def _numbers(obj):
    if isinstance(obj, bool) or obj is None:
        return
    if isinstance(obj, (int, float)):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)


def visible_text(page: str) -> str:
    """What a reader sees: no style sheet, no embedded images, no tags or attributes."""
    page = re.sub(r"<style>.*?</style>|<img[^>]*>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_every_number_in_report_json_appears_in_html(tmp_path):
    run = make_run(tmp_path / "run")
    paths = render_run(run, pdf=False)
    page = paths["html"].read_text()
    text = visible_text(page)
    report = json.loads((run / "report.json").read_text())
    numbers = list(_numbers(report))
    assert len(numbers) > 200
    missing = [n for n in numbers if not re.search(rf"(?<![\d.]){re.escape(format_number(n))}(?![\d])", text)]
    assert not missing, missing[:10]
    assert "data:image/png;base64," in page  # self-contained plots
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_failing_check_is_a_red_fail_row(tmp_path):
    page = render_run(make_run(tmp_path / "run", fail=True), pdf=False)["html"].read_text()
    assert re.search(r'<tr class="fail">.*?badge fail">FAIL', page)
    assert "Verdict: FAIL" in page and "verdict fail" in page
    ok = render_run(make_run(tmp_path / "ok"), pdf=False)["html"].read_text()
    assert "Verdict: PASS" in ok and '<tr class="fail">' not in ok


def test_tables_written_as_csv(tmp_path):
    run = make_run(tmp_path / "run")
    render_run(run, pdf=False)
    report = json.loads((run / "report.json").read_text())
    assert (run / "checks.csv").read_text().count("\n") == 1 + len(report["checks"])
    assert (run / "utility_rows.csv").exists() and (run / "dp_statement_runs.csv").exists()


def test_report_cli_missing_or_corrupt_run_dir_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no report.json" in capsys.readouterr().err
    bad = make_run(tmp_path / "bad")
    (bad / "report.json").write_text("{not json")
    assert main(["report", str(bad)]) == 2
    assert "corrupt" in capsys.readouterr().err
    wrong = make_run(tmp_path / "wrong")
    (wrong / "report.json").write_text(json.dumps({"schema": "other"}))
    assert main(["report", str(wrong)]) == 2
    assert not (wrong / "report.html").exists()  # nothing half-written


needs_chromium = pytest.mark.skipif(browser.find_chromium() is None, reason="Debian chromium not installed")


@needs_chromium
def test_html_renders_in_headless_chromium(tmp_path):
    run = make_run(tmp_path / "run", fail=True)
    html = render_run(run, pdf=False)["html"]
    png = browser.screenshot(html, tmp_path / "shot.png", width=1000, height=1400)
    import matplotlib.image as mpimg

    pixels = mpimg.imread(png)[..., :3]
    assert pixels.std() > 0.05  # not blank
    red = (pixels[..., 0] > 0.7) & (pixels[..., 1] < 0.3) & (pixels[..., 2] < 0.3)
    assert red.sum() > 50  # the red FAIL badge/banner is visible
    # the title is in the DOM Chromium rendered
    dom = subprocess.run([browser.find_chromium(), *browser.FLAGS, f"--user-data-dir={tmp_path / 'p'}", "--dump-dom",
                          html.resolve().as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "privtangent compliance report (fixture)" in dom


@needs_chromium
@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
def test_pdf_converts_to_png_pages(tmp_path):
    run = make_run(tmp_path / "run")
    assert main(["report", str(run)]) == 0
    pdf = run / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp_path / "page")], check=True, timeout=120)
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) >= 2
    import matplotlib.image as mpimg

    assert np.asarray(mpimg.imread(pages[0])).std() > 0.02


def test_matplotlib_pdf_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(browser, "find_chromium", lambda: None)
    run = make_run(tmp_path / "run")
    pdf = render_run(run)["pdf"]
    assert pdf.read_bytes()[:5] == b"%PDF-"
