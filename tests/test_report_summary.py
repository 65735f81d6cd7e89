"""Page 1 of the compliance report says what a reviewer outside ML needs, and nothing it cannot back.

The verdict is recomputed from the checks, a SKIP is never a pass, each check carries a plain
sentence that says what a PASS does not prove, confidence levels come from the report, the
released models are named by sha256 with links to their model cards, and no raw dict, list or
full hash is printed outside the appendix.
"""

from __future__ import annotations

import json
import re

import pytest

from audits.report_file import write_report_json
from privtangent.cli.main import main
from reports import checks as report_checks
from reports import plots
from reports.cells import HASH_SHOWN, hashes
from reports.pdf_fallback import summary_lines
from reports.render import render_run
from tests.report_fixture import make_run
from tests.test_reports import visible_text


def page_of(run) -> str:
    return render_run(run, pdf=False)["html"].read_text()


def summary_of(page: str) -> str:
    """The visible text of page 1 (the summary section)."""
    return visible_text(re.search(r"<section id='summary'>.*?</section>", page, flags=re.S).group(0))


def test_verdict_is_recomputed_from_the_checks_not_read_from_the_file(tmp_path):
    run = make_run(tmp_path / "run", fail=True, stored_verdict="PASS")  # the file contradicts its own checks
    assert json.loads((run / "report.json").read_text())["verdict"] == "PASS"
    assert main(["report", str(run), "--no-pdf"]) == 1  # exit 1: the recomputed verdict is FAIL
    page = (run / "report.html").read_text()
    assert "Verdict: FAIL" in page and "Verdict: PASS" not in page and "verdict fail" in page
    assert "records the verdict PASS" in page  # the contradiction is pointed out
    assert "black-box audit of DP ε=3 at claimed ε = 3" in summary_of(page).split("Released model")[0]  # named


def test_a_skip_is_never_all_checks_passed(tmp_path):
    page = page_of(make_run(tmp_path / "inconclusive"))
    summary = summary_of(page)
    assert "All" not in summary.split("Released")[0] and "all checks passed" not in summary.lower()
    assert "Verdict: PASS. 12 checks passed, 1 inconclusive." in summary
    assert 'badge inconclusive">INCONCLUSIVE' in page
    assert "the positive control failed" in summary  # its reason is shown
    clean = summary_of(page_of(make_run(tmp_path / "clean", inconclusive=False)))
    assert "Verdict: PASS. All 13 checks passed." in clean and "INCONCLUSIVE" not in clean


def test_tally_counts_skip_and_inconclusive_apart():
    def check(status, reason="r"):
        return {"id": "x", "section": "s", "title": "t", "status": status, "reason": reason}

    report = {"verdict": "PASS", "checks": [check("PASS"), check("SKIP", "Inconclusive: too few samples"),
                                            check("SKIP", "not run: no sharded model")]}
    counts = report_checks.tally(report)
    assert (counts.passed, counts.inconclusive, counts.skipped, counts.failed) == (1, 1, 1, 0)
    assert counts.headline() == "1 check passed, 1 inconclusive, 1 skipped."
    report["checks"].append(check("FAIL"))
    counts = report_checks.tally(report)
    assert counts.verdict.value == "FAIL" and counts.headline().startswith("1 of 4 checks failed, 1 check passed")
    assert report_checks.tally({"verdict": "PASS", "checks": []}).headline() == "No checks were run."


CHECK_IDS = ["dp-accounting-eps3", "dp-manifest-consistent", "dp-delta-below-1-over-n", "dp-noise-unseeded",
             "mia-positive-control", "mia-eps8", "whitebox-eps8", "unlearning-exact", "unlearning-ledger",
             "unlearning-mia", "utility-dp-above-chance", "data-classes"]


@pytest.mark.parametrize("check_id", CHECK_IDS)
def test_every_kind_of_check_has_its_own_plain_sentence_with_what_a_pass_does_not_prove(check_id):
    key = report_checks.meaning_key(check_id)
    assert key is not None and check_id.startswith(key)
    sentence = report_checks.meaning(check_id, 0.95)
    assert sentence != report_checks.FALLBACK and "{confidence}" not in sentence
    assert "PASS" in sentence and re.search(r"\bnot\b|\bnothing\b|cannot", sentence)  # the limit of a pass
    assert len(sentence) <= 135  # one line of page 1
    assert report_checks.meaning_key("mia-positive-control") == "mia-positive-control"  # longest prefix wins


def test_black_box_pass_is_no_violation_found_not_epsilon_confirmed(tmp_path):
    summary = summary_of(page_of(make_run(tmp_path / "run")))
    assert "A PASS means no violation was found at 95 % confidence, not that ε is confirmed." in summary
    assert summary.count("not that ε is confirmed") == 1  # said once for the group of black-box checks


