"""Forget requests on a sharded tangent model: exact removal or shard retraining, crash-safe.

A request to forget sample IDs is served in one of two modes (paper section 3.3):

- ``remove``: the shards holding the IDs are dropped from the composition. The served Δw is
  recomposed from the remaining shard checkpoints (from scratch, not by subtraction), so it
  is bit-identical to a model composed without those shards. Cost: one weighted sum.
- ``retrain``: the shards holding the IDs are retrained, with the same TrainConfig (same
  seeds) on their samples minus every forgotten ID, then everything is recomposed. The
  result equals a sharded model trained from the start without those IDs.

Either way the checkpoints of the dropped or superseded shards — the only weights that saw
the forgotten samples — are deleted from the directory.

**Crash safety.** A request is applied as

1. ``pending.json`` (the request: IDs, salt, plan) written atomically;
2. a ``begin`` record appended to the ledger (fsync'd);
3. (retrain) new shard checkpoints written under new names, nothing served changes;
4. the new composed model written with ``save_checkpoint``: the atomic replacement of
   ``model.json`` is the single switch from the old served model to the new one;
5. unreferenced checkpoints deleted;
6. a ``commit`` record appended; ``pending.json`` removed.

A crash anywhere leaves ``model.json`` naming either the old or the new model, never a mix.
On the next ``forget`` (or ``privtangent shards recover``) an uncommitted ``begin`` is
finished: rolled forward if the switch happened, otherwise replayed from ``pending.json``
(retraining is deterministic) — or, with ``rollback=True`` and only before the switch,
closed with an ``abort`` record. A pending file with no ``begin`` is a request that never
started; it is discarded.

**What the ledger says about the IDs.** A begin record carries ``ids_sha256``: a salted
commitment sha256("privtangent-forget/1|<salt>|<sorted IDs, comma-separated>") and the
count, never the raw IDs: the ledger can be handed to a reviewer without revealing which
samples were forgotten (sample IDs are small integers, so an unsalted hash could be
inverted by enumeration). The raw IDs and the salt are kept in the served model's manifest
(``model.json`` → state.requests), because the model needs them (an ID forgotten once must
not come back at the next retraining) and so that ``verify`` can open each commitment and
check that no active shard was trained on a forgotten ID. The requester gets the salt as a
receipt and can check the commitment against a copy of the ledger.

Fault injection for tests: with ``PRIVTANGENT_TEST_FAULT=<point>`` the process kills itself
with SIGKILL at that point (``after-begin``, ``after-train``, ``after-switch``,
``after-gc``); with ``<point>:sleep`` it prints ``FAULT <point>`` to stderr and sleeps, to
be killed from outside.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privtangent.data.dataset import LabeledData
from privtangent.errors import CheckpointError, ConfigError, PrivtangentError
from privtangent.io.atomic import atomic_write_json, fsync_dir
from privtangent.io.checkpoint import load_checkpoint, save_checkpoint
from privtangent.io.hashing import sha256_bytes, sha256_file, tensor_hash
from privtangent.shards.executors import ids_hash
from privtangent.shards.ledger import LedgerError
from privtangent.shards.purge import derived_holding, purge_derived
from privtangent.shards.sharding import ShardedModel, UnknownIDsError, checkpoint_name

MODES = ("remove", "retrain")
FAULT_ENV = "PRIVTANGENT_TEST_FAULT"


class ForgetError(PrivtangentError):
    """A forget request that cannot be served as asked (the CLI exits 2)."""


class AlreadyForgottenError(ForgetError):
    pass


class WouldEmptyError(ForgetError):
    pass


def commitment(ids: list[int], salt: str) -> str:
    """The salted commitment to a set of IDs that the ledger records."""
    return sha256_bytes(f"privtangent-forget/1|{salt}|{','.join(str(i) for i in sorted(ids))}".encode())


def fault(point: str) -> None:
    """Test hook: die (or hang) at ``point`` when PRIVTANGENT_TEST_FAULT says so."""
    value = os.environ.get(FAULT_ENV, "")
    if not value:
        return
    name, _, action = value.partition(":")
    if name != point:
        return
    if action == "sleep":
        print(f"FAULT {point}", file=sys.stderr, flush=True)
        time.sleep(600)
    os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def locked(model: ShardedModel):
    """An exclusive lock on the model directory (released by the OS if the process dies)."""
    path = model.directory / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ForgetError(f"another process is changing {model.directory} (it holds {path}); try again when it ends") from None
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------
@dataclass
class ForgetResult:
    request: int
    mode: str
    num_ids: int
    ids_sha256: str
    salt: str
    shards_touched: list[int]
    shards_removed: list[int]
    shards_retrained: list[int]
    active_shards: int
    before: str
    after: str
    seconds: float
    ledger_head: str
    recovered: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def forgotten_ids(state: dict[str, Any]) -> dict[int, int]:
    """Forgotten ID → the request that forgot it."""
    return {int(i): r["request"] for r in state["requests"] for i in r["ids"]}


def parse_ids(values: list[Any]) -> list[int]:
    out = []
    for v in values:
        if isinstance(v, bool):
            raise ForgetError(f"sample IDs are integers; got {v!r}")
        if isinstance(v, int):
            out.append(v)
            continue
        text = str(v).strip()
        try:
            out.append(int(text))
        except ValueError:
            raise ForgetError(f"sample IDs are integers; got {text!r}") from None
    return out


def plan_request(model: ShardedModel, ids: list[int], mode: str, state: dict[str, Any]) -> dict[str, Any]:
    """Validate a request against the served state; raises ForgetError with a clear reason."""
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    ids = sorted(set(parse_ids(list(ids))))
    if not ids:
        raise ForgetError("no sample IDs given")
    try:
        where = model.shard_map.locate(ids)
    except UnknownIDsError as err:
        raise ForgetError(str(err)) from None
    done = forgotten_ids(state)
    already = [i for i in ids if i in done]
    status = {e["shard"]: e for e in state["shards"]}
    in_removed = [i for i in ids if i not in done and status[where[i]]["status"] != "active"]
    if already or in_removed:
        parts = []
        if already:
            parts.append("already forgotten: " + ", ".join(f"{i} (request {done[i]})" for i in already[:10]))
        if in_removed:
            parts.append("in shards that were already removed, so already without influence on the model: "
                         + ", ".join(f"{i} (shard {where[i]}, removed by request {status[where[i]]['request']})"
                                     for i in in_removed[:10]))
        raise AlreadyForgottenError("; ".join(parts) + "; leave them out of the request")
    touched = sorted({where[i] for i in ids})
    active = [e["shard"] for e in state["shards"] if e["status"] == "active"]
    removed: list[int] = []
    retrained: list[int] = []
    if mode == "remove":
        removed = touched
    else:
        forget_set = set(done) | set(ids)
        for k in touched:
            left = [i for i in model.shard_map.shards[k] if i not in forget_set]
            (retrained if left else removed).append(k)
    remaining = [k for k in active if k not in removed]
    if not remaining:
        raise WouldEmptyError(
            f"this request would remove every remaining shard ({len(active)} active: "
            f"{', '.join(map(str, active[:10]))}), leaving an empty model; "
            + ("retrain the affected shards instead (--mode retrain), or " if mode == "remove" else "")
            + "train a new model without these samples"
        )
    return {"ids": ids, "mode": mode, "touched": touched, "removed": removed, "retrained": retrained}


# --------------------------------------------------------------------------------------
# applying
# --------------------------------------------------------------------------------------
def _begin_record(model: ShardedModel, request: int) -> dict[str, Any]:
    for r in reversed(model.ledger.records()):
        if r["type"] == "begin" and r["request"] == request:
            return r
    raise LedgerError(f"the ledger has no begin record for request {request}")


def _next_state(model: ShardedModel, state: dict[str, Any], pending: dict[str, Any],
                new_shards: dict[int, dict[str, Any]]) -> dict[str, Any]:
    request = pending["request"]
    begin = _begin_record(model, request)
    entries = []
    for e in state["shards"]:
        k = e["shard"]
        if k in pending["removed"]:
            entries.append({"shard": k, "status": "removed", "request": request})
        elif k in new_shards:
            entries.append(new_shards[k])
        else:
            entries.append(dict(e))
    active = [e for e in entries if e["status"] == "active"]
    weights = [1.0 / len(active) if e["status"] == "active" else 0.0 for e in entries]
    requests = list(state["requests"]) + [{
        "request": request, "mode": pending["mode"], "ids": pending["ids"], "salt": pending["salt"],
        "ids_sha256": pending["ids_sha256"], "shards": pending["touched"],
        "removed": pending["removed"], "retrained": pending["retrained"],
    }]
    return {"request": request, "ledger": {"seq": begin["seq"], "hash": begin["hash"]}, "shards": entries, "weights": weights,
            "requests": requests}


def _apply(model: ShardedModel, pending: dict[str, Any], data: LabeledData | None, executor,
           cache_dir: str | os.PathLike | None) -> None:
    """Steps 3–5 of a request (idempotent: replaying them gives the same files)."""
    fault("after-begin")
    state = model.served_manifest()["state"]
    new_shards: dict[int, dict[str, Any]] = {}
    if pending["retrained"]:
        data = model.load_data(data)
        drop = set(forgotten_ids(state)) | set(pending["ids"])
        jobs = model.jobs(pending["retrained"], data, pending["request"], exclude=drop, cache_dir=cache_dir)
        for out in model.run_jobs(jobs, data, executor):
            name = checkpoint_name(out.shard, out.version)
            _, shard_manifest = model.load_shard(name)
            new_shards[out.shard] = {"shard": out.shard, "status": "active", "checkpoint": name,
                                     "version": out.version, "sha256": shard_manifest["sha256"],
                                     "num_samples": out.num_samples, "trained_ids_sha256": out.ids_sha256}
    fault("after-train")
    new_state = _next_state(model, state, pending, new_shards)
    composed = model.compose_state(new_state)
    save_checkpoint(model.directory, composed, {"kind": "composed-tangent-delta", "state": new_state}, name="model")
    fault("after-switch")
    collect_garbage(model)
    fault("after-gc")


def referenced_files(model: ShardedModel, state: dict[str, Any]) -> set[str]:
    names = set()
    for e in state["shards"]:
        if e["status"] == "active":  # save_checkpoint names the tensor file <name>-<sha12>.safetensors
            names |= {f"{e['checkpoint']}.json", f"{e['checkpoint']}-{e['sha256'][:12]}.safetensors"}
    return names


def collect_garbage(model: ShardedModel) -> list[str]:
    """Delete shard checkpoints the served model does not use (dropped or superseded shards)."""
    manifest = model.served_manifest()
    keep = referenced_files(model, manifest["state"])
    deleted = []
    for path in sorted(model.shards_dir.iterdir()):
        if path.name not in keep:
            path.unlink()
            deleted.append(path.name)
    for path in model.directory.glob("model-*.safetensors"):
        if path.name != manifest["weights"]:
            path.unlink()
            deleted.append(path.name)
    for path in model.directory.glob(".*.tmp"):
        path.unlink()
    if deleted:
        fsync_dir(model.shards_dir)
    return deleted



def _commit(model: ShardedModel, pending: dict[str, Any], seconds: float, recovered: str | None = None) -> dict[str, Any]:
    manifest = model.served_manifest()
    state = manifest["state"]
    retrained = [{"shard": e["shard"], "checkpoint": e["checkpoint"], "sha256": e["sha256"],
                  "num_samples": e["num_samples"], "trained_ids_sha256": e["trained_ids_sha256"]}
                 for e in state["shards"] if e["shard"] in pending["retrained"]]
    fields = {"request": pending["request"], "mode": pending["mode"], "before": pending["before"],
              "after": manifest["sha256"], "shards_removed": pending["removed"], "shards_retrained": retrained,
              "active_shards": sum(e["status"] == "active" for e in state["shards"]),
              "seconds": round(seconds, 6)}
    if recovered:
        fields["recovered"] = recovered
    # every commit (a request, or one finished by recovery) purges what was derived from the
    # forgotten samples; idempotent, so a replay purges only what is still there
    purged = purge_derived(model.directory, forgotten_ids(state))
    fields["purged"] = [{"file": Path(str(r["path"])).name, "what": r["what"], "action": r["action"]}
                        for r in purged]  # names only: the ledger reveals no ID
    record = model.ledger.append("commit", **fields)
    (model.directory / "pending.json").unlink(missing_ok=True)
    return record


def forget(model: ShardedModel | str | os.PathLike, ids: list[int], mode: str = "remove", *,
           data: LabeledData | None = None, executor=None, cache_dir: str | os.PathLike | None = None,
           ) -> ForgetResult:
    """Serve one forget request (see the module docstring); returns what was done.

    Raises ``ForgetError`` (unknown IDs, already forgotten, would empty the model) before
    anything is written.
    """
    model = model if isinstance(model, ShardedModel) else ShardedModel(model)
    start = time.perf_counter()
    with locked(model):
        recovered = _recover_locked(model, data, executor, cache_dir, rollback=False)
        manifest = model.served_manifest()
        if sha256_file(model.directory / os.path.basename(manifest["weights"])) != manifest["sha256"]:
            raise CheckpointError(f"{model.directory}: the served model's weights do not match model.json (modified?)")
        state = manifest["state"]
        plan = plan_request(model, ids, mode, state)
        records = model.ledger.records()
        request = 1 + max((r["request"] for r in records if r["type"] == "begin"), default=0)
        salt = secrets.token_hex(16)
        pending = {**plan, "request": request, "salt": salt, "ids_sha256": commitment(plan["ids"], salt),
                   "before": manifest["sha256"]}
        atomic_write_json(model.directory / "pending.json", pending)
        model.ledger.append(
            "begin", request=request, mode=mode, num_ids=len(plan["ids"]), ids_sha256=pending["ids_sha256"],
            shards=plan["touched"], shards_removed=plan["removed"], shards_retrained=plan["retrained"],
            before=manifest["sha256"],
        )
        _apply(model, pending, data, executor, cache_dir)
        commit = _commit(model, pending, time.perf_counter() - start)
    return ForgetResult(
        request=request, mode=mode, num_ids=len(plan["ids"]), ids_sha256=pending["ids_sha256"], salt=salt,
        shards_touched=plan["touched"], shards_removed=plan["removed"], shards_retrained=plan["retrained"],
        active_shards=commit["active_shards"], before=commit["before"], after=commit["after"],
        seconds=time.perf_counter() - start, ledger_head=model.ledger.head(), recovered=recovered,
    )


# --------------------------------------------------------------------------------------
# recovery
# --------------------------------------------------------------------------------------
def open_request(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last ``begin`` record that has no ``commit``/``abort``, if any."""
    closed = {r["request"] for r in records if r["type"] in ("commit", "abort")}
    begins = [r for r in records if r["type"] == "begin" and r["request"] not in closed]
    return begins[-1] if begins else None


