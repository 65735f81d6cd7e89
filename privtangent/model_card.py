"""The model card of a trained model directory: what a reviewer reads next to ``model.json``.

Plain Markdown, derived from the manifest alone (nothing is restated by hand): what the model
is, what it was trained on, its differential-privacy guarantee (or that it has none), how well
it does, how to load and check it, and what the guarantee does not cover.
"""

from __future__ import annotations

from typing import Any


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _privacy(privacy: dict[str, Any]) -> list[str]:
    if not privacy.get("private"):
        return ["**Not differentially private.** This model was fine-tuned without DP: it may memorize and reveal "
                "its training examples. Train with `privtangent train --epsilon E` for a model with a guarantee.", ""]
    lines = [f"**(ε = {_num(privacy['epsilon'])}, δ = {_num(privacy['delta'])})-differential privacy** "
             f"(target ε = {_num(privacy['target_epsilon'])}), for {privacy['unit_of_privacy']}.", "",
             "| parameter | value |", "|---|---|"]
    rows = [("mechanism", privacy.get("mechanism")), ("noise multiplier σ", privacy.get("sigma")),
            ("clipping norm C", privacy.get("max_grad_norm")), ("sample rate q", privacy.get("sample_rate")),
            ("steps T", privacy.get("steps")), ("accountant", privacy.get("accountant")),
            ("ε by RDP (cross-check)", privacy.get("epsilon_rdp")), ("training examples N", privacy.get("dataset_size")),
            ("noise source", privacy.get("noise_source"))]
    lines += [f"| {k} | {_num(v)} |" for k, v in rows if v is not None]
    lines.append("")
    if privacy.get("noise_seeded"):
        lines += ["> **NOT FOR RELEASE.** The DP noise was seeded (`noise_seed`): anyone who knows the seed can "
                  "remove the noise, and the guarantee does not hold.", ""]
    lines += ["Covered: every access to the private training set during fine-tuning — each step's gradient was "
              "clipped per example and noised. Not covered: the base model's own training data (the base is "
              "treated as public), hyperparameters chosen on the private data (" + privacy.get(
                  "hyperparameter_tuning", "not accounted for") + "), and anything released besides these weights.",
              ""]
    return lines


def model_card(manifest: dict[str, Any], artifact_sha256: str | None = None) -> str:
    """The card of the model described by ``manifest`` (``model.json``)."""
    base, config = manifest.get("base", {}), manifest.get("config", {})
    train = (manifest.get("data") or {}).get("train") or {}
    test = (manifest.get("data") or {}).get("test") or {}
    metrics = manifest.get("metrics", {})
    privacy = manifest.get("privacy") or {"private": False}
    kind = "tangent (TAFT: f_w(x) + J·Δw, only Δw trained)" if config.get("tangent") else "non-linear fine-tuning"
    lines = [f"# Model card: {manifest.get('method', 'fine-tuned ViT')}", "",
             "## Model", "",
             f"- Fine-tuning: {kind}; last {config.get('blocks')} block(s), regime `{config.get('regime')}`, "
             f"reset before linearizing: {config.get('reset')}; output `{config.get('output')}`.",
             f"- Base model: `{base.get('name')}` ({', '.join(f'{k}={v}' for k, v in (base.get('kwargs') or {}).items())}); "
             "weights from "
             f"{base.get('source') or base.get('checkpoint') or 'the embedded default'}; "
             f"sha256 of the base weights `{base.get('sha256')}`."
             + (" Its classification head was replaced for this task." if base.get("head_replaced") else ""),
             f"- Trained parameters (`model.safetensors`, keyed by the base model's parameter names): "
             f"sha256 `{artifact_sha256 or manifest.get('sha256')}`.", "",
             "## Data", "",
             f"- Training: {train.get('name')}, {train.get('num_samples')} examples, {train.get('num_classes')} "
             f"classes ({', '.join(map(str, train.get('classes', [])))}); content sha256 `{train.get('content_sha256')}`.",
             f"- Test: {test.get('name')}, {test.get('num_samples')} examples." if test else "- Test: none recorded.", "",
             "## Privacy", "", *_privacy(privacy),
             "## Utility", "",
             f"- Test accuracy: {_num(metrics.get('test_accuracy'))} (fraction of {test.get('num_samples', '?')} "
             "test examples).", "",
             "## Use", "",
             "```python", "import privtangent", "model = privtangent.load_model(\"<this directory>\")  "
             "# refuses a base or Δw whose sha256 differs", "```", "",
             "`privtangent evaluate --model <this directory> --data ...` measures accuracy; "
             "`privtangent audit --model <this directory> --out ...` audits the DP claim.", ""]
    return "\n".join(lines)


__all__ = ["model_card"]
