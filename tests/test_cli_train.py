"""``privtangent train`` and ``privtangent compare-finetuning`` on the embedded default (tiny limits)."""

from __future__ import annotations

import json

import pytest

from privtangent.cli.main import main

TINY = ["--data", "digits", "--data-limit", "64", "--test-limit", "50", "--epochs", "1", "--quiet"]


@pytest.fixture
def cli(tmp_path, capsys):
    """Run the CLI in this process; returns (status, stdout, stderr)."""
    def run(*argv: str):
        status = main([argv[0], "--feature-cache", str(tmp_path / "features"), *argv[1:]])
        captured = capsys.readouterr()
        return status, captured.out, captured.err
    return run


def test_help_works():
    for command in (["train", "--help"], ["compare-finetuning", "--help"]):
        with pytest.raises(SystemExit) as stop:
            main(command)
        assert stop.value.code == 0


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for flag in ("--tangent", "--no-tangent", "--blocks", "--regime", "--epochs", "--seed", "--data-limit", "--out",
                 "--config", "--resume", "--model", "--checkpoint", "--linearize-cls", "--project-radius", "--quiet"):
        assert flag in text, flag


def test_train_writes_metrics_and_checkpoint(cli, tmp_path):
    status, out, err = cli("train", *TINY, "--blocks", "1", "--regime", "full", "--tangent", "--reset",
                           "--seed", "3", "--out", str(tmp_path / "run"))
    assert status == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["train_seconds"] > 0
    assert metrics["num_train"] == 64 and metrics["num_test"] == 50 and metrics["method"] == "TAFT-1"
    manifest = json.loads((tmp_path / "run" / "model.json").read_text())
    assert manifest["config"]["lr"] == 1e-2 and manifest["config"]["loss"] == "rsl" and manifest["config"]["seed"] == 3
    assert manifest["base"]["embedded_default"] and len(manifest["base"]["sha256"]) == 64
    assert manifest["data"]["train"]["task"] == "digits" and manifest["data"]["train"]["limit"] == 64
    assert manifest["anchor"]["stored"] and (tmp_path / "run" / "anchor.json").exists()
    assert "TAFT-1" in out and "test accuracy" in out


def test_config_file_yaml_and_toml_with_overrides(cli, tmp_path):
    (tmp_path / "run.yaml").write_text("data: digits\ndata_limit: 64\ntest_limit: 50\nout: from-yaml\n"
                                       "train:\n  epochs: 1\n  lr: 5.0e-3\n  regime: bitfit\n")
    status, _, err = cli("train", "--config", str(tmp_path / "run.yaml"), "--seed", "4", "--quiet")
    assert status == 0, err
    config = json.loads((tmp_path / "from-yaml" / "model.json").read_text())["config"]  # out: relative to the file
    assert (config["lr"], config["regime"], config["seed"]) == (5e-3, "bitfit", 4)
    (tmp_path / "run.toml").write_text('data = "digits"\ndata_limit = 64\ntest_limit = 50\n'
                                       '[train]\nepochs = 1\ntangent = false\n')
    status, _, err = cli("train", "--config", str(tmp_path / "run.toml"), "--out", str(tmp_path / "t"), "--quiet",
                         "--weight-decay", "0.01")
    assert status == 0, err
    config = json.loads((tmp_path / "t" / "model.json").read_text())["config"]
    # --no-tangent (here tangent = false) takes the NLFT defaults; the flag overrides the file
    assert (config["tangent"], config["lr"], config["loss"], config["weight_decay"]) == (False, 1e-3, "ce", 0.01)


@pytest.mark.parametrize("text, message", [
    ("train:\n  lr: -1\n", "train.lr: must be > 0"),
    ("train:\n  lrate: 0.1\n", "train.lrate: unknown field"),
    ("train:\n  epochs: 0\n", "train.epochs: must be ≥ 1"),
    ("epochs: two\n", "epochs: must be an integer"),
    ("train:\n  regime: all\n", "train.regime: must be one of"),
    ("dataset: digits\n", "dataset: unknown field"),
    ("data: mnist\n", "data: unknown data set 'mnist'"),
    ("data_limit: 0\n", "data_limit: must be an integer ≥ 1"),
    ("model:\n  name: vit_tiny_patch16_224\n", "needs --checkpoint"),
    ("train: [1, 2\n", "is not valid YAML"),
])
def test_bad_config_fields_are_named_and_nothing_is_written(cli, tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    status, _, err = cli("train", "--config", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "out"), "--quiet")
    assert status == 2
    assert message in err and err.startswith("privtangent: error:")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["--lr", "-1"], "--lr: must be > 0"),
    (["--blocks", "9"], "--blocks: must be in [1, 4]"),
    (["--no-tangent", "--output", "jvp"], "--output: 'jvp' needs a tangent model"),
    (["--checkpoint", "weights.pt"], "pickle-based checkpoints"),
    (["--model", "vit_tiny_patch16_224"], "--model vit_tiny_patch16_224: needs --checkpoint"),
])
def test_bad_flags_exit_2_with_a_clear_message(cli, tmp_path, argv, message):
    status, _, err = cli("train", *TINY, *argv, "--out", str(tmp_path / "out"))
    assert status == 2 and message in err
    assert not (tmp_path / "out").exists()