def test_every_confidence_level_printed_comes_from_the_report(tmp_path):
    page = page_of(make_run(tmp_path / "run", confidence=0.9))
    text = visible_text(page)
    assert not re.search(r"95\s?%", text), re.findall(r".{40}95\s?%.{20}", text)
    assert "at 90 % confidence" in text
    fig = plots.unlearning_figure([{"label": "never seen", "auc": 0.5, "auc_ci_lo": 0.4, "auc_ci_hi": 0.6}], 0.9)
    assert "90 % interval" in fig.axes[0].get_xlabel()
    unknown = plots.unlearning_figure([{"label": "never seen", "auc": 0.5, "auc_ci_lo": 0.4, "auc_ci_hi": 0.6}])
    assert "95" not in unknown.axes[0].get_xlabel()  # no level invented when the report states none
    assert report_checks.confidence_text(None) == "the confidence level the audit states"


def test_released_models_with_sha256_and_model_card_links(tmp_path):
    run = make_run(tmp_path / "run")
    (run / "models" / "eps-8" / "model_card.md").unlink()
    page = page_of(run)
    report = json.loads((run / "report.json").read_text())
    released = re.search(r"<table class='released'>.*?</table>", page, flags=re.S).group(0)
    for row in report["dp_statement"]["runs"]:
        digest = row["model_sha256"]
        assert f'title="{digest}">{digest[:HASH_SHOWN]}…' in released
    assert "href='models/eps-1/model_card.md'" in released and "href='models/eps-3/model_card.md'" in released
    assert "models/eps-8/model_card.md" not in released and "none in this directory" in released


def test_audit_of_a_released_model_names_its_file_and_card(tmp_path):
    model_dir = tmp_path / "release"
    model_dir.mkdir()
    (model_dir / "model_card.md").write_text("# card\n")
    digest = "c556945c2015d38d0c912ece7299a5ff2111b30fbf9d3b2a38b4da4ca72a6bb5"
    report = {
        "title": "privtangent compliance report", "created_at": "2026-11-23T12:00:00+00:00", "verdict": "PASS",
        "checks": [{"id": "dp-accounting-eps3", "section": "dp_statement", "title": "σ gives at most ε = 3",
                    "status": "PASS", "reason": "re-derived ε = 2.986 ≤ 3"}],
        "released_model": {"directory": str(model_dir), "sha256": digest, "method": "DP TAFT-1",
                           "test_accuracy_logged": 1.0, "test_accuracy_measured": 0.9583},
        "dp_statement": {"privacy_unit": "one training example", "accountant": "prv",
                         "runs": [{"epsilon_target": 3.0, "epsilon": 2.986, "delta": 1e-05, "sigma": 1.196}]},
        "released_model_sha256": digest,
    }
    run = tmp_path / "audit"
    run.mkdir()
    write_report_json(run, report)
    page = page_of(run)
    released = re.search(r"<table class='released'>.*?</table>", page, flags=re.S).group(0)
    assert f'title="{digest}"' in released and "href='../release/model_card.md'" in released
    assert "2.986" in released and "0.9583" in released
    assert "Released model<" in page and "Released models" not in page  # one model: singular


def test_no_raw_dict_list_or_full_hash_outside_the_appendix(tmp_path):
    run = make_run(tmp_path / "run")
    page = page_of(run)
    body, appendix = page.split("<section id='hashes'>")
    text = visible_text(body)
    assert not re.search(r"[{\[]['\"]|['\"][}\]]|': ", text), re.findall(r".{30}[{\[]['\"].{30}", text)
    assert "full, bitfit, layernorm, fc" in text  # a list of words is joined
    assert not re.search(r"[0-9a-f]{40,}", text)  # hashes are shortened on the pages ...
    report = json.loads((run / "report.json").read_text())
    found = list(hashes(report))
    assert len(found) >= 10
    for where, digest in found:  # ... and given in full, with where they come from, in the appendix
        assert digest in appendix and f'title="{digest}"' in body
    assert "unlearning › ledger › head" in visible_text(appendix)


def test_unknown_sections_render_generically(tmp_path):
    page = page_of(make_run(tmp_path / "run"))
    section = visible_text(re.search(r"<section id='energy_audit'>.*?</section>", page, flags=re.S).group(0))
    assert "Energy audit" in section and "cpu0, cpu1" in section and "1234" in section and "1000" in section
    data = visible_text(re.search(r"<section id='data'>.*?</section>", page, flags=re.S).group(0))
    assert "sandal" in data and "1004" in data and "duplicated images" in data


def test_matplotlib_fallback_summary_recomputes_the_verdict(tmp_path):
    run = make_run(tmp_path / "run", fail=True, stored_verdict="PASS")
    lines = summary_lines(json.loads((run / "report.json").read_text()))
    assert lines[0].startswith("Verdict: FAIL. 1 of 13 checks failed")
    assert any("[INCONCLUSIVE]" in line for line in lines) and any("[FAIL]" in line for line in lines)
    assert not any("{'" in line for line in lines)


def test_models_without_a_saved_file_are_not_called_released(tmp_path):
    run = make_run(tmp_path / "run")
    report = json.loads((run / "report.json").read_text())
    for row in report["dp_statement"]["runs"]:
        del row["model"], row["model_sha256"]
    write_report_json(run, {k: v for k, v in report.items() if k not in ("schema", "schema_version")})
    summary = summary_of(page_of(run))
    assert "Models trained (no model file was saved)" in summary and "Released model" not in summary
    assert "not saved" in summary and "2.979" in summary  # the guarantee is still stated
