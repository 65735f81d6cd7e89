"""``privtangent evaluate``: the accuracy of a trained model directory, every file verified first."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from privtangent.choices import TASKS
from privtangent.cli.options import add_device_option
from privtangent.errors import ConfigError, DataError

if TYPE_CHECKING:  # annotations only: the command imports torch-heavy modules when it runs
    from timm.models.vision_transformer import VisionTransformer

    from privtangent.data.dataset import ImageData


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="measure a trained model directory's accuracy (overall and per class)",
        description="Load a model directory written by `privtangent train` (the base model it names and its\n"
        "Δw; a base or Δw whose sha256 differs from model.json is refused, exit 2) and measure its\n"
        "accuracy: on the run's own test split by default (the same subset, so the logged test\n"
        "accuracy is reproduced exactly), on another task, or on an image folder (one sub-folder per\n"
        "class, the class names the model was trained on).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  privtangent evaluate --model runs/release\n"
        "  privtangent evaluate --model runs/release --data path/to/test-folder --predictions preds.csv\n"
        "exit status: 0 ok, 2 bad input or a tampered model (nothing written)",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="a model directory (privtangent train --out)")
    p.add_argument("--data", metavar="TASK|FOLDER",
                   help=f"evaluate on this task ({', '.join(TASKS)}; its test split) or image folder "
                        "(default: the run's own test split)")
    p.add_argument("--limit", type=int, metavar="N", help="evaluate on a seeded random subset of N samples")
    p.add_argument("--predictions", metavar="FILE", help="also write one row per sample (id, label, prediction) as CSV")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_device_option(p)
    p.set_defaults(func=run)


def _data(args: argparse.Namespace, manifest: dict, base: VisionTransformer) -> ImageData:
    from privtangent.data.image_folder import open_image_folder
    from privtangent.inputs import random_subset
    from privtangent.release import data_spec, training_data

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit: must be an integer ≥ 1, got {args.limit}")
    if args.data is None:
        _, test = training_data(manifest, base)
        return random_subset(test, args.limit, 0) if args.limit else test
    classes = manifest["data"]["train"]["classes"]
    data: ImageData
    if Path(args.data).is_dir():
        spec = data_spec(manifest)  # the training run's normalization (timm's, unless it was overridden)
        data = open_image_folder(args.data, mean=spec.mean, std=spec.std, classes=classes, model=base)
    elif args.data in TASKS:
        from privtangent.data.tasks import load_task

        data = load_task(args.data, "test")
    else:
        raise DataError(f"--data {args.data!r}: not a task ({', '.join(TASKS)}) nor an image folder")
    if list(data.classes) != list(classes):
        raise DataError(f"--data {args.data}: its classes {list(data.classes)} are not the model's {list(classes)}")
    return random_subset(data, args.limit, 0)


def run(args: argparse.Namespace) -> int:
    import pandas as pd
    import torch

    from privtangent.features import FeatureCache
    from privtangent.io.atomic import atomic_write_text
    from privtangent.release import load_model, read_manifest, verified_base
    from privtangent.train.evaluate import evaluate, predict_logits

    manifest = read_manifest(args.model)
    base = verified_base(manifest, progress=not args.quiet)
    model = load_model(args.model, base)
    data = _data(args, manifest, base)
    output = manifest["config"]["output"]
    features = FeatureCache().features(model.base, model.start, data)
    report = evaluate(model, features, data.labels, data.num_classes, None, output)
    result = {"model": str(args.model), "data": data.name, "num_samples": len(data), "accuracy": report["accuracy"],
              "per_class_accuracy": dict(zip(map(str, data.classes), report["per_class_accuracy"])),
              "model_sha256": manifest["sha256"], "private": bool((manifest.get("privacy") or {}).get("private"))}
    if args.predictions:
        logits = predict_logits(model, features, output)
        frame = pd.DataFrame({"id": data.ids.tolist(), "label": data.labels.tolist(),
                              "prediction": logits.argmax(-1).tolist(),
                              "confidence": torch.softmax(logits.double(), -1).max(-1).values.tolist()})
        atomic_write_text(args.predictions, frame.to_csv(index=False))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{manifest['method']} ({'DP' if result['private'] else 'not private'}) on {data.name}: accuracy "
              f"{100 * result['accuracy']:.2f}% on {len(data)} samples", file=sys.stdout)
    return 0