def test_out_required_existing_run_resume_and_corruption(cli, tmp_path):
    status, _, err = cli("train", *TINY)
    assert status == 2 and "--out: required" in err
    assert cli("train", *TINY, "--out", str(tmp_path / "r"))[0] == 0
    status, _, err = cli("train", *TINY, "--out", str(tmp_path / "r"))
    assert status == 2 and "already holds a training run; pass --resume" in err
    status, out, err = cli("train", *TINY, "--out", str(tmp_path / "r"), "--resume")  # finished: re-finalizes
    assert status == 0, err
    status, _, err = cli("train", *TINY, "--lr", "0.5", "--out", str(tmp_path / "r"), "--resume")
    assert status == 2 and "differs in: lr" in err
    state = next((tmp_path / "r").glob("state-*.safetensors"))
    state.write_bytes(state.read_bytes()[:-3] + b"xyz")
    status, _, err = cli("train", *TINY, "--out", str(tmp_path / "r"), "--resume")
    assert status == 2 and "corrupt or was modified" in err and "refusing to load it" in err


def test_compare_finetuning_writes_tables(cli, tmp_path):
    status, out, err = cli("compare-finetuning", "--out", str(tmp_path / "t1"), "--methods", "TAFT-1", "FC",
                           "--seeds", "0", "1", "--epochs", "1", "--tasks", "near", "--near-limit", "64",
                           "--test-limit", "50", "--workers", "1", "--quiet")
    assert status == 0, err
    md = (tmp_path / "t1" / "table1.md").read_text()
    assert "TAFT-1" in md and "FC" in md and "± " in md and "compare-finetuning" in md
    rows = (tmp_path / "t1" / "table1_runs.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + (4 + 1) * 2  # header + (4 TAFT-1 settings + FC) × 2 seeds
    table = (tmp_path / "t1" / "table1.csv").read_text().splitlines()
    assert table[0].startswith("method,variant") and len(table) == 1 + 5
    status, _, err = cli("compare-finetuning", "--out", str(tmp_path / "t1"), "--seeds", "0", "--epochs", "1")
    assert status == 2 and "pass --resume" in err
    status, _, err = cli("compare-finetuning", "--out", str(tmp_path / "t1"), "--seeds", "0", "--epochs", "2",
                         "--tasks", "near", "--near-limit", "64", "--test-limit", "50", "--resume", "--quiet")
    assert status == 2 and "other settings (epochs=1)" in err


def test_image_folders_from_a_config_file(cli, tmp_path):
    """A team's own data: image folders (one sub-folder per class), paths relative to the config."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("test", 4)):
        for label in ("cat", "dog"):
            folder = tmp_path / "data" / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 255, (20, 20), dtype=np.uint8) // (2 if label == "cat" else 1)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    (tmp_path / "run.yaml").write_text("data:\n  train: data/train\n  test: data/test\nout: runs/folder\n"
                                       "train:\n  epochs: 1\n  batch_size: 4\n")
    status, _, err = cli("train", "--config", str(tmp_path / "run.yaml"), "--quiet")
    assert status == 0, err
    manifest = json.loads((tmp_path / "runs" / "folder" / "model.json").read_text())
    assert manifest["data"]["train"]["classes"] == ["cat", "dog"] and manifest["data"]["train"]["num_samples"] == 12
    assert manifest["data"]["train"]["train_folder"].endswith("data/train")
    (tmp_path / "bad.yaml").write_text("data:\n  train: data/train\n")
    status, _, err = cli("train", "--config", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "x"), "--quiet")
    assert status == 2 and "needs both data.train and data.test" in err
