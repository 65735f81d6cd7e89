"""`privtangent audit privacy|unlearning|utility`: parsing, help, exit codes, written results."""

from __future__ import annotations

import argparse
import json
import math

import pandas as pd
import pytest

from audits.cli import add_audit_subcommands, main, write_section
from audits.results import AuditSection, Check, Status
from audits.utility import run_utility_audit, utility_checks, utility_rows


def test_subcommands_register_on_a_parser():
    parser = argparse.ArgumentParser(prog="privtangent audit")
    add_audit_subcommands(parser.add_subparsers(dest="audit", required=True))
    for name in ("privacy", "unlearning", "utility"):
        args = parser.parse_args([name, "--out", "x"])
        assert callable(args.func) and args.out == "x" and args.threads == 1


@pytest.mark.parametrize("name, flags", [
    ("privacy", ["--epsilons", "--inject-bug", "--population", "--canaries", "--models", "--quiet", "--out"]),
    ("unlearning", ["--sharded-model", "--shards", "--forget", "--never-seen", "--shadows", "--quiet"]),
    ("utility", ["--regimes", "--epsilons", "--seeds", "--train-size", "--quiet"]),
])
def test_help(name, flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert all(flag in text for flag in flags) and "exit status" in text


@pytest.mark.parametrize("argv, message", [
    (["privacy", "--epsilons", "1,abc"], "--epsilons"),
    (["privacy", "--epsilons", "-1"], "--epsilons"),
    (["privacy", "--models", "2"], "--models"),
    (["privacy", "--canaries", "300", "--population", "100"], "--canaries"),
    (["privacy", "--attacks", "lira,loss"], "--attacks"),
    (["privacy", "--confidence", "1.5"], "--confidence"),
    (["privacy", "--epsilons", "", "--no-reference"], "nothing to audit"),
    (["utility", "--regimes", "full,everything"], "--regimes"),
    (["utility", "--seeds", "0,-1"], "--seeds"),
    (["unlearning", "--shards", "1"], "--shards"),
    (["unlearning", "--sharded-model", "/nonexistent/dir"], "not a sharded model"),
])
def test_bad_input_exits_2(argv, message, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


def test_write_section_tables_and_nan(tmp_path):
    result = AuditSection("utility", {"rows": [{"regime": "fc", "epsilon": 1.0, "ours": float("nan"), "reg": 0.5}],
                                      "one_run": {"rows": [{"a": 1}]}, "note": "text"},
                          [Check("x", "utility", "t", Status.FAIL, "r")],
                          pd.DataFrame({"curve": ["c"], "fpr": [0.0], "tpr": [1.0]}))
    names = sorted(p.name for p in write_section(result, tmp_path))
    assert names == ["utility-one-run.csv", "utility-roc.csv", "utility.csv", "utility.json"]
    doc = json.loads((tmp_path / "utility.json").read_text())  # strict JSON: NaN written as null
    assert doc["verdict"] == "FAIL" and doc["body"]["rows"][0]["ours"] is None
    assert list(pd.read_csv(tmp_path / "utility.csv").columns) == ["regime", "epsilon", "ours", "reg"]


def test_utility_checks_fail_at_chance():
    cells = [{"regime": "fc", "epsilon": 1.0, "kind": k, "seed": s, "test_accuracy": a}
             for k, s, a in [("ours", 0, 0.6), ("ours", 1, 0.7), ("reg", 0, 0.5), ("reg", 1, 0.55)]]
    rows = utility_rows(cells)
    assert rows[0]["ours"] == pytest.approx(0.65) and rows[0]["seeds"] == 2
    assert rows[0]["ours_std"] == pytest.approx(math.sqrt(0.005))
    assert utility_checks(rows, 5, 2)[0].status == "PASS"
    assert "Ours ≥ Reg in 1 of 1" in utility_checks(rows, 5, 2)[0].reason
    rows[0]["reg"] = 0.2
    assert utility_checks(rows, 5, 2)[0].status == "FAIL"


def test_utility_audit_tiny(near_small):
    from tests.conftest import make_tiny_vit

    train, test = near_small
    result = run_utility_audit(make_tiny_vit(), train=train, test=test, regimes=("fc", "bitfit"), epsilons=(8,),
                               train_size=64, test_size=64, include_nonprivate=True)
    assert result.key == "utility" and result.roc is None
    rows = result.body["rows"]
    assert [(r["regime"], r["epsilon"]) for r in rows] == [("fc", 8.0), ("bitfit", 8.0), ("fc", None), ("bitfit", None)]
    assert all(0 <= r["ours"] <= 1 and 0 <= r["reg"] <= 1 for r in rows)
    assert len(result.body["cells"]) == 8 and result.checks[0].id == "utility-dp-above-chance"


def test_utility_audit_runs_the_regime_grid(base_model):
    """No data given: the regime comparison's own ``run_grid`` runs the cells."""
    result = run_utility_audit(base_model, regimes=("fc",), epsilons=(8,), train_size=64, test_size=100)
    body = result.body
    assert body["source"] == "privtangent.experiments.regimes.run_grid"
    assert [(r["regime"], r["epsilon"]) for r in body["rows"]] == [("fc", 8.0)]
    assert 0.2 < body["rows"][0]["ours"] <= 1 and 0.2 < body["rows"][0]["reg"] <= 1  # fractions, not %
    assert body["setup"]["recipe"]["data"] == ["fashion-near"] or body["setup"]["recipe"]["data"] == ("fashion-near",)


def test_utility_cli_embedded(base_model, tmp_path):
    argv = ["utility", "--regimes", "fc", "--epsilons", "8", "--train-size", "64", "--test-size", "200", "--quiet",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    doc = json.loads((tmp_path / "utility.json").read_text())
    assert doc["section"] == "utility" and doc["verdict"] == "PASS"
    assert doc["body"]["rows"][0]["ours"] > 0.2 and doc["body"]["rows"][0]["reg"] > 0.2
    assert (tmp_path / "utility.csv").exists()


def test_unlearning_cli_on_a_sharded_model(base_model, tmp_path):
    """--sharded-model: exit 0 on an honest model, 1 once the served Δw is replaced."""
    from privtangent.data import load_task
    from privtangent.io.checkpoint import save_checkpoint
    from privtangent.models.pretrain import DEFAULT_MODEL
    from privtangent.shards import SerialExecutor, ShardedModel, forget, task_ref
    from privtangent.train import TrainConfig

    data = load_task("fashion-near", "train", limit=40)
    model = ShardedModel.create(tmp_path / "m", base_model, data, TrainConfig(epochs=1), 2,
                                base_name=DEFAULT_MODEL["name"], base_kwargs=DEFAULT_MODEL["kwargs"],
                                data_ref=task_ref("fashion-near", "train", 40))
    model.train(executor=SerialExecutor(), cache_dir=tmp_path / "features")
    model.build()
    before, _ = model.served()
    forget(model, [int(data.ids[0])], data=data, cache_dir=tmp_path / "features")
    argv = ["unlearning", "--sharded-model", str(tmp_path / "m"), "--quiet", "--out", str(tmp_path / "audit")]
    assert main(argv) == 0
    doc = json.loads((tmp_path / "audit" / "unlearning.json").read_text())
    assert {c["id"]: c["status"] for c in doc["checks"]} == {"unlearning-exact": "PASS", "unlearning-ledger": "PASS",
                                                              "unlearning-mia": "SKIP"}
    assert "retained_accuracy" in doc["body"]["accuracy"][0]  # the training data was reloaded from its reference
    manifest = model.served_manifest()
    save_checkpoint(model.directory, before, {"kind": manifest["kind"], "state": manifest["state"]}, name="model")
    assert main(argv) == 1


def test_input_canary_cli_embedded(base_model, tmp_path):
    """``audit privacy --input-canaries`` end to end at a tiny size (the canaries are cached beside it)."""
    common = ["privacy", "--input-canaries", "--ic-canaries", "16", "--ic-probes", "50", "--ic-rank", "8",
              "--ic-data-limit", "100", "--ic-cache", str(tmp_path / "cache"), "--epsilons", "8", "--quiet"]
    assert main(common + ["--out", str(tmp_path / "ok")]) in (0, 1)
    doc = json.loads((tmp_path / "ok" / "input_canary_audit.json").read_text())
    run = doc["body"]["runs"][0]
    assert doc["section"] == "input_canary_audit" and run["records"] == 100 + run["canaries_included"]
    assert any((tmp_path / "cache").rglob("canaries*.safetensors"))
    assert {r["method"].split(",")[0] for r in doc["body"]["rows"]} == {"input canaries"}
    assert main(["privacy", "--input-canaries", "--white-box", "--out", str(tmp_path / "x")]) == 2
    assert main(common + ["--ic-span-steps", "-1", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()  # refused before anything is written
