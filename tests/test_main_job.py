"""`privtangent audit`: the main job end to end on a tiny config, and its exit statuses."""

from __future__ import annotations

import json

import pytest

from privtangent.cli.main import main

TINY = """\
data: {train_limit: 200, test_limit: 200}
privacy: {epsilons: [1, 8], epochs: 10}
training: {epochs: 2}
regimes: {regimes: [fc], train_limit: 100, seeds: 2, budget_seconds: 6}
shards: {num_shards: 2, forget: 10}
audit: {population: 100, shadows: 3, canaries: 32, whitebox_canaries: 2000, input_canaries: 8}
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("main")
    (folder / "tiny.yaml").write_text(TINY)
    out = folder / "out"
    status = main(["audit", "--config", str(folder / "tiny.yaml"), "--out", str(out), "--quiet"])
    return status, out


def test_main_job_writes_every_artifact(tiny_run):
    status, out = tiny_run
    report = json.loads((out / "report.json").read_text())
    assert status == (0 if report["verdict"] == "PASS" else 1)
    for name in ("report.html", "report.pdf", "report.json", "roc.csv", "checks.csv", "dp_statement_runs.csv"):
        assert (out / name).stat().st_size > 0, name
    sections = {"dp_statement", "utility", "membership_inference", "canary_audit", "input_canary_audit", "unlearning",
                "reproducibility"}
    assert sections <= set(report)
    ids = {c["id"] for c in report["checks"]}
    assert {"dp-accounting-eps1", "dp-accounting-eps8", "unlearning-exact"} <= ids
    assert any(i.startswith("whitebox") for i in ids) and any(i.startswith("mia-eps") for i in ids)
    assert [r["epsilon_target"] for r in report["dp_statement"]["runs"]] == [1, 8]
    assert all(r["epsilon"] <= r["epsilon_target"] for r in report["dp_statement"]["runs"])
    answer = report["utility"]["answer"]  # the regime comparison answers, on page 1 too
    assert answer.startswith("On ") and "Which regime to train under DP" in (out / "report.html").read_text()
    assert all("ours_minus_reg_low" in r and r["verdict"] for r in report["utility"]["rows"])


def test_report_rerenders_without_retraining(tiny_run, capsys):
    _, out = tiny_run
    (out / "report.html").unlink()
    assert main(["report", str(out), "--no-pdf"]) == 0
    assert "privtangent compliance report" in (out / "report.html").read_text()


def test_bad_config_exits_2_and_writes_nothing(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("privacy: {delta: 2}\n")
    out = tmp_path / "out"
    assert main(["audit", "--config", str(config), "--out", str(out)]) == 2
    assert "privacy.delta" in capsys.readouterr().err
    assert not out.exists()
    config.write_text("privacy: {epsilon: [1]}\n")
    assert main(["audit", "--config", str(config), "--out", str(out)]) == 2
    assert "privacy.epsilon: unknown field" in capsys.readouterr().err
    assert main(["audit", "--out", str(out), "--config", str(tmp_path / "missing.yaml")]) == 2
    assert main(["audit"]) == 2  # --out is required
    assert not out.exists()


def test_a_failing_check_exits_1_with_a_red_row(tmp_path, monkeypatch):
    import audits.pipeline as pipeline
    from audits.results import Check, Status

    def broken_stage(run):
        run.result.checks.append(Check("planted", "dp_statement", "planted failure", Status.FAIL,
                                       "a check planted by the test"))

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.replace("epsilons: [1, 8]", "epsilons: [8]"))
    monkeypatch.setattr(pipeline, "STAGES", [("planted", broken_stage)])
    out = tmp_path / "out"
    assert main(["audit", "--config", str(config), "--out", str(out), "--quiet", "--no-pdf"]) == 1
    page = (out / "report.html").read_text()
    assert "Verdict: FAIL" in page and '<tr class="fail">' in page and "planted failure" in page
