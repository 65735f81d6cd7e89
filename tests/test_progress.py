"""Plain progress (standard error not a terminal): few lines, none lost at the end."""

from __future__ import annotations

import io

from privtangent.progress import Progress


def _lines(min_interval: float, steps: int = 50, total: int | None = 50) -> list[str]:
    buf = io.StringIO()  # not a terminal: plain lines
    with Progress(total, "DP Ours full", unit="step", stream=buf, min_interval=min_interval) as bar:
        for step in range(steps):
            bar.update()
            bar.report(epsilon=0.1 * (step + 1))
    return buf.getvalue().splitlines()


def test_every_report_prints_without_a_minimum_interval():
    lines = _lines(0.0)
    assert len(lines) == 51  # 50 reports + done
    assert lines[0] == "DP Ours full: 1/50 step, epsilon 0.1"
    assert lines[-1].startswith("DP Ours full: done, 50 step in ")


def test_reports_are_throttled_but_the_first_and_last_unit_print():
    lines = _lines(3600.0)
    assert lines[0] == "DP Ours full: 1/50 step, epsilon 0.1"
    assert lines[1] == "DP Ours full: 50/50 step, epsilon 5"
    assert len(lines) == 3 and lines[2].startswith("DP Ours full: done, 50 step in ")


def test_a_held_back_report_reaches_the_closing_line():
    lines = _lines(3600.0, steps=20, total=50)  # stopped early: the last report was held back
    assert len(lines) == 2
    assert lines[0] == "DP Ours full: 1/50 step, epsilon 0.1"
    assert lines[1].startswith("DP Ours full: done, 20 step in ") and lines[1].endswith("epsilon 2")


def test_disabled_prints_nothing():
    buf = io.StringIO()
    with Progress(5, "quiet", stream=buf, enabled=False) as bar:
        bar.update()
        bar.report(loss=1.0)
    assert buf.getvalue() == ""
