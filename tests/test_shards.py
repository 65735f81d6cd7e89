"""Sharding, composition (eq. 13), exact removal, retraining, crash recovery, baselines.

Tiny ViTs (tests/conftest.py) and 300 samples of the near task; every shard trains in a
fraction of a second. ``build_sharded`` is shared with the other test_shards*/forget tests.
"""

from __future__ import annotations

import json

import pytest
import torch

from privtangent.errors import PrivtangentError
from privtangent.io.checkpoint import save_checkpoint
from privtangent.io.hashing import tensor_hash
from privtangent.shards import (
    ShardedModel,
    ShardMap,
    SISAEnsemble,
    compose,
    forget,
    make_shard_map,
    model_soup,
    recover,
    task_ref,
    unlearn,
    verify,
)
from privtangent.shards.sharding import checkpoint_name, copy_model, shard_data
from privtangent.tangent import linearize
from privtangent.train import TrainConfig
from privtangent.train.trainer import prepare_model
from tests.conftest import make_tiny_vit

TINY = {"img_size": 28, "patch_size": 7, "in_chans": 1, "embed_dim": 32, "depth": 2, "num_heads": 2, "num_classes": 5}
CONFIG = TrainConfig(epochs=2, reset=True)


def build_sharded(directory, data, cache, num_shards=4, shard_map=None, executor=None, data_ref="default"):
    """A trained, composed sharded model of the tiny ViT on ``data`` (300 near-task samples)."""
    ref = task_ref("fashion-near", "train", 300) if data_ref == "default" else data_ref
    model = ShardedModel.create(directory, make_tiny_vit(), data, CONFIG, num_shards, base_name="vit_tiny_patch16_224",
                                base_kwargs=TINY, data_ref=ref, test_ref=task_ref("fashion-near", "test", 200),
                                shard_map=shard_map)
    model.train(executor=executor, data=data, cache_dir=cache)
    model.build()
    return model


def served_delta(model: ShardedModel) -> dict[str, torch.Tensor]:
    return model.served()[0]


def shard_delta(model: ShardedModel, shard: int, version: int = 0) -> dict[str, torch.Tensor]:
    return model.load_shard(checkpoint_name(shard, version))[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory, near_small):
    root = tmp_path_factory.mktemp("sharded")
    model = build_sharded(root / "model", near_small[0], root / "cache")
    return model, root / "cache"


@pytest.fixture
def fresh(built, tmp_path):
    """A private copy of the built model."""
    model, cache = built
    return copy_model(model.directory, tmp_path / "copy"), cache


# --------------------------------------------------------------------------------------
# composition
# --------------------------------------------------------------------------------------
def test_compose_equals_output_ensemble_float64():
    """Σ λᵢ f_lin(x; Δwᵢ) == f_lin(x; compose(Δw, λ)) to 1e-10 in float64 (paper eq. 13)."""
    base = make_tiny_vit(seed=3).double()
    tm = linearize(base, blocks=1, reset=True, seed=1)
    gen = torch.Generator().manual_seed(0)
    deltas = [{k: 0.3 * torch.randn(v.shape, generator=gen, dtype=torch.float64) for k, v in tm.delta_state_dict().items()}
              for _ in range(5)]
    raw = torch.rand(5, generator=gen, dtype=torch.float64) * 3  # not normalized on purpose
    x = torch.randn(7, 1, 28, 28, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        outputs = []
        for d in deltas:
            tm.load_delta(d)
            outputs.append(tm(x))
        ensemble = sum(w * o for w, o in zip((raw / raw.sum()).tolist(), outputs))
        tm.load_delta(compose(deltas, raw.tolist()))
        composed = tm(x)
    assert composed.dtype == torch.float64
    assert (composed - ensemble).abs().max().item() < 1e-10
    # the outputs really differ between shards, so the identity is not trivial
    assert (outputs[0] - outputs[1]).abs().max().item() > 1e-2


def test_compose_uniform_default_and_dtype():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.0])}
    b = {"w": torch.tensor([3.0, 6.0]), "b": torch.tensor([1.0])}
    out = compose([a, b])
    assert torch.equal(out["w"], torch.tensor([2.0, 4.0])) and torch.equal(out["b"], torch.tensor([0.5]))
    assert out["w"].dtype == torch.float32
    assert torch.equal(compose([a, b], [0, 5])["w"], b["w"])
    assert a["w"].tolist() == [1.0, 2.0]  # inputs untouched