def recover(model: ShardedModel | str | os.PathLike, *, data: LabeledData | None = None, executor=None,
            cache_dir: str | os.PathLike | None = None, rollback: bool = False) -> list[str]:
    """Finish (or, before its switch and with ``rollback``, abort) an interrupted request."""
    model = model if isinstance(model, ShardedModel) else ShardedModel(model)
    with locked(model):
        return _recover_locked(model, data, executor, cache_dir, rollback)


def _recover_locked(model: ShardedModel, data, executor, cache_dir, rollback: bool) -> list[str]:
    done: list[str] = []
    if model.ledger.repair_torn_tail():
        done.append("cut off an incomplete last ledger line (a write interrupted by a crash)")
    records = model.ledger.records()
    if not records:
        raise PrivtangentError(f"{model.directory} has no composed model yet (its ledger is empty): "
                               "run `privtangent shards train` (or `shards compose`) first")
    pending_path = model.directory / "pending.json"
    pending = json.loads(pending_path.read_text()) if pending_path.exists() else None
    begin = open_request(records)
    if begin is None:
        if pending is not None:
            pending_path.unlink()
            collect_garbage(model)
            done.append(f"discarded request {pending.get('request')}: it was never started (no begin record)")
        return done
    request = begin["request"]
    if pending is None or pending.get("request") != request:
        raise LedgerError(
            f"request {request} began but never committed, and pending.json (needed to finish it) is "
            f"{'missing' if pending is None else 'for another request'}; the directory was altered"
        )
    if (commitment(pending["ids"], pending["salt"]) != begin["ids_sha256"] or pending["mode"] != begin["mode"]
            or pending["removed"] != begin["shards_removed"] or pending["retrained"] != begin["shards_retrained"]):
        raise LedgerError(f"pending.json does not match the ledger's begin record of request {request} (altered)")
    start = time.perf_counter()
    state = model.served_manifest()["state"]
    if state["request"] == request:
        collect_garbage(model)
        _commit(model, pending, time.perf_counter() - start, recovered="completed")
        done.append(f"completed request {request}: its new model was already served; committed it")
    elif rollback:
        model.ledger.append("abort", request=request, reason="rolled back after an interruption", before=pending["before"])
        pending_path.unlink()
        collect_garbage(model)
        done.append(f"rolled back request {request}: the served model never changed")
    else:
        _apply(model, pending, data, executor, cache_dir)
        _commit(model, pending, time.perf_counter() - start, recovered="replayed")
        done.append(f"replayed request {request} after an interruption and committed it")
    return done


