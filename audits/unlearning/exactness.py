"""(a) Exactness of a forget request: the served Δw against its shards, the forgotten IDs, the ledger.

The served Δw is recomposed from the stored checkpoints of the active shards
(``privtangent.shards.compose``, their recorded weights) and must be bit-identical to the served
Δw (every tensor ``torch.equal``, same ``tensor_hash``); no active shard may have been trained on
a forgotten ID (shard map minus forgotten IDs vs the recorded trained-ID hash); no checkpoint of
a dropped shard may remain; the ledger's hash chain must verify, and its before/after model hashes
must chain from the model served before the first request to the model served now.
``privtangent.shards.verify`` (deep) is run as well and its findings are listed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

import torch
from torch import Tensor

from privtangent.errors import PrivtangentError
from privtangent.io.checkpoint import load_checkpoint
from privtangent.io.hashing import tensor_hash
from privtangent.shards import ShardedModel, compose, verify
from privtangent.shards.executors import ids_hash
from privtangent.shards.ledger import Ledger


class ExactnessRow(TypedDict, total=False):
    check: str
    status: str  # PASS | FAIL
    detail: str
    recomposed_sha256: str
    served_sha256: str


def _row(check: str, ok: bool, detail: str, **extra: Any) -> ExactnessRow:
    return {"check": check, "status": "PASS" if ok else "FAIL", "detail": detail, **extra}  # type: ignore[typeddict-item]


Active = list[tuple[dict[str, Any], float]]  # (shard entry, weight) of the active shards


def _recomposition_rows(model: ShardedModel, served: dict[str, Tensor], state: dict[str, Any],
                        active: Active) -> list[ExactnessRow]:
    """The served Δw against the composition of the stored Δw of the active shards, and the weights."""
    title = "served Δw = composition of the stored Δw of the active shards"
    try:
        deltas = [load_checkpoint(model.shards_dir, name=e["checkpoint"])[0] for e, _ in active]
        recomposed = compose(deltas, [w for _, w in active])
        equal = set(recomposed) == set(served) and all(torch.equal(recomposed[k], served[k]) for k in served)
        rec_hash, served_hash = tensor_hash(recomposed), tensor_hash(served)
        row = _row(title, equal and rec_hash == served_hash,
                   f"{len(active)} active shard(s) recomposed; tensor sha256 {rec_hash[:16]}… vs served "
                   f"{served_hash[:16]}…", recomposed_sha256=rec_hash, served_sha256=served_hash)
    except (PrivtangentError, OSError, KeyError) as err:
        row = _row(title, False, f"cannot recompose: {err}")
    removed = [e for e in state["shards"] if e["status"] != "active"]
    uniform = bool(active) and all(abs(w - 1.0 / len(active)) < 1e-12 for _, w in active) and \
        all(w == 0 for e, w in zip(state["shards"], state["weights"]) if e["status"] != "active")
    return [row, _row("weights: uniform over active shards, 0 for removed ones", uniform,
                      f"{len(active)} active, {len(removed)} removed")]


def _forgotten_rows(model: ShardedModel, active: Active, forgotten: set[int]) -> list[ExactnessRow]:
    """No active shard saw a forgotten ID; every shard that held one is gone; no stale checkpoint."""
    bad = [e["shard"] for e, _ in active
           if e.get("trained_ids_sha256") != ids_hash([i for i in model.shard_map.shards[e["shard"]] if i not in forgotten])]
    rows = [_row("no active shard was trained on a forgotten ID", not bad,
                 f"{len(forgotten)} forgotten ID(s); " + (f"shards {bad} trained on other IDs than their map minus the "
                                                         "forgotten ones" if bad else "every active shard's trained-ID "
                                                         "hash = its map minus the forgotten IDs"))]
    holders = sorted({model.shard_map.locate([i])[i] for i in forgotten}) if forgotten else []
    still = [k for k in holders if any(e["shard"] == k and e.get("version", 0) == 0 for e, _ in active)]
    rows.append(_row("every shard that held a forgotten ID was removed or retrained", not still,
                     f"shards holding forgotten IDs: {holders}; still served unchanged: {still}"))
    keep_files = set()
    for e, _ in active:
        m = json.loads((model.shards_dir / f"{e['checkpoint']}.json").read_text())
        keep_files |= {f"{e['checkpoint']}.json", m["weights"]}
    stale = sorted(p.name for p in model.shards_dir.iterdir() if p.name not in keep_files)
    rows.append(_row("no checkpoint of a dropped or superseded shard is left", not stale,
                     f"{len(stale)} stale file(s)" + (f": {', '.join(stale[:4])}" if stale else "")))
    return rows


def _hash_chain(records: list[dict[str, Any]], served_sha256: str,
                before_sha256: str | None) -> tuple[bool, str, list[dict[str, Any]]]:
    """Do the ledger's before/after model hashes chain to the served model? (ok, detail, committed requests)."""
    if not records or records[0].get("type") != "create":
        return False, "the ledger has no 'create' record", []
    ok, detail, last_after, first_before = True, "", records[0].get("after"), None
    requests = []
    for r in records[1:]:
        if r.get("type") == "begin":
            first_before = first_before or r.get("before")
            if r.get("before") != last_after:
                ok, detail = False, (f"request {r.get('request')} starts from {str(r.get('before'))[:12]}…, not the "
                                     f"previously served {str(last_after)[:12]}…")
        elif r.get("type") == "commit":
            last_after = r.get("after")
            requests.append({k: r.get(k) for k in ("request", "mode", "before", "after", "shards_removed",
                                                   "active_shards", "seconds")})
    if last_after != served_sha256:
        ok, detail = False, (f"the served model {served_sha256[:12]}… is not the one the ledger's last record names "
                             f"({str(last_after)[:12]}…)")
    if before_sha256 is not None and first_before is not None and first_before != before_sha256:
        ok, detail = False, (f"the ledger's first request starts from {first_before[:12]}…, not the model served "
                             f"before it ({before_sha256[:12]}…)")
    if ok:
        detail = (f"{len(requests)} request(s): before/after hashes chain from {str(records[0].get('after'))[:12]}… "
                  f"to the served {served_sha256[:12]}…")
    return ok, detail, requests