@pytest.mark.parametrize("deltas, weights, message", [
    ([], None, "at least one"),
    ([{"w": torch.zeros(2)}, {"v": torch.zeros(2)}], None, "does not match"),
    ([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}], None, "shape"),
    ([{"w": torch.zeros(2)}, {"w": torch.zeros(2, dtype=torch.float64)}], None, "float64"),
    ([{"w": torch.zeros(2)}, {"w": torch.zeros(2)}], [1.0, -0.5], "non-negative"),
    ([{"w": torch.zeros(2)}, {"w": torch.zeros(2)}], [0.0, 0.0], "sum to 0"),
    ([{"w": torch.zeros(2)}, {"w": torch.zeros(2)}], [1.0], "one weight per dict"),
    ([{"w": torch.zeros(2)}, {"w": torch.zeros(2)}], [1.0, float("nan")], "finite"),
])
def test_compose_rejects_bad_input(deltas, weights, message):
    with pytest.raises(PrivtangentError, match=message):
        compose(deltas, weights)


# --------------------------------------------------------------------------------------
# shard maps
# --------------------------------------------------------------------------------------
def test_shard_map_is_a_seeded_disjoint_partition(near_small, tmp_path):
    data = near_small[0]
    m = make_shard_map(data, 7, seed=5)
    flat = [i for s in m.shards for i in s]
    assert sorted(flat) == sorted(data.ids.tolist()) and len(flat) == len(set(flat))
    assert max(m.sizes) - min(m.sizes) <= 1
    assert m.shards == make_shard_map(data, 7, seed=5).shards
    assert m.shards != make_shard_map(data, 7, seed=6).shards
    # uniform: not just consecutive blocks of the data's order
    assert m.shards[0] != sorted(data.ids.tolist())[: m.sizes[0]]
    for k, ids in enumerate(m.shards):
        assert m.content_sha256[k] == shard_data(data, ids).content_hash()
    m.save(tmp_path / "map.json")
    assert ShardMap.load(tmp_path / "map.json").shards == m.shards
    doc = json.loads((tmp_path / "map.json").read_text())
    doc["shards"][2]["ids"][0] = doc["shards"][3]["ids"][0]
    (tmp_path / "map.json").write_text(json.dumps(doc))
    with pytest.raises(PrivtangentError, match="shard 2"):
        ShardMap.load(tmp_path / "map.json")
    with pytest.raises(PrivtangentError, match="not in this model"):
        m.locate([int(data.ids[0]), 10**12])
    with pytest.raises(PrivtangentError):
        make_shard_map(data, len(data) + 1)


def test_shards_share_the_linearization_point(built):
    """Every shard is trained from the same head/reset (same seed): the composition is meaningful."""
    model, _ = built
    manifests = [model.load_shard(checkpoint_name(k, 0))[1] for k in range(model.num_shards)]
    assert len({m["config_sha256"] for m in manifests}) == 1
    a = prepare_model(model.load_base(), 5, model.config).anchor_state_dict()
    b = prepare_model(model.load_base(), 5, model.config).anchor_state_dict()
    assert tensor_hash(a) == tensor_hash(b)
    deltas = [shard_delta(model, k) for k in range(model.num_shards)]
    assert tensor_hash(served_delta(model)) == tensor_hash(compose(deltas))
    assert tensor_hash(deltas[0]) != tensor_hash(deltas[1])


# --------------------------------------------------------------------------------------
# unlearning
# --------------------------------------------------------------------------------------
def test_remove_is_bit_identical_to_composing_the_others(fresh):
    model, cache = fresh
    before = {k: shard_delta(model, k) for k in range(4)}
    target = model.shard_map.shards[2][:3]
    result = forget(model, target, "remove", cache_dir=cache)
    assert result.shards_removed == [2] and result.shards_retrained == [] and result.active_shards == 3
    after = served_delta(model)
    scratch = compose([before[k] for k in (0, 1, 3)])
    for name in scratch:
        assert torch.equal(after[name], scratch[name]), name
    # subtracting the shard from the average is *not* bit-identical: that is why we recompose
    full = compose([before[k] for k in range(4)])
    subtracted = {n: (4 * full[n] - before[2][n]) / 3 for n in full}
    assert any(not torch.equal(subtracted[n], scratch[n]) for n in full)
    # the removed shard's weights are gone from the directory
    assert not any(p.name.startswith("shard-0002") for p in model.shards_dir.iterdir())
    assert verify(model).ok


def test_retrain_equals_training_from_the_start_without_the_ids(fresh, near_small, tmp_path):
    model, cache = fresh
    data = near_small[0]
    untouched_before = shard_delta(model, 0)
    target = model.shard_map.shards[1][:4] + model.shard_map.shards[3][-2:]
    result = forget(model, target, "retrain", data=data, cache_dir=cache)
    assert result.shards_retrained == [1, 3] and result.shards_removed == []
    # a second request on a retrained shard must keep excluding the first request's IDs
    second = model.shard_map.shards[1][5:7]
    forget(model, second, "retrain", data=data, cache_dir=cache)
    gone = target + second
    kept = data.select_ids(gone, keep=False)
    reference = build_sharded(tmp_path / "reference", kept, cache, shard_map=model.shard_map.without(gone, data),
                              data_ref=None)
    ours, theirs = served_delta(model), served_delta(reference)
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
    assert torch.equal(shard_delta(model, 0)["head.weight"], untouched_before["head.weight"])
    state = model.served_manifest()["state"]
    assert [e.get("version") for e in state["shards"]] == [0, 2, 0, 1]
    assert verify(model).ok