# --------------------------------------------------------------------------------------
# verification
# --------------------------------------------------------------------------------------
@dataclass
class VerifyReport:
    problems: list[str]
    info: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.problems


def _create_problems(model: ShardedModel, records: list[dict[str, Any]]) -> list[str]:
    """One ``create`` record first; the shard map and spec are the ones it recorded."""
    problems = []
    if records[0].get("type") != "create":
        problems.append("the ledger's first record is not a 'create' record")
    if sum(r.get("type") == "create" for r in records) > 1:
        problems.append("the ledger has more than one 'create' record")
    for label, path, key in (("shard_map.json", model.directory / "shard_map.json", "shard_map_sha256"),
                             ("sharded.json", model.directory / "sharded.json", "spec_sha256")):
        if records[0].get(key) != sha256_file(path):
            problems.append(f"{label} differs from the one the ledger recorded at creation")
    return problems


def _request_problems(records: list[dict[str, Any]], info: dict[str, Any]) -> tuple[list[str], dict[int, Any], list[int]]:
    """``begin``/``commit`` (or ``abort``) pairs in order, their model hashes chaining; (problems, begins, committed)."""
    problems: list[str] = []
    last_after = records[0].get("after")
    begins: dict[int, dict[str, Any]] = {}
    committed: list[int] = []
    i = 1
    while i < len(records):
        r = records[i]
        if r.get("type") != "begin":
            problems.append(f"ledger line {i + 1}: a {r.get('type')!r} record without a preceding 'begin'")
            i += 1
            continue
        req: Any = r.get("request")  # as the ledger wrote it: 1, 2, … in a valid ledger (checked next)
        begins[req] = r
        if req != len(begins):
            problems.append(f"ledger line {i + 1}: request number {req}, expected {len(begins)}")
        if r.get("before") != last_after:
            problems.append(f"ledger line {i + 1}: request {req} starts from model {str(r.get('before'))[:12]}…, "
                            f"but the previous served model was {str(last_after)[:12]}…")
        if i + 1 >= len(records):
            problems.append(f"request {req} began but was never committed (interrupted): run "
                            "`privtangent shards recover DIR`")
            info["pending_request"] = req
            break
        end = records[i + 1]
        if end.get("type") not in ("commit", "abort") or end.get("request") != req:
            problems.append(f"ledger line {i + 2}: expected the commit or abort of request {req}")
        elif end["type"] == "commit":
            if end.get("before") != r.get("before") or end.get("mode") != r.get("mode"):
                problems.append(f"ledger line {i + 2}: the commit of request {req} does not match its begin")
            last_after = end.get("after")
            committed.append(req)
        i += 2
    info.update({"requests_committed": len(committed), "last_committed_model": last_after})
    return problems, begins, committed


