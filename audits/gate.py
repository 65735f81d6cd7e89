"""Release-gate checks that need no attack: is the claim meaningful, is the data what the run needs.

- ``dp-delta``: δ must be below 1/N. A mechanism that publishes one random training record
  verbatim is (0, 1/N)-DP, so a δ ≥ 1/N allows exactly that: the guarantee is meaningless.
- ``dp-noise-unseeded``: the DP noise must come from operating-system entropy. Anyone who knows a
  noise seed can regenerate and subtract the noise; a seeded run is for reproducing results,
  never for release.
- ``data-classes``: every class has training examples, and the test set has no class the model
  was not trained on (its accuracy would be meaningless); test classes missing are noted.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from audits.results import Check, Status
from privtangent.data.dataset import ImageData


def delta_check(delta: float, dataset_size: int, section: str = "dp_statement") -> Check:
    ok = delta < 1.0 / dataset_size
    return Check("dp-delta", section, "δ is below 1/N (a meaningful guarantee)", Status.PASS if ok else Status.FAIL,
                 f"δ = {delta:g} {'<' if ok else '≥'} 1/N = 1/{dataset_size} = {1.0 / dataset_size:.3g}"
                 + ("" if ok else ": a mechanism that publishes one random training record verbatim is (0, 1/N)-DP, "
                                  "so this guarantee allows exactly that; use δ ≪ 1/N (e.g. 1/(10·N))"))


def noise_check(seeded: bool, section: str = "dp_statement") -> Check:
    return Check("dp-noise-unseeded", section, "the DP noise was drawn from operating-system entropy",
                 Status.FAIL if seeded else Status.PASS,
                 "NOT FOR RELEASE: the noise was seeded (noise_seed); anyone who knows the seed can remove it, so "
                 "the model has no DP guarantee" if seeded else "noise from OS entropy, independent of every seed")


def class_counts(data: ImageData) -> dict[str, int]:
    counts = Counter(int(y) for y in data.labels.tolist())
    return {name: counts.get(i, 0) for i, name in enumerate(data.classes)}


def data_section(train: ImageData, test: ImageData, record: dict[str, Any]) -> tuple[dict[str, Any], Check]:
    """The report's data section (what was actually loaded) and the data-classes check."""
    train_counts, test_counts = class_counts(train), class_counts(test)
    unknown = list(record.get("test_only_classes") or [])
    empty = [c for c, n in train_counts.items() if n == 0] + list(record.get("empty_classes") or [])
    missing_in_test = [c for c, n in test_counts.items() if n == 0]
    problems = []
    if empty:
        problems.append(f"no training example for class(es) {', '.join(sorted(set(empty)))}")
    if unknown:
        problems.append(f"the test set has class(es) the training set lacks: {', '.join(unknown)} (the model cannot "
                        "predict them, so its accuracy would be meaningless)")
    note = (f"; no test example for {', '.join(missing_in_test)} (their accuracy is not measured)"
            if missing_in_test else "")
    check = Check("data-classes", "data", "every class has training examples and the test set has no unknown class",
                  Status.FAIL if problems else Status.PASS,
                  ("; ".join(problems) if problems else
                   f"{len(train_counts)} classes, each with training examples") + note)
    section = {
        "source": record.get("description") or record.get("task") or record.get("train_folder"),
        "training_examples": len(train), "test_examples": len(test), "subset": record.get("subset"),
        "classes": [{"class": c, "train": train_counts[c], "test": test_counts.get(c, 0)} for c in train_counts],
        "warnings": list(record.get("warnings") or []) + ([f"test-only classes: {', '.join(unknown)}"] if unknown else []),
    }
    return section, check


__all__ = ["class_counts", "data_section", "delta_check", "noise_check"]