def test_forget_refuses_unknown_repeated_and_emptying_requests(fresh):
    model, cache = fresh
    served = model.served_manifest()["sha256"]
    lines = model.ledger.path.read_bytes()
    with pytest.raises(unlearn.ForgetError, match="not in this model's training data"):
        forget(model, [model.shard_map.shards[0][0], 10**12], "remove")
    forget(model, model.shard_map.shards[0][:2], "remove", cache_dir=cache)
    with pytest.raises(unlearn.AlreadyForgottenError, match="already forgotten"):
        forget(model, [model.shard_map.shards[0][0]], "retrain")
    with pytest.raises(unlearn.AlreadyForgottenError, match="already removed"):
        forget(model, [model.shard_map.shards[0][5]], "remove")
    three = [model.shard_map.shards[k][0] for k in (1, 2, 3)]
    after_one = model.served_manifest()["sha256"]
    ledger_one = model.ledger.path.read_bytes()
    with pytest.raises(unlearn.WouldEmptyError, match="empty model"):
        forget(model, three, "remove")
    with pytest.raises(unlearn.ForgetError, match="no sample IDs"):
        forget(model, [], "remove")
    # refused requests change nothing
    assert model.served_manifest()["sha256"] == after_one != served
    assert model.ledger.path.read_bytes() == ledger_one and len(ledger_one) > len(lines)
    assert not (model.directory / "pending.json").exists()


def test_retrain_of_a_fully_forgotten_shard_removes_it(fresh, near_small):
    model, cache = fresh
    result = forget(model, model.shard_map.shards[2], "retrain", data=near_small[0], cache_dir=cache)
    assert result.shards_removed == [2] and result.shards_retrained == []
    assert verify(model).ok


# --------------------------------------------------------------------------------------
# crashes, simulated in-process (a real SIGKILL is in test_forget_cli.py)
# --------------------------------------------------------------------------------------
class SimulatedCrash(BaseException):
    """Stops the request where a kill would: nothing after the fault point runs."""


def _crash_at(monkeypatch, point):
    def fault(name):
        if name == point:
            raise SimulatedCrash(name)
    monkeypatch.setattr(unlearn, "fault", fault)


@pytest.mark.parametrize("point, mode, switched", [
    ("after-begin", "remove", False),
    ("after-train", "retrain", False),
    ("after-switch", "retrain", True),
    ("after-gc", "remove", True),
])
def test_a_crash_leaves_old_or_new_and_recovery_finishes_the_request(fresh, near_small, tmp_path, monkeypatch,
                                                                     point, mode, switched):
    model, cache = fresh
    data = near_small[0]
    target = model.shard_map.shards[1][:3]
    twin = copy_model(model.directory, tmp_path / "twin")
    forget(twin, target, mode, data=data, cache_dir=cache)  # the same request, uninterrupted
    expected = tensor_hash(served_delta(twin))
    old = tensor_hash(served_delta(model))
    _crash_at(monkeypatch, point)
    with pytest.raises(SimulatedCrash):
        forget(model, target, mode, data=data, cache_dir=cache)
    monkeypatch.setattr(unlearn, "fault", lambda name: None)
    now = tensor_hash(served_delta(model))  # loads and sha256-checks the served checkpoint
    assert now == (expected if switched else old)
    assert model.ledger.verify().ok
    report = verify(model)
    assert not report.ok and report.info.get("pending_request") == 1
    done = recover(model, data=data, cache_dir=cache)
    assert done and ("completed" in done[0] if switched else "replayed" in done[0])
    assert tensor_hash(served_delta(model)) == expected
    records = model.ledger.records()
    assert [r["type"] for r in records] == ["create", "begin", "commit"]
    assert records[2]["recovered"] == ("completed" if switched else "replayed")
    assert verify(model).ok
    assert recover(model) == []  # nothing left to do
    assert not (model.directory / "pending.json").exists()