def _served_problems(manifest: dict[str, Any], info: dict[str, Any], begins: dict[int, Any],
                     committed: list[int]) -> list[str]:
    """The served model is the one the ledger's last commit names, and refers to its record."""
    problems = []
    state = manifest["state"]
    if manifest["sha256"] != info["last_committed_model"] and "pending_request" not in info:
        problems.append(f"the served model ({manifest['sha256'][:12]}…) is not the one the ledger's last entry "
                        f"records ({str(info['last_committed_model'])[:12]}…): it was replaced outside privtangent")
    served_request = state.get("request", 0)
    if served_request not in (committed[-1] if committed else 0, info.get("pending_request")):
        problems.append(f"the served model says it results from request {served_request}, the ledger's last commit "
                        f"is {committed[-1] if committed else 0}")
    if state.get("ledger") and state["request"] in begins:
        if state["ledger"].get("hash") != begins[state["request"]].get("hash"):
            problems.append("the served model's reference to its ledger record does not match the ledger")
    return problems


def _forgotten_problems(model: ShardedModel, state: dict[str, Any], begins: dict[int, Any], committed: list[int],
                        info: dict[str, Any]) -> tuple[list[str], set[int]]:
    """Every commitment opens; no active shard was trained on a forgotten ID; its checkpoint is the recorded one."""
    problems: list[str] = []
    forgotten: set[int] = set()
    state_requests = {q["request"]: q for q in state.get("requests", [])}
    for req in committed:
        q = state_requests.get(req)
        if q is None:
            problems.append(f"request {req} is in the ledger but not in the served model's record")
            continue
        if commitment(q["ids"], q["salt"]) != begins[req].get("ids_sha256") or len(q["ids"]) != begins[req].get("num_ids"):
            problems.append(f"request {req}: the IDs recorded in model.json do not open the ledger's commitment")
        forgotten |= {int(x) for x in q["ids"]}
    extra = sorted(set(state_requests) - set(committed) - {info.get("pending_request")})
    if extra:
        problems.append(f"model.json records requests {extra} that the ledger never committed")
    active = [e for e in state["shards"] if e["status"] == "active"]
    info.update({"forgotten_ids": len(forgotten), "active_shards": len(active)})
    for e in active:
        k = e["shard"]
        if e.get("trained_ids_sha256") != ids_hash([x for x in model.shard_map.shards[k] if x not in forgotten]):
            problems.append(f"shard {k} ({e['checkpoint']}) was trained on a set of IDs that does not exclude "
                            f"every forgotten ID (or the record was edited)")
        path = model.shards_dir / f"{e['checkpoint']}.json"
        if not path.exists():
            problems.append(f"shard {k}: its checkpoint {e['checkpoint']} is missing")
            continue
        shard_manifest = json.loads(path.read_text())
        if (shard_manifest.get("sha256") != e.get("sha256")
                or shard_manifest.get("trained_ids_sha256") != e.get("trained_ids_sha256")):
            problems.append(f"shard {k}: checkpoint {e['checkpoint']} is not the one the served model was composed of")
    return problems, forgotten


