"""The unlearning audit of a sharded tangent model that served forget requests.

Three questions, each answered from what is on disk plus (for the scenario this module builds
itself) the model served before the request:

(a) **Exactness.** The served Δw is recomposed from the stored checkpoints of the active
    shards (``privtangent.shards.compose``, their recorded weights) and must be bit-identical
    to the served Δw (every tensor ``torch.equal``, same ``tensor_hash``); no active shard may
    have been trained on a forgotten ID (shard map minus forgotten IDs vs the recorded
    trained-ID hash); no checkpoint of a dropped shard may remain; the ledger's hash chain
    must verify, and its before/after model hashes must chain from the model served before
    the first request to the model served now. ``privtangent.shards.verify`` (deep) is run as
    well and its findings are listed.
(b) **Membership inference.** The forgotten samples must look like samples the model never
    saw. The scenario plants *canaries* (samples with a wrong label, which a non-private model
    memorizes) in one shard and asks to forget them; other canaries of the same kind are never
    trained on. LiRA (Carlini et al. 2022) with shadow models — sharded models of the same
    configuration, trained on random halves of (training data ∪ never-seen canaries) — scores
    them; AUCs (and TPR at 1 % FPR) of the forgotten canaries against the never-seen ones:

    - *forgotten, before removal*: the **positive control**. The audit must be able to detect
      the canaries in the model that still holds them (one-sided permutation p < α); otherwise
      it says "inconclusive" (SKIP), never PASS.
    - *forgotten, after removal*: must not differ from
    - *never seen*: the permutation null — the AUC and TPR of random sets of the same size drawn
      from forgotten and never-seen canaries together (median and 2.5–97.5 % quantiles).

    After an exact removal the forgotten and never-seen canaries are exchangeable for the
    served model, so the permutation test is exact: PASS unless the AUC (two-sided) or the
    TPR@1%FPR (one-sided) differs at level α/2 each — a false-FAIL rate ≤ α. (Checking the
    point estimate against a bootstrap interval of a separate null comparison was measured to
    fail 13 % of honest removals at these sizes; hence the permutation test.)
(c) **Utility.** Accuracy on the retained training samples and on test data, before and after.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from attacks.lira import lira_scores
from attacks.metrics import AttackMetrics, attack_metrics
from audits.shadows import PopulationFeatureCache, limit_threads, membership_masks
from privtangent.data.dataset import LabeledData
from privtangent.errors import ConfigError, PrivtangentError
from privtangent.features import FeatureCache
from privtangent.io.hashing import tensor_hash
from privtangent.train import TrainConfig, fit, predict_logits, prepare_model

__all__ = ["SECTION", "UnlearningScenario", "audit_unlearning", "build_unlearning_scenario", "run_unlearning_audit"]

SECTION = "unlearning"
FIXED_VARIANCE_BELOW = 16


@dataclass
class UnlearningScenario:
    """A sharded model that served a forget request, and what the audit needs to know about it.

    ``before_delta`` (the Δw served before the request) is kept in memory only: it is the
    weights that saw the forgotten samples, and it is never written to disk.
    """

    model_dir: Path
    data: LabeledData  # the sharded model's training data (canary labels applied)
    forget_ids: list[int]
    never_seen: LabeledData  # canaries of the same kind, in no shard
    test: LabeledData | None
    config: TrainConfig
    before_delta: dict[str, Tensor] | None
    before_sha256: str | None
    forget: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    build_seconds: float = 0.0
    shadow_cache: dict = field(default_factory=dict, repr=False)  # shadow logits, reused by later audits


def _relabel(data: LabeledData, mask: Tensor, generator: torch.Generator) -> LabeledData:
    labels = data.labels.clone()
    k = int(mask.sum())
    if k:
        shift = torch.randint(1, data.num_classes, (k,), generator=generator)
        labels[mask] = (labels[mask] + shift) % data.num_classes
    return LabeledData(data.images, labels, data.ids, list(data.classes), data.name)


def _concat(a: LabeledData, b: LabeledData, name: str) -> LabeledData:
    return LabeledData(torch.cat([a.images, b.images]), torch.cat([a.labels, b.labels]), torch.cat([a.ids, b.ids]),
                       list(a.classes), name)


def build_unlearning_scenario(
    base: nn.Module | None = None,
    *,
    train: LabeledData | None = None,
    test: LabeledData | None = None,
    run_dir: str | Path,
    base_name: str | None = None,
    base_kwargs: dict[str, Any] | None = None,
    num_shards: int = 2,
    data_size: int = 320,
    num_forget: int = 32,
    num_never_seen: int = 64,
    train_config: TrainConfig | None = None,
    mode: str = "remove",
    seed: int = 0,
    feature_dir: str | Path | None = None,
    progress: bool = False,
) -> UnlearningScenario:
    """Build a sharded model with ``num_forget`` canaries in shard 0, then forget them.

    ``data_size`` training samples are split into ``num_shards`` shards (seeded); the
    canaries are ``num_forget`` samples of shard 0 relabelled with a wrong class;
    ``num_never_seen`` further samples, relabelled the same way, are in no shard. The model is
    written to ``run_dir/sharded-model`` (``ShardedModel``), composed, and a forget request
    for the canaries is served (``privtangent.shards.forget``, ``mode``).
    """
    from privtangent.shards import ShardedModel, SerialExecutor, forget, make_shard_map
    from privtangent.shards.sharding import from_assignment

    start = time.perf_counter()
    for label, value, low in (("number of shards", num_shards, 2), ("data size", data_size, 4),
                              ("number of forgotten samples", num_forget, 2),
                              ("number of never-seen samples", num_never_seen, 4)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{label} must be an integer ≥ {low}, got {value!r}")
    if base is None:
        from privtangent.models import pretrained_base
        from privtangent.models.pretrain import DEFAULT_MODEL

        base, _ = pretrained_base(progress=progress)
        base_name, base_kwargs = DEFAULT_MODEL["name"], dict(DEFAULT_MODEL["kwargs"])
    if base_name is None or base_kwargs is None:
        from privtangent.models.pretrain import DEFAULT_MODEL
        from privtangent.models.vit import build_vit

        base_name, base_kwargs = DEFAULT_MODEL["name"], dict(DEFAULT_MODEL["kwargs"])
        shapes = {k: tuple(v.shape) for k, v in build_vit(base_name, **base_kwargs).state_dict().items()}
        if shapes != {k: tuple(v.shape) for k, v in base.state_dict().items()}:
            raise ConfigError("the base model is not the embedded default's architecture: give base_name and "
                              "base_kwargs (the timm name and kwargs it was built with), so shard workers can rebuild it")
    if train is None or test is None:
        from privtangent.data import load_task

        train = train if train is not None else load_task("fashion-near", "train", limit=max(2000, data_size + num_never_seen))
        test = test if test is not None else load_task("fashion-near", "test", limit=1000)
    if data_size + num_never_seen > len(train):
        raise ConfigError(f"data size {data_size} + never-seen {num_never_seen} exceeds the {len(train)} samples of {train.name}")
    if num_forget > data_size // num_shards:
        raise ConfigError(f"number of forgotten samples ({num_forget}) exceeds shard 0's {data_size // num_shards} samples")
    config = train_config or TrainConfig()
    if not config.tangent:
        raise ConfigError("the unlearning audit composes tangent shards: the training config needs tangent: true")
    generator = torch.Generator().manual_seed(int(seed) + 101)
    order = torch.randperm(len(train), generator=generator)
    plain = train.subset(order[:data_size], f"{train.name} (unlearning audit, {data_size})")
    unseen = train.subset(order[data_size:data_size + num_never_seen], f"{train.name} (never seen)")
    shard_map = make_shard_map(plain, num_shards, seed)
    shard0 = torch.tensor(shard_map.shards[0])
    forget_ids = sorted(shard0[torch.randperm(len(shard0), generator=generator)[:num_forget]].tolist())
    data = _relabel(plain, torch.isin(plain.ids, torch.tensor(forget_ids)), generator)
    never_seen = _relabel(unseen, torch.ones(len(unseen), dtype=torch.bool), generator)
    shard_map = from_assignment(data, shard_map.shards, seed)
    model_dir = Path(run_dir) / "sharded-model"
    if (model_dir / "sharded.json").exists():
        raise ConfigError(f"{model_dir} already holds a sharded model; give an empty run directory")
    feature_dir = str(feature_dir or Path(run_dir) / "features")
    model = ShardedModel.create(model_dir, base, data, config, shard_map=shard_map, base_name=base_name,
                                base_kwargs=base_kwargs, seed=seed,
                                base_info={"purpose": "unlearning audit replica (canaries planted in shard 0)"})
    model.train(executor=SerialExecutor(), data=data, cache_dir=feature_dir, progress=progress)
    model.build()
    before_delta, before_manifest = model.served()
    result = forget(model, forget_ids, mode, data=data, executor=SerialExecutor(), cache_dir=feature_dir)
    return UnlearningScenario(model_dir=model_dir, data=data, forget_ids=forget_ids, never_seen=never_seen, test=test,
                              config=config, before_delta={k: v.clone() for k, v in before_delta.items()},
                              before_sha256=before_manifest["sha256"], forget=result.to_dict(), seed=int(seed),
                              build_seconds=time.perf_counter() - start)


# --------------------------------------------------------------------------------------
# (a) exactness and the ledger
# --------------------------------------------------------------------------------------
def _row(check: str, ok: bool, detail: str, **extra: Any) -> dict[str, Any]:
    return {"check": check, "status": "PASS" if ok else "FAIL", "detail": detail, **extra}


def exactness_rows(model_dir: str | Path, before_sha256: str | None = None) -> tuple[list[dict], dict[str, Any]]:
    """Exactness rows (recomposition, forgotten IDs, stale checkpoints, verify) and the ledger summary."""
    from privtangent.io.checkpoint import load_checkpoint
    from privtangent.shards import ShardedModel, compose, verify
    from privtangent.shards.executors import ids_hash
    from privtangent.shards.ledger import Ledger

    model = ShardedModel(model_dir)
    rows: list[dict[str, Any]] = []
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


# --------------------------------------------------------------------------------------
# (b) membership inference before / after
# --------------------------------------------------------------------------------------
def _sharded_shadow(base: nn.Module, data: LabeledData, config: TrainConfig, num_shards: int, seed: int,
                    cache: FeatureCache) -> dict[str, Tensor]:
    """The sharded procedure on ``data``: seeded split, one ``fit`` per shard, uniform composition."""
    from privtangent.shards import compose, make_shard_map
    from privtangent.shards.sharding import shard_data

    shard_map = make_shard_map(data, min(num_shards, len(data)), seed)
    deltas = [fit(base, shard_data(data, ids), config, cache=cache, progress=False).model.trainable_state_dict()
              for ids in shard_map.shards]
    return compose(deltas)


def _model_with(base: nn.Module, num_classes: int, config: TrainConfig, delta: dict[str, Tensor]) -> nn.Module:
    model = prepare_model(base, num_classes, config)
    model.load_trainable(delta)
    return model.eval()


def _metrics_row(label: str, met: AttackMetrics, n_pos: int, n_neg: int) -> dict[str, Any]:
    tci = (met.tpr_at_fpr_ci or {}).get(0.01, (None, None))
    return {"label": label, "auc": met.auc, "auc_ci_lo": met.auc_ci[0], "auc_ci_hi": met.auc_ci[1],
            "tpr_at_fpr_1pct": met.tpr_at_fpr[0.01], "tpr_at_fpr_1pct_ci_lo": tci[0], "tpr_at_fpr_1pct_ci_hi": tci[1],
            "tpr_at_fpr_0_1pct": met.tpr_at_fpr[0.001], "samples": n_pos, "reference_samples": n_neg}


def permutation_test(pos: np.ndarray, neg: np.ndarray, *, fpr: float = 0.01, n_permutations: int = 2000,
                     seed: int = 0) -> dict[str, Any]:
    """Exact test of "``pos`` and ``neg`` are exchangeable" (the forgotten samples are no different
    from never-seen ones), by relabelling the pooled scores at random.

    Statistics: the AUC of ``pos`` against ``neg`` (Mann–Whitney, ties averaged) and the TPR at
    FPR ≤ ``fpr`` (threshold just above the (⌊fpr·|neg|⌋ + 1)-th largest ``neg`` score).
    p-values count the permutations at least as extreme, plus one (never 0). Also the null
    distribution's median and 2.5 / 97.5 % quantiles: the AUC and TPR that samples the model
    never saw would show against the same reference.
    """
    from scipy.stats import rankdata

    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    pooled = np.concatenate([pos, neg])
    n_pos, n = len(pos), len(pooled)
    ranks = rankdata(pooled)
    allowed = int(math.floor(fpr * len(neg)))

    def stats(is_pos: np.ndarray) -> tuple[float, float]:
        auc = (ranks[is_pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * (n - n_pos))
        negs = np.sort(pooled[~is_pos])[::-1]
        cut = negs[allowed] if allowed < len(negs) else -np.inf
        return float(auc), float(np.mean(pooled[is_pos] > cut))

    observed = np.zeros(n, dtype=bool)
    observed[:n_pos] = True
    auc, tpr = stats(observed)
    rng = np.random.default_rng(seed)
    null = np.array([stats(observed[rng.permutation(n)]) for _ in range(n_permutations)])
    count = lambda x: (1.0 + float(x.sum())) / (1.0 + n_permutations)  # noqa: E731
    p_greater, p_less = count(null[:, 0] >= auc), count(null[:, 0] <= auc)
    return {"auc": auc, "tpr": tpr, "p_auc_greater": p_greater, "p_auc_two_sided": min(1.0, 2 * min(p_greater, p_less)),
            "p_tpr_greater": count(null[:, 1] >= tpr), "null_auc_median": float(np.median(null[:, 0])),
            "null_auc_lo": float(np.quantile(null[:, 0], 0.025)), "null_auc_hi": float(np.quantile(null[:, 0], 0.975)),
            "null_tpr_median": float(np.median(null[:, 1])), "null_tpr_lo": float(np.quantile(null[:, 1], 0.025)),
            "null_tpr_hi": float(np.quantile(null[:, 1], 0.975)), "permutations": n_permutations}


def mia_before_after(scenario: UnlearningScenario, base: nn.Module, *, num_shadows: int = 4,
                     n_bootstrap: int = 500, confidence: float = 0.95, cache: FeatureCache | None = None,
                     progress: bool = False) -> dict[str, Any]:
    """LiRA on the forgotten and never-seen canaries, before and after removal; see the module notes."""
    from privtangent.shards import ShardedModel

    if scenario.before_delta is None:
        raise ConfigError("the membership test needs the model served before the forget request")
    model = ShardedModel(scenario.model_dir)
    num_shards = model.num_shards
    config = scenario.config
    forget_set = scenario.data.select_ids(scenario.forget_ids)
    universe = _concat(scenario.data, scenario.never_seen, "unlearning audit universe")
    evaluation = _concat(forget_set, scenario.never_seen, "forgotten + never-seen canaries")
    shared = PopulationFeatureCache([universe, evaluation], cache)
    masks = membership_masks(num_shadows, len(universe), scenario.seed + 1)
    position = {int(i): k for k, i in enumerate(universe.ids.tolist())}
    eval_rows = torch.tensor([position[int(i)] for i in evaluation.ids.tolist()])
    key = (num_shadows, scenario.seed, num_shards, universe.content_hash(), json.dumps(config.to_dict(), sort_keys=True))
    if key not in scenario.shadow_cache:
        shadow_logits = []
        for s in tqdm(range(num_shadows), desc="sharded shadow models", disable=not progress, unit="model"):
            delta = _sharded_shadow(base, universe.subset(masks[s]), config, num_shards, scenario.seed + 1000 + s, shared)
            shadow = _model_with(base, universe.num_classes, config, delta)
            shadow_logits.append(predict_logits(shadow, shared.features(shadow.base, shadow.start, evaluation),
                                                config.output))
        scenario.shadow_cache[key] = (torch.stack(shadow_logits).double().numpy(), masks[:, eval_rows].numpy())
    shadow_logits_t, shadow_in = scenario.shadow_cache[key]
    before = _model_with(base, universe.num_classes, config, scenario.before_delta)
    after = model.tangent_model()
    feats = shared.features(before.base, before.start, evaluation)
    labels = evaluation.labels.numpy()
    fixed = num_shadows < FIXED_VARIANCE_BELOW
    online = not fixed
    scores = {}
    for label, target in (("before", before), ("after", after)):
        logits = predict_logits(target, feats, config.output).double().numpy()
        scores[label] = lira_scores(logits, labels, shadow_logits_t, shadow_in, online=online, fixed_variance=fixed)
    n_f = len(forget_set)

    def compare(pos: np.ndarray, neg: np.ndarray, label: str, seed: int) -> dict[str, Any]:
        s = np.concatenate([pos, neg])
        truth = np.concatenate([np.ones(len(pos), bool), np.zeros(len(neg), bool)])
        met = attack_metrics(s, truth, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        return _metrics_row(label, met, len(pos), len(neg))

    tests = {k: permutation_test(v[:n_f], v[n_f:], seed=scenario.seed + i)
             for i, (k, v) in enumerate(scores.items())}
    before_row = compare(scores["before"][:n_f], scores["before"][n_f:], "forgotten, before removal", 1)
    before_row["p_value"] = tests["before"]["p_auc_greater"]
    after_row = compare(scores["after"][:n_f], scores["after"][n_f:], "forgotten, after removal", 2)
    after_row.update({"p_value": tests["after"]["p_auc_two_sided"], "p_value_tpr": tests["after"]["p_tpr_greater"]})
    t = tests["after"]
    null_row = {"label": "never seen", "auc": t["null_auc_median"], "auc_ci_lo": t["null_auc_lo"],
                "auc_ci_hi": t["null_auc_hi"], "tpr_at_fpr_1pct": t["null_tpr_median"],
                "tpr_at_fpr_1pct_ci_lo": t["null_tpr_lo"], "tpr_at_fpr_1pct_ci_hi": t["null_tpr_hi"],
                "samples": n_f, "reference_samples": len(scenario.never_seen)}
    return {
        "rows": [before_row, after_row, null_row],
        "attack": f"LiRA ({'online' if online else 'offline'}{', one pooled variance' if fixed else ''}, Carlini et al. 2022) "
                  f"with {num_shadows} sharded shadow models ({num_shards} shards each, the audited configuration) trained "
                  f"on random halves of the training data and the never-seen canaries",
        "reference": f"{len(scenario.never_seen)} never-seen canaries: the non-members every AUC is measured against",
        "never_seen_row": ("the permutation null: the AUC and TPR@1%FPR (median, 2.5–97.5 % quantiles) of "
                           f"{n_f} samples drawn at random from the forgotten and never-seen canaries together, "
                           "i.e. what samples the model never saw show against the same reference"),
        "tests": tests,
    }


# --------------------------------------------------------------------------------------
# (c) accuracy before / after
# --------------------------------------------------------------------------------------
def accuracy_rows(scenario: UnlearningScenario, base: nn.Module, cache: FeatureCache | None = None) -> list[dict]:
    """Accuracy (fractions) before/after on the retained training samples, the test data and the
    forgotten samples (in the audit's scenario those carry their wrong canary labels, so a high
    value means memorized)."""
    from privtangent.shards import ShardedModel

    model = ShardedModel(scenario.model_dir)
    config = scenario.config
    if scenario.forget_ids and len(scenario.data):
        ids = torch.tensor(scenario.forget_ids, dtype=torch.long)
        retained, forgotten = scenario.data.select_ids(ids, keep=False), scenario.data.select_ids(ids)
    else:
        retained, forgotten = scenario.data, None
    cache = cache or FeatureCache()
    sets = {"retained_accuracy": retained, "test_accuracy": scenario.test, "forgotten_accuracy": forgotten}
    models = {"after removal": model.tangent_model()}
    if scenario.before_delta is not None:
        models = {"before removal": _model_with(base, scenario.data.num_classes, config, scenario.before_delta), **models}
    rows = []
    for label, m in models.items():
        row: dict[str, Any] = {"label": label}
        for name, data in sets.items():
            if data is None or len(data) == 0:
                continue
            logits = predict_logits(m, cache.features(m.base, m.start, data), config.output)
            row[name] = float((logits.argmax(-1) == data.labels).double().mean())
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------
# the audit
# --------------------------------------------------------------------------------------
def _empty(name: str) -> LabeledData:
    return LabeledData(torch.empty(0, 1, 1, 1), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), [],
                       name)


def _scenario_of_directory(directory: Path) -> UnlearningScenario:
    """What can be audited of a bare sharded model directory: its recorded training and test
    data when they can be reloaded (``data_ref``/``test_ref``), no pre-request model."""
    from privtangent.errors import DataError
    from privtangent.shards import ShardedModel

    model = ShardedModel(directory)
    forgotten = sorted({int(i) for q in model.served_manifest()["state"].get("requests", []) for i in q["ids"]})
    try:
        data = model.load_data()
    except DataError:
        data = _empty("training data (not recorded)")
    try:
        test = model.load_test()
    except DataError:
        test = None
    return UnlearningScenario(model_dir=directory, data=data, forget_ids=forgotten, never_seen=_empty("none"),
                              test=test, config=model.config, before_delta=None, before_sha256=None)


@limit_threads
def audit_unlearning(scenario: UnlearningScenario | str | Path, base: nn.Module | None = None, *,
                     num_shadows: int = 4, n_bootstrap: int = 500, confidence: float = 0.95,
                     cache: FeatureCache | None = None, progress: bool = False) -> dict[str, Any]:
    """Audit a sharded model directory (or a scenario from ``build_unlearning_scenario``).

    A bare model directory gets (a) exactness and the ledger, and (c) test accuracy when the
    model records a test split; the membership check needs the scenario's model before the
    request and is skipped without it.
    """
    from privtangent.shards import ShardedModel

    start = time.perf_counter()
    if isinstance(num_shadows, bool) or not isinstance(num_shadows, int) or num_shadows < 2:
        raise ConfigError(f"number of shadow models must be an integer ≥ 2, got {num_shadows!r}")
    if not isinstance(scenario, UnlearningScenario):
        scenario = _scenario_of_directory(Path(scenario))
    model = ShardedModel(scenario.model_dir)
    if base is None:
        base = model.load_base()
    cache = cache or FeatureCache()
    rows, ledger = exactness_rows(scenario.model_dir, scenario.before_sha256)
    checks = []
    exact_rows = [r for r in rows if not r["check"].startswith("ledger")]
    ledger_rows = [r for r in rows if r["check"].startswith("ledger")]
    for ident, title, group in (("unlearning-exact", "forgetting is exact: served Δw = recomposition without the removed shards", exact_rows),
                                ("unlearning-ledger", "the ledger's hash chain and before/after hashes match the served model", ledger_rows)):
        failed = [r for r in group if r["status"] == "FAIL"]
        checks.append({"id": ident, "section": SECTION, "title": title, "status": "FAIL" if failed else "PASS",
                       "reason": (f"{failed[0]['check']}: {failed[0]['detail']}" if failed else
                                  "; ".join(r["detail"] for r in group[:1]))})
    body: dict[str, Any] = {
        "summary": ("A forget request was served by removing (or retraining) the shard that held the samples; the "
                    "served model was recomposed from the shard checkpoints and checked bit for bit, the ledger was "
                    "verified, and a membership attack compared the forgotten samples with samples the model never "
                    "saw (when the model served before the request is available)."),
        "ledger": ledger,
        "exactness": rows,
    }
    if scenario.forget:
        body["request"] = {k: scenario.forget.get(k) for k in ("request", "mode", "num_ids", "shards_removed",
                                                               "shards_retrained", "active_shards", "seconds")}
        body["request"]["ids_sha256"] = scenario.forget.get("ids_sha256")
    if scenario.before_delta is not None and len(scenario.never_seen) >= 4:
        mia = mia_before_after(scenario, base, num_shadows=num_shadows, n_bootstrap=n_bootstrap,
                               confidence=confidence, cache=cache, progress=progress)
        before, after, null = mia["rows"]
        body["mia_before_after"] = mia["rows"]
        alpha = 1.0 - confidence
        body["mia"] = {k: mia[k] for k in ("attack", "reference", "never_seen_row")}
        body["mia"]["decision"] = (
            f"positive control: forgotten canaries more member-like than never-seen ones before removal (one-sided "
            f"permutation p < {alpha:g}); PASS when after removal neither the AUC (two-sided) nor the TPR@1%FPR "
            f"(one-sided) differs from the permutation null at level {alpha / 2:g} each (false-FAIL rate ≤ {alpha:g} "
            f"after an exact removal, where forgotten and never-seen samples are exchangeable)")
        body["mia"]["tests"] = mia["tests"]
        control = before["p_value"] < alpha
        same = after["p_value"] >= alpha / 2 and after["p_value_tpr"] >= alpha / 2
        if not control:
            status, reason = "SKIP", (f"inconclusive: the positive control failed — the forgotten samples were not "
                                      f"detectable before removal either (AUC {before['auc']:.3g}, permutation p = "
                                      f"{before['p_value']:.3g} ≥ {alpha:g})")
        elif same:
            status, reason = "PASS", (f"after removal AUC {after['auc']:.3g} (p = {after['p_value']:.3g}) and TPR@1%FPR "
                                      f"{after['tpr_at_fpr_1pct']:.3g} (p = {after['p_value_tpr']:.3g}) are those of never-seen "
                                      f"samples (null AUC {null['auc_ci_lo']:.3g}–{null['auc_ci_hi']:.3g}); before removal "
                                      f"AUC {before['auc']:.3g} (p = {before['p_value']:.3g}, positive control)")
        else:
            status, reason = "FAIL", (f"the forgotten samples do not look like never-seen samples: after removal AUC "
                                      f"{after['auc']:.3g} (never-seen null {null['auc_ci_lo']:.3g}–{null['auc_ci_hi']:.3g}, "
                                      f"p = {after['p_value']:.3g}), TPR@1%FPR {after['tpr_at_fpr_1pct']:.3g} (p = "
                                      f"{after['p_value_tpr']:.3g}); before removal AUC {before['auc']:.3g}")
        checks.append({"id": "unlearning-mia", "section": SECTION,
                       "title": "forgotten samples look like never-seen samples to LiRA", "status": status, "reason": reason})
    else:
        checks.append({"id": "unlearning-mia", "section": SECTION,
                       "title": "forgotten samples look like never-seen samples to LiRA", "status": "SKIP",
                       "reason": "needs the model served before the request and never-seen canaries: run the audit's own "
                                 "scenario (privtangent audit unlearning without --model)"})
    body["accuracy"] = accuracy_rows(scenario, base, cache)
    body["setup"] = {"model_dir": str(scenario.model_dir), "num_shards": model.num_shards,
                     "training": scenario.config.to_dict(), "forgotten_samples": len(scenario.forget_ids),
                     "never_seen_samples": len(scenario.never_seen), "shadow_models": num_shadows,
                     "confidence": confidence, "n_bootstrap": n_bootstrap, "seed": scenario.seed}
    body["seconds"] = {"build_and_forget": scenario.build_seconds, "audit": time.perf_counter() - start}
    # roc None: the report's ROC figure belongs to the black-box audit; the AUCs above are this section's
    return {"section": SECTION, "body": body, "checks": checks, "roc": None}


@limit_threads
def run_unlearning_audit(
    base: nn.Module | None = None,
    *,
    train: LabeledData | None = None,
    test: LabeledData | None = None,
    run_dir: str | Path | None = None,
    model_dir: str | Path | None = None,
    base_name: str | None = None,
    base_kwargs: dict[str, Any] | None = None,
    num_shards: int = 2,
    data_size: int = 320,
    num_forget: int = 32,
    num_never_seen: int = 64,
    num_shadows: int = 4,
    train_config: TrainConfig | None = None,
    mode: str = "remove",
    n_bootstrap: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
    cache: FeatureCache | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """The unlearning audit: of ``model_dir`` (an existing sharded model), or of a scenario built
    in ``run_dir`` (canaries planted in shard 0, then forgotten; see ``build_unlearning_scenario``).

    Returns ``{"section": "unlearning", "body": {...}, "checks": [...], "roc": DataFrame or None}``.
    """
    if model_dir is not None:
        return audit_unlearning(model_dir, base, num_shadows=num_shadows, n_bootstrap=n_bootstrap,
                                confidence=confidence, cache=cache, progress=progress)
    if run_dir is None:
        import tempfile

        run_dir = Path(tempfile.mkdtemp(prefix="privtangent-unlearning-"))
    if base is None:
        from privtangent.models import pretrained_base
        from privtangent.models.pretrain import DEFAULT_MODEL

        base, _ = pretrained_base(progress=progress)
        base_name, base_kwargs = base_name or DEFAULT_MODEL["name"], base_kwargs or dict(DEFAULT_MODEL["kwargs"])
    scenario = build_unlearning_scenario(base, train=train, test=test, run_dir=run_dir, base_name=base_name,
                                         base_kwargs=base_kwargs, num_shards=num_shards, data_size=data_size,
                                         num_forget=num_forget, num_never_seen=num_never_seen,
                                         train_config=train_config, mode=mode, seed=seed, progress=progress)
    return audit_unlearning(scenario, base, num_shadows=num_shadows, n_bootstrap=n_bootstrap, confidence=confidence,
                            cache=cache, progress=progress)
