"""Checkpointed runs: resume after a kill is bit-identical; corrupt / tampered files are refused."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import torch

from privtangent.errors import CheckpointError, ConfigError
from privtangent.io.hashing import tensor_hash
from privtangent.train import TrainConfig
from privtangent.train.run import load_run, pack, read_state, train_run, unpack
from tests.conftest import make_tiny_vit
from tests.test_train import synthetic

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_vit(num_classes=3)


class Killed(Exception):
    pass


def kill_after(epoch_to_die: int):
    def hook(epoch, *rest):
        if epoch == epoch_to_die:
            raise Killed(f"simulated kill after epoch {epoch}")
    return hook


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


CONFIGS = [
    TrainConfig(epochs=4, batch_size=16, reset=True, linearize_cls=True, seed=2),  # TAFT, PT=F, CLS=T
    TrainConfig.recipe(tangent=False, epochs=4, batch_size=16, seed=1),  # NLFT (AdamW)
]


@pytest.mark.parametrize("config", CONFIGS, ids=["taft", "nlft"])
def test_resume_after_a_kill_is_bit_identical(tiny, tmp_path, config):
    train, test = synthetic(40), synthetic(20, seed=1)
    whole = train_run(tiny, train, config, tmp_path / "whole", test=test, progress=False)
    with pytest.raises(Killed):
        train_run(tiny, train, config, tmp_path / "killed", test=test, progress=False, on_epoch_end=kill_after(2))
    assert read_state(tmp_path / "killed")["epoch"] == 2 and not (tmp_path / "killed" / "model.json").exists()
    resumed = train_run(tiny, train, config, tmp_path / "killed", test=test, progress=False, resume=True)
    assert resumed.resumed_from == 2
    assert same(whole.model.trainable_state_dict(), resumed.model.trainable_state_dict())
    assert resumed.metrics["test_accuracy"] == whole.metrics["test_accuracy"]
    assert [h["train_loss"] for h in resumed.manifest["history"]] == [h["train_loss"] for h in whole.manifest["history"]]
    # the files on disk hold the same weights, and a resumed-then-finished run resumes to itself
    assert json.loads((tmp_path / "killed" / "model.json").read_text())["sha256"] == \
        json.loads((tmp_path / "whole" / "model.json").read_text())["sha256"]


@pytest.mark.parametrize("lose", ["generator", "optimizer"])
def test_resume_without_part_of_the_state_is_not_identical(tiny, tmp_path, lose):
    """The resume test can fail: dropping the data-order generator or the optimizer's
    moments from the saved state changes the result."""
    from privtangent.train.trainer import fit, make_optimizer, prepare_model

    config, train = CONFIGS[0], synthetic(40)
    whole = train_run(tiny, train, config, tmp_path / "whole", progress=False)
    with pytest.raises(Killed):
        train_run(tiny, train, config, tmp_path / "k", progress=False, on_epoch_end=kill_after(2))
    state = read_state(tmp_path / "k")
    intact = fit(tiny, train, config, state=dict(state), progress=False)
    assert same(whole.model.trainable_state_dict(), intact.model.trainable_state_dict())
    if lose == "generator":
        state["generator"] = torch.Generator().manual_seed(config.seed).get_state()
    else:
        state["optimizer"] = make_optimizer(prepare_model(tiny, 3, config), config).state_dict()
    broken = fit(tiny, train, config, state=state, progress=False)
    assert not same(whole.model.trainable_state_dict(), broken.model.trainable_state_dict())


@pytest.mark.slow
def test_resume_after_sigkill_of_a_subprocess(tmp_path):
    """A real kill: a child process SIGKILLs itself after epoch 2; the CLI resumes it."""
    script = textwrap.dedent(f"""
        import os, signal, sys, torch
        sys.path.insert(0, {str(REPO)!r})
        torch.set_num_threads(1)
        from tests.conftest import make_tiny_vit
        from tests.test_train import synthetic
        from privtangent.train import TrainConfig
        from privtangent.train.run import train_run
        def hook(epoch, *rest):
            if epoch == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        out = sys.argv[1]
        train_run(make_tiny_vit(num_classes=3), synthetic(40), TrainConfig(epochs=4, batch_size=16, reset=True), out,
                  progress=False, threads=1, on_epoch_end=hook if sys.argv[2] == "kill" else None,
                  resume=sys.argv[2] == "resume")
    """)
    (tmp_path / "child.py").write_text(script)
    run = lambda out, mode: subprocess.run([sys.executable, str(tmp_path / "child.py"), str(out), mode],  # noqa: E731
                                           cwd=REPO, capture_output=True, text=True, timeout=600)
    killed = run(tmp_path / "k", "kill")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert read_state(tmp_path / "k")["epoch"] == 2
    assert run(tmp_path / "k", "resume").returncode == 0
    assert run(tmp_path / "w", "whole").returncode == 0
    base = make_tiny_vit(num_classes=3)
    assert same(load_run(tmp_path / "k", base)[0].trainable_state_dict(),
                load_run(tmp_path / "w", base)[0].trainable_state_dict())


def test_run_directory_manifest_and_reload(tiny, tmp_path):
    train, test = synthetic(32), synthetic(16, seed=1)
    config = TrainConfig(epochs=1, batch_size=16, reset=True)
    result = train_run(tiny, train, config, tmp_path / "r", test=test, progress=False,
                       base_record={"name": "tiny"}, data_extra={"task": "synthetic"})
    manifest = json.loads((tmp_path / "r" / "model.json").read_text())
    assert manifest["base"]["sha256"] == tensor_hash(tiny.state_dict()) and manifest["base"]["name"] == "tiny"
    assert manifest["config"] == config.to_dict() and manifest["seed"] == 0
    assert manifest["data"]["train"]["content_sha256"] == train.content_hash()
    assert manifest["data"]["train"]["ids_sha256"] == train.ids_hash()
    assert manifest["data"]["train"]["task"] == "synthetic"
    assert manifest["anchor"]["stored"] and (tmp_path / "r" / "anchor.json").exists()
    assert {"torch", "timm", "safetensors"} <= set(manifest["versions"])
    assert 0 <= manifest["metrics"]["test_accuracy"] <= 1
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["test_accuracy"] == result.metrics["test_accuracy"]
    model, _ = load_run(tmp_path / "r", tiny)
    feats = model.prefix(test.images)
    assert torch.equal(model.forward_features(feats), result.model.forward_features(feats))
    with pytest.raises(CheckpointError, match="another base model"):
        load_run(tmp_path / "r", make_tiny_vit(num_classes=3, seed=9))


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_corrupt_state_is_refused(tiny, tmp_path):
    config, train = TrainConfig(epochs=3, batch_size=16), synthetic(32)
    with pytest.raises(Killed):
        train_run(tiny, train, config, tmp_path / "r", progress=False, on_epoch_end=kill_after(1))
    _flip_a_byte(next((tmp_path / "r").glob("state-*.safetensors")))
    with pytest.raises(CheckpointError, match=r"corrupt or was modified.*refusing to load it"):
        train_run(tiny, train, config, tmp_path / "r", progress=False, resume=True)


def test_tampered_weights_and_manifests_are_refused(tiny, tmp_path):
    train = synthetic(32)
    train_run(tiny, train, TrainConfig(epochs=1, batch_size=16), tmp_path / "r", progress=False)
    weights = next((tmp_path / "r").glob("model*.safetensors"))
    original = weights.read_bytes()
    _flip_a_byte(weights)
    with pytest.raises(CheckpointError, match="corrupt or was modified"):
        load_run(tmp_path / "r", tiny)
    weights.write_bytes(original)
    load_run(tmp_path / "r", tiny)  # intact again
    manifest_path = tmp_path / "r" / "model.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"] = "0" * 64  # a manifest edited to match other weights
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="does not match the manifest"):
        load_run(tmp_path / "r", tiny)


def test_resume_refuses_another_config_and_overwrite_needs_resume(tiny, tmp_path):
    config, train = TrainConfig(epochs=3, batch_size=16), synthetic(32)
    with pytest.raises(Killed):
        train_run(tiny, train, config, tmp_path / "r", progress=False, on_epoch_end=kill_after(1))
    with pytest.raises(CheckpointError, match=r"training configuration differs.*\(differs in: lr\)"):
        train_run(tiny, train, config.replace(lr=0.5), tmp_path / "r", progress=False, resume=True)
    with pytest.raises(CheckpointError, match="training data differs"):
        train_run(tiny, synthetic(32, seed=5), config, tmp_path / "r", progress=False, resume=True)
    with pytest.raises(ConfigError, match="already holds a training run; pass --resume"):
        train_run(tiny, train, config, tmp_path / "r", progress=False)


def test_pack_roundtrip_keeps_types_and_bits():
    tensors: dict = {}
    obj = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3)}},
           "param_groups": [{"lr": 0.1 / 3, "betas": (0.9, 0.999), "params": [0], "x": None, "inf": float("inf")}],
           "milestones": Counter({5: 1, 8: 1})}
    skeleton = pack(obj, tensors, "opt")
    back = unpack(json.loads(json.dumps(skeleton)), tensors)
    assert torch.equal(back["state"][0]["exp_avg"], obj["state"][0]["exp_avg"])
    assert torch.equal(back["state"][0]["step"], torch.tensor(3.0))
    assert list(back["state"]) == [0] and back["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["param_groups"][0]["lr"] == 0.1 / 3 and back["param_groups"][0]["inf"] == float("inf")
    assert isinstance(back["milestones"], Counter) and back["milestones"] == Counter({5: 1, 8: 1})
    with pytest.raises(CheckpointError, match="cannot store a object"):
        pack({"f": object()}, {}, "x")