def _base_problems(model: ShardedModel) -> list[str]:
    """The base model's checkpoint, read from disk again: its file's sha256 (``base.json``) and its
    tensors' hash (recorded in ``sharded.json`` at creation)."""
    try:
        state, _ = load_checkpoint(model.directory, name="base")
    except (CheckpointError, PrivtangentError) as err:
        return [f"the base model: {err}"]
    if tensor_hash(state) != model.spec["base"]["tensor_sha256"]:
        return ["the base model's weights are not the ones recorded when the sharded model was created"]
    return []


def _stale_problems(model: ShardedModel, state: dict[str, Any], info: dict[str, Any]) -> list[str]:
    try:
        keep = referenced_files(model, state)
        stale = sorted(p.name for p in model.shards_dir.iterdir() if p.name not in keep)
    except (OSError, KeyError, json.JSONDecodeError) as err:
        return [f"cannot list the shard checkpoints: {err}"]
    if stale and "pending_request" not in info:
        return [f"{len(stale)} files of dropped or superseded shards are still in {model.shards_dir} "
                f"({', '.join(stale[:4])}): weights that saw forgotten data must be deleted"]
    return []


def verify(model: ShardedModel | str | os.PathLike, head: str | None = None, deep: bool = True) -> VerifyReport:
    """Check the ledger and that the served model is exactly what the ledger says.

    - the hash chain (edited, removed, inserted, reordered lines; a published ``head``);
    - the records' order: one ``create``, then ``begin``/``commit`` (or ``abort``) pairs;
    - the served model's sha256 equals the last commit's ``after``, and each request's
      ``before`` equals the previous ``after``;
    - every forgotten-ID commitment opens with the IDs and salt in ``model.json``;
    - no active shard was trained on a forgotten ID (its trained-ID hash is recomputed from
      the shard map minus the forgotten IDs);
    - no checkpoint of a dropped or superseded shard is left in the directory;
    - the base model's checkpoint is the one recorded at creation (its sha256);
    - (``deep``) every checkpoint's sha256, and the served Δw equals the composition of the
      active shards, bit for bit.
    """
    model = model if isinstance(model, ShardedModel) else ShardedModel(model)
    check = model.ledger.verify(head=head)
    problems = list(check.problems)
    records = check.records
    info: dict[str, Any] = {"ledger_records": len(records), "ledger_head": check.head}
    if not records:
        return VerifyReport(problems + ["the ledger is empty: no composed model was ever served"], info)
    problems += _create_problems(model, records)
    found, begins, committed = _request_problems(records, info)
    problems += found
    problems += _base_problems(model)
    try:
        served, manifest = model.served() if deep else (None, model.served_manifest())
    except (CheckpointError, PrivtangentError) as err:
        return VerifyReport(problems + [f"the served model: {err}"], info)
    info["served_model"] = manifest["sha256"]
    problems += _served_problems(manifest, info, begins, committed)
    found, forgotten = _forgotten_problems(model, manifest["state"], begins, committed, info)
    problems += found + _stale_problems(model, manifest["state"], info)
    held = derived_holding(model.directory, forgotten) if forgotten else []
    if held:
        problems.append(f"{len(held)} file(s) still hold data derived from forgotten samples (prefix features, "
                        f"cached signals or predictions): {', '.join(held[:3])}; `privtangent forget` purges them")
    if served is not None and not problems:  # deep: the served Δw was loaded
        try:
            recomposed = model.compose_state(manifest["state"])
        except (CheckpointError, PrivtangentError) as err:
            problems.append(f"cannot recompose the served model: {err}")
        else:
            if tensor_hash(recomposed) != tensor_hash(served):
                problems.append("the served Δw is not the composition of its active shards")
    return VerifyReport(problems, info)


__all__ = ["AlreadyForgottenError", "ForgetError", "ForgetResult", "MODES", "VerifyReport", "WouldEmptyError",
           "collect_garbage", "commitment", "forget", "recover", "verify"]
