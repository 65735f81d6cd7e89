"""``privtangent shards train``: all at once, or one shard per call (as a Slurm array would), same model."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import save_file

from privtangent.cli.main import main
from privtangent.shards import ShardedModel
from tests.test_shards import TINY, make_tiny_vit


@pytest.fixture(scope="module")
def base_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("base") / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in make_tiny_vit().state_dict().items()}, str(path))
    return path


def train_args(out, base_file, cache, *extra):
    return ["shards", "train", "--out", str(out), "--data", "fashion-near", "--data-limit", "300", "--shards", "3",
            "--epochs", "1", "--reset", "--base-checkpoint", str(base_file), "--base-name", "vit_tiny_patch16_224",
            "--base-kwargs", json.dumps(TINY), "--cache", str(cache), *extra]


def test_one_shard_per_call_gives_the_same_model_as_one_run(base_file, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main(train_args(tmp_path / "all", base_file, cache, "--executor", "serial", "--json")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trained_now"] == [0, 1, 2] and summary["missing"] == []
    assert 0.0 < summary["test_accuracy"] <= 1.0 and summary["num_test"] == 5000
    # the scheduler way: one call per shard, then compose
    split = tmp_path / "split"
    assert main(train_args(split, base_file, cache, "--shard", "2")) == 0
    assert "2 shard(s) still to train" in capsys.readouterr().out
    assert main(["shards", "compose", str(split)]) == 2
    assert "2 of 3 shards are not trained yet (0, 1)" in capsys.readouterr().err
    assert main(["shards", "train", "--out", str(split), "--shard", "0", "--shard", "1", "--cache", str(cache)]) == 0
    assert "compose with: privtangent shards compose" in capsys.readouterr().out
    assert main(["shards", "compose", str(split), "--cache", str(cache)]) == 0
    assert summary["served_model_sha256"] in capsys.readouterr().out
    assert ShardedModel(split).served_manifest()["sha256"] == ShardedModel(tmp_path / "all").served_manifest()["sha256"]
    # a composed model does not take new shard training, and options must match the directory
    assert main(["shards", "train", "--out", str(split), "--shard", "0"]) == 2
    assert "already serves a composed model; shards change only through `privtangent forget`" in capsys.readouterr().err
    assert main(train_args(split, base_file, cache, "--epochs", "2")) == 2
    assert "already exists with other settings: --epochs 2 (created with 1)" in capsys.readouterr().err
    assert main(["shards", "train", "--out", str(split), "--shard", "7"]) == 2
    assert "shard 7 does not exist" in capsys.readouterr().err
    assert main(["shards", "train", "--out", str(tmp_path / "new")]) == 2
    assert "give --data and --shards" in capsys.readouterr().err
