"""A DP fine-tuning run into a model directory: the release artifact.

``train_dp_run`` trains with ``fit_dp`` and writes the same directory as a non-private run
(``privtangent.train.run``): ``model.safetensors`` (Δw keyed by the base model's parameter
names), ``model.json`` (base, config, data hashes, metrics) with a ``privacy`` block — the claim a
reviewer checks: accounted and target ε, δ, σ, C, q, T, the accountant, whether the noise was
seeded — ``model_card.md`` and ``metrics.json``. A DP run is not resumable: the mechanism's noise
is drawn from operating-system entropy and never stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer

from privtangent.data.dataset import ImageData
from privtangent.dp.config import DPConfig
from privtangent.dp.manifest import UNIT_OF_PRIVACY
from privtangent.dp.training import fit_dp
from privtangent.errors import ConfigError
from privtangent.features import FeatureCache
from privtangent.io.hashing import tensor_hash
from privtangent.threads import torch_threads
from privtangent.train.run import RunResult, anchor_state, finite_json, has_run, run_manifest, save_model_dir
from privtangent.train.trainer import prepare_model

PRIVACY_KEYS = ("epsilon", "target_epsilon", "delta", "sigma", "max_grad_norm", "sample_rate", "steps", "accountant",
                "noise_seeded")


def privacy_block(manifest: dict[str, Any]) -> dict[str, Any]:
    """``model.json``'s privacy block from a DP run's privacy manifest (``privtangent.dp.manifest``)."""
    return {
        "private": True,
        "epsilon": manifest["epsilon"],
        "target_epsilon": manifest["target_epsilon"],
        "delta": manifest["delta"],
        "sigma": manifest["noise_multiplier"],
        "max_grad_norm": manifest["max_grad_norm"],
        "sample_rate": manifest["sample_rate"],
        "steps": manifest["steps"],
        "accountant": manifest["accountant"],
        "noise_seeded": manifest["noise_seeded"],
        "epsilon_rdp": manifest.get("epsilon_rdp"),
        "unit_of_privacy": manifest.get("unit_of_privacy", UNIT_OF_PRIVACY),
        "mechanism": manifest["mechanism"],
        "sampling": manifest["sampling"],
        "clipping": manifest["clipping"],
        "noise": manifest["noise"],
        "expected_batch_size": manifest["expected_batch_size"],
        "dataset_size": manifest["dataset_size"],
        "epochs": manifest["epochs"],
        "steps_run": manifest["steps_run"],
        "noise_source": manifest["noise_source"],
        "noise_calibrated": manifest["noise_calibrated"],
        "hyperparameter_tuning": manifest["hyperparameter_tuning"],
        "released": manifest["released"],
        **({"release": manifest["release"]} if "release" in manifest else {}),
    }


def train_dp_run(base: VisionTransformer, train: ImageData, config: DPConfig, out: str | Path, *,
                 test: ImageData | None = None, base_record: dict[str, Any] | None = None,
                 data_extra: dict[str, Any] | None = None, cache: FeatureCache | None = None,
                 progress: bool = True, threads: int | None = None) -> RunResult:
    """DP-train ``config`` on ``train`` into the model directory ``out`` (see the module docstring)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    if has_run(out):
        raise ConfigError(f"--out {out}: already holds a model; a DP run is not resumable: choose another directory")
    with torch_threads(threads):
        train_config = config.train_config()
        model = prepare_model(base, train.num_classes, train_config)
        anchor = anchor_state(model)  # before training: a non-linear model's trained blocks change
        result = fit_dp(base, train, config, test=test, cache=cache, progress=progress, model=model)
    metrics = finite_json(dict(result.metrics))
    manifest = run_manifest(result.model, train_config, base_record, tensor_hash(base.state_dict()), train, test,
                            data_extra, tensor_hash(anchor), metrics)
    manifest.update({"method": f"DP {train_config.method}", "dp_config": config.to_dict(),
                     "privacy": privacy_block(result.manifest),
                     "threads": torch.get_num_threads() if threads is None else threads})
    summary = {**metrics, "method": manifest["method"], "seed": config.seed, "train_data": train.name,
               "num_train": len(train), "num_test": len(test) if test is not None else 0,
               "epsilon": result.manifest["epsilon"], "target_epsilon": config.target_epsilon}
    manifest = save_model_dir(out, result.model, manifest, anchor, summary)
    return RunResult(out, result.model, summary, manifest, 0)


__all__ = ["PRIVACY_KEYS", "privacy_block", "train_dp_run"]