def test_rollback_before_the_switch_and_unstarted_requests(fresh, near_small, monkeypatch):
    model, cache = fresh
    old = model.served_manifest()["sha256"]
    _crash_at(monkeypatch, "after-train")
    with pytest.raises(SimulatedCrash):
        forget(model, model.shard_map.shards[0][:2], "retrain", data=near_small[0], cache_dir=cache)
    monkeypatch.setattr(unlearn, "fault", lambda name: None)
    assert any("-r0001" in p.name for p in model.shards_dir.iterdir())  # the new shard, never served
    done = recover(model, rollback=True)
    assert "rolled back" in done[0]
    assert model.served_manifest()["sha256"] == old
    assert not any("-r0001" in p.name for p in model.shards_dir.iterdir())
    assert [r["type"] for r in model.ledger.records()] == ["create", "begin", "abort"]
    assert verify(model).ok
    # a pending file without a begin record is a request that never started
    (model.directory / "pending.json").write_text(json.dumps({"request": 2, "ids": [1]}))
    assert "never started" in recover(model)[0]
    result = forget(model, model.shard_map.shards[0][:2], "remove", cache_dir=cache)
    assert result.request == 2
    assert verify(model).ok


# --------------------------------------------------------------------------------------
# verify catches what the ledger chain alone cannot
# --------------------------------------------------------------------------------------
def test_verify_detects_a_swapped_model_stale_weights_and_edited_ids(fresh):
    model, cache = fresh
    forget(model, model.shard_map.shards[3][:2], "remove", cache_dir=cache)
    assert verify(model).ok
    work = copy_model(model.directory, model.directory.parent / "w1")
    # 1. the served model replaced by one that still contains the removed shard
    state = work.served_manifest()["state"]
    deltas = [shard_delta(work, k) for k in (0, 1, 2)] + [shard_delta(work, 0)]
    save_checkpoint(work.directory, compose(deltas), {"kind": "composed-tangent-delta", "state": state}, name="model")
    assert "replaced outside privtangent" in " ".join(verify(work).problems)
    # 2. weights of a dropped shard left in the directory
    work2 = copy_model(model.directory, model.directory.parent / "w2")
    (work2.shards_dir / "shard-0003-aaaaaaaaaaaa.safetensors").write_bytes(b"old weights")
    assert "dropped or superseded" in " ".join(verify(work2).problems)
    # 3. the forgotten IDs in model.json edited (the commitment no longer opens)
    work3 = copy_model(model.directory, model.directory.parent / "w3")
    manifest = json.loads((work3.directory / "model.json").read_text())
    manifest["state"]["requests"][0]["ids"][0] += 1
    (work3.directory / "model.json").write_text(json.dumps(manifest))
    assert "commitment" in " ".join(verify(work3).problems)
    # 4. a ledger line edited
    work4 = copy_model(model.directory, model.directory.parent / "w4")
    lines = work4.ledger.path.read_text().splitlines()
    lines[1] = lines[1].replace('"num_ids":2', '"num_ids":1')
    work4.ledger.path.write_text("\n".join(lines) + "\n")
    assert any("line 2" in p for p in verify(work4).problems)


# --------------------------------------------------------------------------------------
# baselines
# --------------------------------------------------------------------------------------
def _outputs(model, states, features):
    out = []
    with torch.no_grad():
        for s in states:
            model.load_trainable(s)
            out.append(model.forward_features(features))
    return out


def test_soup_is_not_the_ensemble_but_tangent_composition_is(near_small):
    base = make_tiny_vit(seed=1)
    nl = prepare_model(base, 5, CONFIG.replace(tangent=False))
    tm = prepare_model(base, 5, CONFIG)
    gen = torch.Generator().manual_seed(0)
    x = near_small[1].images[:16]
    features = nl.prefix(x)
    states = [{k: v + 0.5 * torch.randn(v.shape, generator=gen) for k, v in nl.trainable_state_dict().items()}
              for _ in range(3)]
    sisa = SISAEnsemble(nl, dict(enumerate(states)))
    ensemble = sisa.logits(features)
    manual = torch.stack(_outputs(nl, states, features)).mean(0)
    assert torch.allclose(ensemble, manual, atol=1e-6)
    soup = model_soup(states)
    assert (_outputs(nl, [soup], features)[0] - ensemble).abs().max().item() > 1e-3
    deltas = [{k: 0.5 * torch.randn(v.shape, generator=gen) for k, v in tm.trainable_state_dict().items()} for _ in range(3)]
    tangent_ensemble = torch.stack(_outputs(tm, deltas, features)).mean(0)
    composed = _outputs(tm, [compose(deltas)], features)[0]
    assert (composed - tangent_ensemble).abs().max().item() < 1e-4
    # SISA forgetting: dropping a shard's model, voting
    assert sisa.remove([1]).shards == [0, 2]
    votes = SISAEnsemble(nl, dict(enumerate(states)), aggregate="vote").logits(features)
    assert votes.shape == ensemble.shape
    with pytest.raises(PrivtangentError):
        sisa.remove([0, 1, 2])
