"""The main job: train, attack, forget and audit, then write report.json (section by section).

``run_audit(config, out_dir)`` runs every stage of a pre-release audit on one model:

1. the base model (the embedded default, or a timm model + local checkpoint) and the data;
2. TAFT with DP at each claimed ε (full-batch DP-GD by default, σ calibrated by PRV);
3. the regime comparison (utility: Full/BitFit/LayerNorm/FC × Ours/Reg × ε, Poisson DP-SGD sized
   to a CPU budget, with intervals over seeds and the best choice per ε);
4. the black-box membership audit (LiRA + one-run canaries) of every DP procedure;
5. the white-box canary audit of the DP training itself;
6. optionally (``audit.input_canaries`` > 0) the input-canary audit, from the model's outputs alone;
7. shard training, composition, one forget request served by shard removal, and its audit;

and returns the report (also written as ``out_dir/report.json`` with ``roc.csv``).
Every stage's seconds go into the report's reproducibility section.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import privtangent
from audits.model_audit import artifact_config, load_artifact, statement_stage
from audits.report_file import read_report_json, write_report_json
from audits.results import Status
from audits.stages import STAGES, AuditRun, load_base, load_data, privacy_stage, train_dp_models, whitebox_stage
from privtangent.config.schema import RunConfig, parse_config
from privtangent.io.atomic import atomic_write_text
from privtangent.io.checkpoint import library_versions
from privtangent.threads import default_threads

# The main job's defaults, laid under a config file's fields. The last block is reset before
# linearizing (PT=F: TAFT-1 reached 91.7 % on Fashion-MNIST 5–9 that way, and only the head's
# accuracy with the pretrained block kept), 6 epochs of non-private shard training, and 1,000
# training / 1,000 test samples, sized so the whole job runs in under 10 minutes on 2 CPU cores.
AUDIT_DEFAULTS: dict[str, Any] = {"training": {"reset": True, "epochs": 6},
                                  "data": {"train_limit": 1000, "test_limit": 1000}}


def default_config() -> RunConfig:
    """The main job's config when no file is given."""
    return parse_config({}, AUDIT_DEFAULTS)


def reproducibility(run: AuditRun, command: str) -> dict[str, Any]:
    noise_seed = run.config.privacy.mechanism.noise_seed
    return {
        "command": command,
        "config_file": run.config.source or "(none: the embedded default)",
        "versions": {**library_versions(), "privtangent": privtangent.__version__, "platform": platform.platform()},
        "hashes": {"base_model_weights_sha256": run.base_info.get("weights_sha256"),
                   "train_data_sha256": run.train.content_hash() if run.train else None,
                   "test_data_sha256": run.test.content_hash() if run.test else None},
        "seeds": {"training": run.config.training.seed,
                  "dp_noise": noise_seed if noise_seed is not None else "OS entropy"},
        "stage_seconds": dict(run.seconds),
        "config": run.config.to_dict(),
    }


MODEL_STAGES: list[tuple[str, Callable[[AuditRun], None]]] = [
    ("the released model's DP statement and accuracy", statement_stage),
    ("black-box membership audit of its recipe", privacy_stage),
    ("white-box canary audit of its recipe", whitebox_stage),
]


def _run_stages(run: AuditRun, model_dir: Path | None) -> None:
    if model_dir is None:
        with run.stage("base model"):
            load_base(run)
        with run.stage("data"):
            load_data(run)
        run.out_dir.mkdir(parents=True, exist_ok=True)  # only once the model and data are known to be valid
        with run.stage("DP training at each ε"):
            train_dp_models(run)
        stages = STAGES
    else:
        with run.stage("the released model, verified"):
            run.model_dir, run.artifact = model_dir, load_artifact(run, model_dir)
            run.config = artifact_config(run.artifact, run.config)
        run.out_dir.mkdir(parents=True, exist_ok=True)
        private = (run.artifact.get("privacy") or {}).get("private")
        stages = MODEL_STAGES if private else MODEL_STAGES[:1]
    for name, stage in stages:
        with run.stage(name):
            stage(run)


def run_audit(config: RunConfig, out_dir: str | Path, *, progress: bool = True,
              log: Callable[[str], None] = print, command: str | None = None,
              model_dir: str | Path | None = None) -> dict[str, Any]:
    """Run the whole audit (of the embedded default or a config, or of the released model in
    ``model_dir``); writes ``out_dir/report.json`` (+ roc.csv) and returns the report."""
    out_dir = Path(out_dir)
    torch.set_num_threads(config.threads or default_threads())
    run = AuditRun(config, out_dir, progress, log)
    start = time.perf_counter()
    _run_stages(run, Path(model_dir) if model_dir is not None else None)
    total = time.perf_counter() - start
    if run.result.rocs:
        atomic_write_text(out_dir / "roc.csv", pd.concat(run.result.rocs).to_csv(index=False))
    report = {
        "title": "privtangent compliance report",
        "subtitle": f"Model: {run.base_info.get('description')}. Data: {run.train_data.name} "
                    f"({len(run.train_data)} training / {len(run.test_data)} test examples).",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "privtangent_version": privtangent.__version__,
        "verdict": run.result.verdict.value,
        "summary": _summary(run, total),
        "checks": run.result.checks,
        **run.result.sections,
        "base_model": run.base_info,
        **({"released_model_sha256": run.artifact["sha256"]} if run.artifact else {}),
        "reproducibility": {**reproducibility(run, command or " ".join(sys.argv)), "total_seconds": round(total, 1)},
    }
    write_report_json(out_dir, report)
    return read_report_json(out_dir)  # exactly what is on disk: rounded, checks as dicts


def _summary(run: AuditRun, total: float) -> str:
    failed = sum(c.status is Status.FAIL for c in run.result.checks)
    eps = ", ".join(f"{e:g}" for e in run.config.privacy.epsilons)
    if run.artifact:
        return (f"The released model {run.artifact['sha256'][:16]}… ({run.artifact['method']}) was audited: its DP "
                f"statement was re-derived from its manifest, its accuracy measured, and replicas of its training "
                f"recipe attacked. {len(run.result.checks)} checks ran, {failed} failed. The audit took "
                f"{total / 60:.1f} minutes.")
    return (f"The model was fine-tuned as a tangent model with differential privacy at ε ∈ {{{eps}}} "
            f"(δ = {run.config.privacy.mechanism.delta:g}), attacked with membership-inference attacks, and asked to "
            f"forget samples. {len(run.result.checks)} checks ran, {failed} failed. The audit took "
            f"{total / 60:.1f} minutes.")


__all__ = ["AUDIT_DEFAULTS", "AuditRun", "STAGES", "default_config", "run_audit"]
