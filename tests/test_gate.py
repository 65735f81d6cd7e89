"""The release gate: bad input exits 2 naming it and leaves nothing behind; meaningless runs FAIL.

Each case reproduces a way the gate used to pass or crash silently."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import save_file

from audits.gate import delta_check, noise_check
from audits.results import Status
from privtangent.cli.main import main
from tests.conftest import make_tiny_vit

KWARGS = {"img_size": 16, "patch_size": 4, "in_chans": 3, "embed_dim": 32, "depth": 2, "num_heads": 2, "num_classes": 3}
TINY_AUDIT = ("privacy: {epsilons: [8], epochs: 5}\ntraining: {epochs: 1}\nregimes: {regimes: [fc], train_limit: 30, seeds: 2, budget_seconds: 4}\n"
              "shards: {num_shards: 2, forget: 4}\naudit: {population: 30, shadows: 3, canaries: 8, "
              "whitebox_canaries: 200}\n")


@pytest.fixture
def project(tmp_path):
    """A team's own model and image folders (3 classes × 20 training images)."""
    save_file({k: v.contiguous() for k, v in make_tiny_vit(**KWARGS).state_dict().items()}, str(tmp_path / "base.safetensors"))
    rng = np.random.default_rng(0)
    for split, count in (("train", 20), ("test", 6)):
        for name in ("a", "b", "c"):
            folder = tmp_path / "data" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return tmp_path


def config(project, extra: str = "", kwargs: dict | None = None) -> str:
    path = project / "c.yaml"
    path.write_text(f"model: {{name: vit_tiny_patch16_224, kwargs: {json.dumps(kwargs or KWARGS)}, "
                    f"checkpoint: base.safetensors}}\ndata: {{train: data/train, test: data/test}}\n" + TINY_AUDIT + extra)
    return str(path)


@pytest.mark.parametrize("extra, kwargs, message", [
    ("", {**KWARGS, "checkpoint_path": "base.pt"}, "model.kwargs: 'checkpoint_path' would load weights"),
    ("", {**KWARGS, "pretrained": True}, "model.kwargs: 'pretrained' would load weights"),
    ("data_extra", None, "data.std: must be a number or a list of numbers, got 'abc'"),
    ("privacy_typo", None, "privacy.epsilon: unknown field; did you mean 'epsilons'?"),
])
def test_bad_config_exits_2_naming_the_field_and_writes_nothing(project, capsys, extra, kwargs, message):
    text = {"data_extra": "", "privacy_typo": ""}.get(extra, extra)
    path = config(project, text, kwargs)
    raw = open(path).read()
    if extra == "data_extra":
        raw = raw.replace("data: {train: data/train, test: data/test}", "data: {train: data/train, test: data/test, std: abc}")
    if extra == "privacy_typo":
        raw = raw.replace("privacy: {epsilons: [8]", "privacy: {epsilon: [8]")
    open(path, "w").write(raw)
    out = project / "out"
    assert main(["audit", "--config", path, "--out", str(out), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_bad_output_directories_exit_2_before_any_work(project, capsys, tmp_path):
    path = config(project)
    (tmp_path / "file").write_text("x")
    for out, message in ((tmp_path / "file", "exists and is not a directory"),
                         ("/dev/null/out", "cannot be written")):
        assert main(["audit", "--config", path, "--out", str(out), "--quiet"]) == 2
        assert message in capsys.readouterr().err
    used = tmp_path / "used"
    used.mkdir()
    (used / "report.json").write_text("{}")
    assert main(["audit", "--config", path, "--out", str(used), "--quiet"]) == 2
    assert "already holds an earlier run" in capsys.readouterr().err
    assert main(["train", "--config", path, "--out", "/dev/null/x", "--quiet"]) == 2


def test_a_missing_checkpoint_or_data_folder_exits_2_and_writes_nothing(project, capsys):
    path = config(project)
    (project / "base.safetensors").rename(project / "moved.safetensors")
    out = project / "out"
    assert main(["audit", "--config", path, "--out", str(out), "--quiet"]) == 2
    assert "base.safetensors" in capsys.readouterr().err and not out.exists()


def test_gate_checks_that_need_no_attack():
    assert delta_check(0.5, 60).status is Status.FAIL and "1/N" in delta_check(0.5, 60).reason
    assert delta_check(1e-5, 60).status is Status.PASS
    assert noise_check(True).status is Status.FAIL and "NOT FOR RELEASE" in noise_check(True).reason
    assert noise_check(False).status is Status.PASS


def test_meaningless_runs_fail_the_gate(project, capsys):
    """δ ≥ 1/N, seeded noise and a training class without examples: each its own FAIL (exit 1)."""
    (project / "data" / "train" / "d").mkdir()  # an empty class folder
    Image.new("RGB", (4200, 4100), (90, 20, 200)).save(project / "data" / "train" / "a" / "huge.png")
    path = config(project, "")
    raw = open(path).read().replace("privacy: {epsilons: [8], epochs: 5}",
                                    "privacy: {epsilons: [8], epochs: 5, delta: 0.5, noise_seed: 1}")
    raw = raw.replace("whitebox_canaries: 200}", "whitebox_canaries: 200, input_canaries: 4}")  # on streamed folders
    open(path, "w").write(raw)
    out = project / "out"
    assert main(["audit", "--config", path, "--out", str(out), "--quiet", "--no-pdf"]) == 1
    report = json.loads((out / "report.json").read_text())
    status = {c["id"]: c["status"] for c in report["checks"]}
    assert status["dp-delta"] == status["dp-noise-unseeded"] == status["data-classes"] == "FAIL"
    assert report["verdict"] == "FAIL" and "input_canary_audit" in report
    data = report["data"]
    assert {"class": "d", "train": 0, "test": 0} in data["classes"]
    assert any("larger than" in w and "huge.png" in w and "4200×4100" in w for w in data["warnings"])
    assert "random initialization" not in report["base_model"]["source"]  # it came from base.safetensors
    assert "pretrained on separate, public data" not in report["dp_statement"]["covered"]


def test_shards_verify_catches_an_edited_base_checkpoint(tmp_path, capsys):
    out = tmp_path / "sharded"
    assert main(["shards", "train", "--data", "digits", "--data-limit", "60", "--shards", "2", "--epochs", "1",
                 "--executor", "serial", "--out", str(out)]) == 0
    assert main(["shards", "verify", str(out)]) == 0
    base = next(out.glob("base*.safetensors"))
    data = bytearray(base.read_bytes())
    data[-7] ^= 1
    base.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["shards", "verify", str(out)]) == 1
    captured = capsys.readouterr()
    assert "the base model" in captured.out + captured.err
