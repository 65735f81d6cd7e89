"""How often does the unlearning audit's membership check FAIL an exact removal? (its false-FAIL rate)

After an exact removal the forgotten samples *are* never-seen samples, so the check (a permutation
test at level α) must FAIL at most α of the time. This runs the audit's own scenario on a small
own-model configuration — a random-init ``vit_tiny`` (32×32 RGB, patch 8), 3 classes × 40
training images (scikit-learn digits 0–2 upsampled), 2 shards, 4 forgotten samples — for many
seeds and counts the FAILs, with an exact binomial 95 % interval.

    python benchmarks/unlearning_null.py --seeds 40 --out benchmarks/results/unlearning_null.json
    python benchmarks/unlearning_null.py --setting default --seeds 40 --out benchmarks/results/unlearning_null_default.json

``--setting default`` runs the main job's own scenario instead: the embedded default base model,
1,000 Fashion-MNIST 5–9 training images, 2 shards, 32 forgotten canaries, 200 never-seen ones —
a size at which the positive control passes, so the check can actually FAIL.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from scipy.stats import beta

from audits.unlearning import run_unlearning_audit
from privtangent.data.dataset import LabeledData
from privtangent.data.tasks import load_task
from privtangent.inputs import random_subset
from privtangent.io.atomic import atomic_write_json
from privtangent.models.pretrain import DEFAULT_MODEL, pretrained_base
from privtangent.models.vit import build_vit
from privtangent.threads import torch_threads
from privtangent.train import TrainConfig

KWARGS = {"img_size": 32, "patch_size": 8, "in_chans": 3, "num_classes": 3}


def small_project(per_class: int, test_per_class: int) -> tuple[LabeledData, LabeledData]:
    """Digits 0–2 as 32×32 RGB images: ``per_class`` training and ``test_per_class`` test images each."""
    out = []
    for split, count in (("train", per_class), ("test", test_per_class)):
        data = load_task("digits", split)
        keep = torch.cat([torch.nonzero(data.labels == c).flatten()[:count] for c in range(3)])
        images = F.interpolate(data.images[keep], size=(32, 32), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
        out.append(LabeledData(images, data.labels[keep], data.ids[keep], ["0", "1", "2"], f"digits-0-2/{split}"))
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--forget", type=int, default=None, help="forgotten samples (default 4, or 32 for default)")
    parser.add_argument("--setting", choices=("small", "default"), default="small")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/unlearning_null.json"))
    args = parser.parse_args()
    if args.setting == "default":
        base, _ = pretrained_base(progress=False)
        name, kwargs = DEFAULT_MODEL["name"], dict(DEFAULT_MODEL["kwargs"])
        train = random_subset(load_task("fashion-near", "train"), 1000, 0)
        test = random_subset(load_task("fashion-near", "test"), 1000, 1)
        forget_n = args.forget or 32
    else:
        torch.manual_seed(0)
        name, kwargs = "vit_tiny_patch16_224", KWARGS
        base = build_vit(name, **kwargs)
        train, test = small_project(40, 20)
        forget_n = args.forget or 4
    never_seen = max(16, len(train) // 5)  # as the main job sizes it
    rows = []
    start = time.perf_counter()
    with torch_threads(1):
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as tmp:
                result = run_unlearning_audit(
                    base, train, test=test, run_dir=tmp, base_name=name, base_kwargs=kwargs,
                    num_shards=2, data_size=len(train) - never_seen, num_forget=forget_n,
                    num_never_seen=never_seen, num_shadows=4, train_config=TrainConfig(reset=True, epochs=6),
                    seed=seed, n_bootstrap=50)
            check = next(c for c in result.checks if c.id == "unlearning-mia")
            after = result.body.get("mia_before_after", [None, {}])[1] or {}
            rows.append({"seed": seed, "status": check.status.value, "p_auc": after.get("p_value"),
                         "p_tpr": after.get("p_value_tpr"), "auc_after": after.get("auc"),
                         "exact": [c.status.value for c in result.checks if c.id == "unlearning-exact"][0]})
            print(seed, rows[-1], flush=True)
    fails = sum(r["status"] == "FAIL" for r in rows)
    n = len(rows)
    lo = float(beta.ppf(0.025, fails, n - fails + 1)) if fails else 0.0
    hi = float(beta.ppf(0.975, fails + 1, n - fails)) if fails < n else 1.0
    summary = {"seeds": n, "fails": fails, "false_fail_rate": fails / n, "ci95": [lo, hi],
               "inconclusive": sum(r["status"] == "SKIP" for r in rows), "level": 0.05,
               "seconds": time.perf_counter() - start, "config": {"setting": args.setting, "model": name, **kwargs,
                                                                  "train": len(train), "test": len(test),
                                                                  "never_seen": never_seen, "forget": forget_n,
                                                                  "shards": 2, "shadows": 4}, "rows": rows}
    atomic_write_json(args.out, summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()