def exactness_rows(model_dir: str | Path, before_sha256: str | None = None) -> tuple[list[ExactnessRow], dict[str, Any]]:
    """Exactness rows (recomposition, forgotten IDs, stale checkpoints, ledger, verify) and the ledger summary."""
    model = ShardedModel(model_dir)
    served, manifest = model.served()
    state = manifest["state"]
    forgotten = {int(i) for q in state.get("requests", []) for i in q["ids"]}
    active = [(e, w) for e, w in zip(state["shards"], state["weights"]) if e["status"] == "active"]
    rows = _recomposition_rows(model, served, state, active) + _forgotten_rows(model, active, forgotten)
    check = Ledger(model.directory / "ledger.jsonl").verify()
    rows.append(_row("ledger hash chain verifies", check.ok,
                     f"{len(check.records)} record(s), head {check.head[:16]}…" if check.ok else check.problems[0]))
    chain_ok, chain_detail, requests = _hash_chain(check.records, manifest["sha256"], before_sha256)
    rows.append(_row("ledger before/after hashes chain to the served model", chain_ok, chain_detail))
    report = verify(model, deep=True)
    rows.append(_row("privtangent.shards.verify (deep)", report.ok,
                     "no problem found" if report.ok else "; ".join(report.problems[:3])))
    ledger_body = {"records": len(check.records), "head": check.head, "verified": check.ok, "requests": requests,
                   "served_sha256": manifest["sha256"], "active_shards": len(active),
                   "removed_shards": len(state["shards"]) - len(active), "forgotten_ids": len(forgotten)}
    return rows, ledger_body


__all__ = ["ExactnessRow", "exactness_rows"]
