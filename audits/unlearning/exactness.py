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


def exactness_rows(model_dir: str | Path, before_sha256: str | None = None) -> tuple[list[ExactnessRow], dict[str, Any]]:
    """Exactness rows (recomposition, forgotten IDs, stale checkpoints, verify) and the ledger summary."""
    model = ShardedModel(model_dir)
    rows: list[ExactnessRow] = []
    served, manifest = model.served()
    state = manifest["state"]
    requests = state.get("requests", [])
    forgotten = {int(i) for q in requests for i in q["ids"]}
    active = [(e, w) for e, w in zip(state["shards"], state["weights"]) if e["status"] == "active"]
    removed = [e for e in state["shards"] if e["status"] != "active"]
    # recomposition from the stored shard Δw
    try:
        deltas = [load_checkpoint(model.shards_dir, name=e["checkpoint"])[0] for e, _ in active]
        weights = [w for _, w in active]
        recomposed = compose(deltas, weights)
        same_names = set(recomposed) == set(served)
        equal = same_names and all(torch.equal(recomposed[k], served[k]) for k in served)
        rec_hash, served_hash = tensor_hash(recomposed), tensor_hash(served)
        rows.append(_row("served Δw = composition of the stored Δw of the active shards", equal and rec_hash == served_hash,
                         f"{len(active)} active shard(s) recomposed; tensor sha256 {rec_hash[:16]}… vs served {served_hash[:16]}…",
                         recomposed_sha256=rec_hash, served_sha256=served_hash))
    except (PrivtangentError, OSError, KeyError) as err:
        rows.append(_row("served Δw = composition of the stored Δw of the active shards", False,
                         f"cannot recompose: {err}"))
    uniform = bool(active) and all(abs(w - 1.0 / len(active)) < 1e-12 for _, w in active) and \
        all(w == 0 for e, w in zip(state["shards"], state["weights"]) if e["status"] != "active")
    rows.append(_row("weights: uniform over active shards, 0 for removed ones", uniform,
                     f"{len(active)} active, {len(removed)} removed"))
    # forgotten IDs: not in any active shard's training set
    bad = []
    for e, _ in active:
        k = e["shard"]
        kept = [i for i in model.shard_map.shards[k] if i not in forgotten]
        if e.get("trained_ids_sha256") != ids_hash(kept):
            bad.append(k)
    rows.append(_row("no active shard was trained on a forgotten ID", not bad,
                     f"{len(forgotten)} forgotten ID(s); " + (f"shards {bad} trained on other IDs than their map "
                                                             "minus the forgotten ones" if bad else "every active shard's "
                                                             "trained-ID hash = its map minus the forgotten IDs")))
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
    # the ledger
    ledger = Ledger(model.directory / "ledger.jsonl")
    check = ledger.verify()
    rows.append(_row("ledger hash chain verifies", check.ok,
                     f"{len(check.records)} record(s), head {check.head[:16]}…" if check.ok else check.problems[0]))
    chain_ok, chain_detail, last_after = True, "", None
    summary_requests = []
    records = check.records
    if records and records[0].get("type") == "create":
        last_after = records[0].get("after")
        first_before = None
        for r in records[1:]:
            if r.get("type") == "begin":
                first_before = first_before or r.get("before")
                if r.get("before") != last_after:
                    chain_ok, chain_detail = False, f"request {r.get('request')} starts from {str(r.get('before'))[:12]}…, " \
                                                    f"not the previously served {str(last_after)[:12]}…"
            elif r.get("type") == "commit":
                last_after = r.get("after")
                summary_requests.append({"request": r.get("request"), "mode": r.get("mode"), "before": r.get("before"),
                                         "after": r.get("after"), "shards_removed": r.get("shards_removed"),
                                         "active_shards": r.get("active_shards"), "seconds": r.get("seconds")})
        if last_after != manifest["sha256"]:
            chain_ok, chain_detail = False, (f"the served model {manifest['sha256'][:12]}… is not the one the ledger's last "
                                             f"record names ({str(last_after)[:12]}…)")
        if before_sha256 is not None and first_before is not None and first_before != before_sha256:
            chain_ok, chain_detail = False, (f"the ledger's first request starts from {first_before[:12]}…, not the model "
                                             f"served before it ({before_sha256[:12]}…)")
        if chain_ok:
            chain_detail = (f"{len(summary_requests)} request(s): before/after hashes chain from "
                            f"{str(records[0].get('after'))[:12]}… to the served {manifest['sha256'][:12]}…")
    else:
        chain_ok, chain_detail = False, "the ledger has no 'create' record"
    rows.append(_row("ledger before/after hashes chain to the served model", chain_ok, chain_detail))
    report = verify(model, deep=True)
    rows.append(_row("privtangent.shards.verify (deep)", report.ok,
                     "no problem found" if report.ok else "; ".join(report.problems[:3])))
    ledger_body = {"records": len(records), "head": check.head, "verified": check.ok, "requests": summary_requests,
                   "served_sha256": manifest["sha256"], "active_shards": len(active), "removed_shards": len(removed),
                   "forgotten_ids": len(forgotten)}
    return rows, ledger_body


__all__ = ["ExactnessRow", "exactness_rows"]
