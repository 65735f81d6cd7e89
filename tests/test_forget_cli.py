"""``privtangent forget`` / ``privtangent shards``: exit codes, messages, and a real SIGKILL mid-request."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from privtangent.cli.main import main
from privtangent.io.hashing import tensor_hash
from privtangent.shards import ShardedModel, compose, verify
from privtangent.shards.sharding import checkpoint_name, copy_model
from tests.test_shards import build_sharded

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory, near_small):
    root = tmp_path_factory.mktemp("forget-cli")
    return build_sharded(root / "model", near_small[0], root / "cache"), root / "cache"


@pytest.fixture
def model(built, tmp_path):
    source, cache = built
    return copy_model(source.directory, tmp_path / "m"), cache


def forget_cli(model, *args, cache=None):
    argv = ["forget", "--model", str(model.directory), *map(str, args)]
    return main(argv + (["--cache", str(cache)] if cache else []))


def test_forget_and_verify_succeed(model, capsys, tmp_path):
    m, cache = model
    ids = m.shard_map.shards[1][:2]
    f = tmp_path / "ids.txt"
    f.write_text(f"# forget request from a data subject\n{ids[0]}\n\n{ids[1]}  # second\n")
    assert forget_cli(m, "--ids-file", f, cache=cache) == 0
    out = capsys.readouterr().out
    assert "request 1 (remove)" in out and "removed shard(s): 1" in out and "receipt: ids_sha256" in out
    assert main(["shards", "verify", str(m.directory)]) == 0
    assert "OK: 3 ledger records, 1 forget requests committed, 2 IDs forgotten, 3 active shards" in capsys.readouterr().out
    assert main(["shards", "info", str(m.directory), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["removed_shards"] == [1] and info["requests"][0]["num_ids"] == 2


@pytest.mark.parametrize("args, message", [
    (["--ids", "5,10000000"], "not in this model's training data: 5, 10000000"),
    (["--ids", "1,x"], "'x' is not a sample ID"),
    (["--ids", " , "], "no sample IDs given"),
    (["--ids-file", "/nonexistent/ids.txt"], "cannot read it"),
])
def test_bad_requests_exit_2_with_a_clear_message(model, capsys, args, message):
    m, cache = model
    before = m.ledger.path.read_bytes()
    assert forget_cli(m, *args, cache=cache) == 2
    err = capsys.readouterr().err
    assert err.startswith("privtangent: error:") and message in err
    assert m.ledger.path.read_bytes() == before


def test_already_forgotten_and_would_empty_exit_2(model, capsys):
    m, cache = model
    first = m.shard_map.shards[0][:2]
    assert forget_cli(m, "--ids", f"{first[0]},{first[1]}", cache=cache) == 0
    capsys.readouterr()
    assert forget_cli(m, "--ids", str(first[1]), cache=cache) == 2
    assert f"already forgotten: {first[1]} (request 1)" in capsys.readouterr().err
    rest = ",".join(str(m.shard_map.shards[k][0]) for k in (1, 2, 3))
    assert forget_cli(m, "--ids", rest, cache=cache) == 2
    err = capsys.readouterr().err
    assert "would remove every remaining shard (3 active" in err and "empty model" in err
    assert main(["forget", "--model", str(m.directory.parent / "nope"), "--ids", "1"]) == 2
    assert "not a sharded model directory" in capsys.readouterr().err


def test_verify_exits_1_on_a_tampered_ledger(model, capsys):
    m, cache = model
    assert forget_cli(m, "--ids", str(m.shard_map.shards[2][0]), cache=cache) == 0
    rows = m.ledger.path.read_text().splitlines()
    record = json.loads(rows[1])
    record["num_ids"] = 7
    rows[1] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    m.ledger.path.write_text("\n".join(rows) + "\n")
    capsys.readouterr()
    assert main(["shards", "verify", str(m.directory)]) == 1
    out = capsys.readouterr().out
    assert "FAIL: ledger.jsonl line 2: its content does not match its hash" in out and "FAILED" in out
    # and a new request is refused rather than appended to a broken chain
    assert forget_cli(m, "--ids", str(m.shard_map.shards[3][0]), cache=cache) == 2
    assert "fails verification" in capsys.readouterr().err


def _run_forget(directory: Path, cache: Path, ids: list[int], mode: str, fault: str) -> subprocess.Popen:
    env = {**os.environ, "PRIVTANGENT_TEST_FAULT": fault, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "privtangent.cli.main", "forget", "--model", str(directory), "--ids",
           ",".join(map(str, ids)), "--mode", mode, "--cache", str(cache)]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_process_killed_between_begin_and_commit_loses_nothing(model, tmp_path):
    """SIGKILL from outside while a request is open: old model served; the next forget replays it."""
    m, cache = model
    old = m.served_manifest()["sha256"]
    first, second = m.shard_map.shards[2][:3], m.shard_map.shards[0][:1]
    proc = _run_forget(m.directory, cache, first, "remove", "after-begin:sleep")
    deadline = time.monotonic() + 240
    line = ""
    while time.monotonic() < deadline and "FAULT after-begin" not in line:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
    assert "FAULT after-begin" in line, proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    reopened = ShardedModel(m.directory)
    assert reopened.served_manifest()["sha256"] == old  # never a mix: still the old model
    records = reopened.ledger.records()
    assert [r["type"] for r in records] == ["create", "begin"]
    assert main(["shards", "verify", str(m.directory)]) == 1  # an open request is reported
    # the next request first replays the interrupted one
    assert forget_cli(reopened, "--ids", str(second[0]), cache=cache) == 0
    records = reopened.ledger.records()
    assert [(r["type"], r.get("request")) for r in records] == [
        ("create", None), ("begin", 1), ("commit", 1), ("begin", 2), ("commit", 2)]
    assert records[2]["recovered"] == "replayed" and records[2]["before"] == old
    expected = compose([reopened.load_shard(checkpoint_name(k, 0))[0] for k in (1, 3)])
    assert tensor_hash(reopened.served()[0]) == tensor_hash(expected)
    assert verify(reopened).ok


def test_a_process_that_dies_after_the_switch_is_rolled_forward(model, near_small, tmp_path):
    """Killed (SIGKILL) after the new model is served, before the commit: recovery commits it."""
    m, cache = model
    target = m.shard_map.shards[1][:2]
    twin = copy_model(m.directory, tmp_path / "twin")
    proc = _run_forget(m.directory, cache, target, "retrain", "after-switch")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err
    reopened = ShardedModel(m.directory)
    assert reopened.served_manifest()["state"]["request"] == 1  # the new model, complete
    assert [r["type"] for r in reopened.ledger.records()] == ["create", "begin"]
    assert main(["shards", "recover", str(m.directory), "--cache", str(cache)]) == 0
    assert [r["type"] for r in reopened.ledger.records()] == ["create", "begin", "commit"]
    from privtangent.shards import forget

    forget(twin, target, "retrain", data=near_small[0], cache_dir=cache)
    assert tensor_hash(reopened.served()[0]) == tensor_hash(twin.served()[0])
    assert main(["shards", "verify", str(m.directory)]) == 0


def _rows_of(ids: set[int], roots: list[Path]) -> list[str]:
    """Every file under ``roots`` (safetensors with an ``ids`` tensor, CSV with an ``id`` column)
    that holds a row of ``ids`` — scanned independently of the purge code."""
    import csv

    from safetensors import safe_open

    held = []
    for root in roots:
        for path in root.rglob("*"):
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as f:
                    if "ids" in f.keys() and ids & set(f.get_tensor("ids").tolist()):
                        held.append(str(path))
            elif path.suffix == ".csv":
                rows = list(csv.DictReader(path.open()))
                if rows and "id" in rows[0] and ids & {int(r["id"]) for r in rows}:
                    held.append(str(path))
    return held


def test_forget_purges_every_derived_row_and_verify_catches_one_put_back(model, near_small, tmp_path, capsys):
    from privtangent.features import FeatureCache
    from privtangent.shards.sharding import shard_data

    m, cache = model
    ids = m.shard_map.shards[0][:3]
    feature_files = [p for p in cache.rglob("*") if p.is_file()]
    assert feature_files and _rows_of(set(ids), [cache])  # the prefix features of the forgotten samples are cached
    table = m.directory / "predictions.csv"  # a per-sample table someone wrote next to the model
    table.write_text("id,label\n" + "".join(f"{i},0\n" for i in m.shard_map.shards[0][:6]))
    assert forget_cli(m, "--ids", ",".join(map(str, ids)), cache=cache) == 0
    assert _rows_of(set(ids), [cache, m.directory]) == []
    assert len(table.read_text().splitlines()) == 1 + 3  # the other samples' rows are kept
    assert main(["shards", "verify", str(m.directory)]) == 0
    commit = [json.loads(line) for line in (m.directory / "ledger.jsonl").read_text().splitlines()][-1]
    assert any(r["file"] == "predictions.csv" for r in commit["purged"])
    capsys.readouterr()
    # Put one forgotten sample's features back into the cache: verify must notice.
    FeatureCache(cache).features(m.load_base(), m.spec["start_block"], shard_data(near_small[0], ids[:1], "leak"))
    assert _rows_of({ids[0]}, [cache])
    assert main(["shards", "verify", str(m.directory)]) == 1
    assert "still hold data derived from forgotten samples" in capsys.readouterr().out
