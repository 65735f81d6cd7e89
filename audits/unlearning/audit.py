"""The unlearning audit of a sharded tangent model that served forget requests.

Three questions, each answered from what is on disk plus (for the scenario the audit builds
itself, ``audits.unlearning.scenario``) the model served before the request:

(a) **Exactness** (``audits.unlearning.exactness``): the served Δw is bit-identical to the
    composition of the active shards, no active shard saw a forgotten ID, the ledger verifies.
(b) **Membership inference** (``audits.unlearning.membership``): the forgotten samples look
    like samples the model never saw, with a positive control before the removal.
(c) **Utility**: accuracy on the retained training samples and on test data, before and after.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer

from audits.results import AuditSection, Check, Status
from audits.unlearning.exactness import ExactnessRow, exactness_rows
from audits.unlearning.membership import mia_before_after, model_with
from audits.unlearning.scenario import UnlearningScenario, build_unlearning_scenario
from privtangent.data.dataset import ImageData, LabeledData
from privtangent.errors import ConfigError, DataError
from privtangent.features import FeatureCache
from privtangent.finetune import FineTuneModel
from privtangent.shards import ShardedModel
from privtangent.threads import torch_threads
from privtangent.train import TrainConfig, predict_logits

SECTION = "unlearning"
MIA_TITLE = "forgotten samples look like never-seen samples to LiRA"


def accuracy_rows(scenario: UnlearningScenario, base: VisionTransformer,
                  cache: FeatureCache | None = None) -> list[dict[str, Any]]:
    """Accuracy (fractions) before/after on the retained training samples, the test data and the
    forgotten samples (in the audit's scenario those carry their wrong canary labels, so a high
    value means memorized)."""
    model = ShardedModel(scenario.model_dir)
    config = scenario.config
    forgotten: LabeledData | None = None
    retained = scenario.data
    if scenario.forget_ids and len(scenario.data):
        ids = torch.tensor(scenario.forget_ids, dtype=torch.long)
        retained, forgotten = scenario.data.select_ids(ids, keep=False), scenario.data.select_ids(ids)
    cache = cache or FeatureCache()
    sets = {"retained_accuracy": retained, "test_accuracy": scenario.test, "forgotten_accuracy": forgotten}
    models: dict[str, FineTuneModel] = {"after removal": model.tangent_model()}
    if scenario.before_delta is not None:
        models = {"before removal": model_with(base, scenario.data.num_classes, config, scenario.before_delta),
                  **models}
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


def _empty(name: str) -> LabeledData:
    return LabeledData(torch.empty(0, 1, 1, 1), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), [],
                       name)


def scenario_of_directory(directory: Path) -> UnlearningScenario:
    """What can be audited of a bare sharded model directory: its recorded training and test
    data when they can be reloaded (``data_ref``/``test_ref``), no pre-request model."""
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


def exactness_checks(rows: list[ExactnessRow]) -> list[Check]:
    """Two checks: exactness of the served model, and the ledger."""
    groups = (("unlearning-exact", "forgetting is exact: served Δw = recomposition without the removed shards",
               [r for r in rows if not r["check"].startswith("ledger")]),
              ("unlearning-ledger", "the ledger's hash chain and before/after hashes match the served model",
               [r for r in rows if r["check"].startswith("ledger")]))
    checks = []
    for ident, title, group in groups:
        failed = [r for r in group if r["status"] == "FAIL"]
        reason = f"{failed[0]['check']}: {failed[0]['detail']}" if failed else "; ".join(r["detail"] for r in group[:1])
        checks.append(Check(ident, SECTION, title, Status.FAIL if failed else Status.PASS, reason))
    return checks


def mia_check(rows: list[dict[str, Any]], confidence: float) -> Check:
    """The membership check: positive control before removal, permutation test after it."""
    before, after, null = rows
    alpha = 1.0 - confidence
    if not before["p_value"] < alpha:
        return Check("unlearning-mia", SECTION, MIA_TITLE, Status.SKIP,
                     f"inconclusive: the positive control failed — the forgotten samples were not detectable before "
                     f"removal either (AUC {before['auc']:.3g}, permutation p = {before['p_value']:.3g} ≥ {alpha:g})")
    if after["p_value"] >= alpha / 2 and after["p_value_tpr"] >= alpha / 2:
        return Check("unlearning-mia", SECTION, MIA_TITLE, Status.PASS,
                     f"after removal AUC {after['auc']:.3g} (p = {after['p_value']:.3g}) and TPR@1%FPR "
                     f"{after['tpr_at_fpr_1pct']:.3g} (p = {after['p_value_tpr']:.3g}) are those of never-seen samples "
                     f"(null AUC {null['auc_ci_lo']:.3g}–{null['auc_ci_hi']:.3g}); before removal AUC "
                     f"{before['auc']:.3g} (p = {before['p_value']:.3g}, positive control)")
    return Check("unlearning-mia", SECTION, MIA_TITLE, Status.FAIL,
                 f"the forgotten samples do not look like never-seen samples: after removal AUC {after['auc']:.3g} "
                 f"(never-seen null {null['auc_ci_lo']:.3g}–{null['auc_ci_hi']:.3g}, p = {after['p_value']:.3g}), "
                 f"TPR@1%FPR {after['tpr_at_fpr_1pct']:.3g} (p = {after['p_value_tpr']:.3g}); before removal AUC "
                 f"{before['auc']:.3g}")


def _mia_section(scenario: UnlearningScenario, base: VisionTransformer, num_shadows: int, n_bootstrap: int,
                 confidence: float, cache: FeatureCache, progress: bool) -> tuple[dict[str, Any], Check]:
    if scenario.before_delta is None or len(scenario.never_seen) < 4:
        return {}, Check("unlearning-mia", SECTION, MIA_TITLE, Status.SKIP,
                         "needs the model served before the request and never-seen canaries: run the audit's own "
                         "scenario (privtangent audit unlearning without --sharded-model)")
    mia = mia_before_after(scenario, base, num_shadows=num_shadows, n_bootstrap=n_bootstrap, confidence=confidence,
                           cache=cache, progress=progress)
    alpha = 1.0 - confidence
    summary = {k: mia[k] for k in ("attack", "reference", "never_seen_row")}
    summary["decision"] = (
        f"positive control: forgotten canaries more member-like than never-seen ones before removal (one-sided "
        f"permutation p < {alpha:g}); PASS when after removal neither the AUC (two-sided) nor the TPR@1%FPR "
        f"(one-sided) differs from the permutation null at level {alpha / 2:g} each (false-FAIL rate ≤ {alpha:g} "
        f"after an exact removal, where forgotten and never-seen samples are exchangeable)")
    summary["tests"] = mia["tests"]
    return {"mia_before_after": mia["rows"], "mia": summary}, mia_check(mia["rows"], confidence)


def audit_unlearning(scenario: UnlearningScenario | str | Path, base: VisionTransformer | None = None, *,
                     num_shadows: int = 4, n_bootstrap: int = 500, confidence: float = 0.95,
                     cache: FeatureCache | None = None, progress: bool = False, threads: int | None = 1) -> AuditSection:
    """Audit a sharded model directory (or a scenario from ``build_unlearning_scenario``).

    A bare model directory gets (a) exactness and the ledger, and (c) test accuracy when the
    model records a test split; the membership check needs the scenario's model before the
    request and is skipped without it. ``base`` defaults to the model's recorded base.
    """
    with torch_threads(threads):
        start = time.perf_counter()
        if isinstance(num_shadows, bool) or not isinstance(num_shadows, int) or num_shadows < 2:
            raise ConfigError(f"number of shadow models must be an integer ≥ 2, got {num_shadows!r}")
        if not isinstance(scenario, UnlearningScenario):
            scenario = scenario_of_directory(Path(scenario))
        model = ShardedModel(scenario.model_dir)
        base = base if base is not None else model.load_base()
        cache = cache or FeatureCache()
        rows, ledger = exactness_rows(scenario.model_dir, scenario.before_sha256)
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
                                                                   "shards_retrained", "active_shards", "seconds",
                                                                   "ids_sha256")}
        mia_body, mia = _mia_section(scenario, base, num_shadows, n_bootstrap, confidence, cache, progress)
        body.update(mia_body)
        body["accuracy"] = accuracy_rows(scenario, base, cache)
        body["setup"] = {"model_dir": str(scenario.model_dir), "num_shards": model.num_shards,
                         "training": scenario.config.to_dict(), "forgotten_samples": len(scenario.forget_ids),
                         "never_seen_samples": len(scenario.never_seen), "shadow_models": num_shadows,
                         "confidence": confidence, "n_bootstrap": n_bootstrap, "seed": scenario.seed}
        body["seconds"] = {"build_and_forget": scenario.build_seconds, "audit": time.perf_counter() - start}
        # no ROC: the report's ROC figure belongs to the black-box audit; the AUCs above are this section's
        return AuditSection(SECTION, body, [*exactness_checks(rows), mia])


def run_unlearning_audit(
    base: VisionTransformer,
    train: ImageData | None = None,
    *,
    test: ImageData | None = None,
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
    threads: int | None = 1,
) -> AuditSection:
    """The unlearning audit: of ``model_dir`` (an existing sharded model), or of a scenario built
    in ``run_dir`` from ``train`` (canaries planted in shard 0, then forgotten; see
    ``build_unlearning_scenario``)."""
    with torch_threads(threads):
        if model_dir is not None:
            return audit_unlearning(model_dir, base, num_shadows=num_shadows, n_bootstrap=n_bootstrap,
                                    confidence=confidence, cache=cache, progress=progress)
        if train is None:
            raise ConfigError("the unlearning scenario needs training data (or model_dir, an existing sharded model)")
        run_dir = Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix="privtangent-unlearning-"))
        scenario = build_unlearning_scenario(base, train, test=test, run_dir=run_dir, base_name=base_name,
                                             base_kwargs=base_kwargs, num_shards=num_shards, data_size=data_size,
                                             num_forget=num_forget, num_never_seen=num_never_seen,
                                             train_config=train_config, mode=mode, seed=seed, progress=progress)
        return audit_unlearning(scenario, base, num_shadows=num_shadows, n_bootstrap=n_bootstrap, confidence=confidence,
                                cache=cache, progress=progress)


__all__ = ["SECTION", "accuracy_rows", "audit_unlearning", "exactness_checks", "mia_check", "run_unlearning_audit",
           "scenario_of_directory"]
