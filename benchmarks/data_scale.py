"""Data of real size: peak memory and time of streamed image folders + disk-backed prefix features.

    python benchmarks/data_scale.py [--sizes 2000,20000] [--root /tmp/privtangent-data-scale]
                                    [--workers 1] [--threads 1] [--memory-mb 0] [--dtype float32]
                                    [--batch-size 128] [--physical-batch-size 128]
                                    [--old-tree DIR [--old-max 20000]] [--out benchmarks/results/data_scale.md]

Writes Fashion-MNIST classes 5–9 (training split, in file order; past its 30,000 images the same
images again under other names) as 32×32 RGB PNG image folders of N images each (under
``--root``, reused when present), then for each N, in a child process
of its own (so that each N has its own peak RSS):

1. opens the folder lazily (``open_image_folder``, timm's eval transform for the model) and hashes it;
2. computes and caches the prefix features (``FeatureCache`` on disk under ``--root``,
   in-memory budget ``--memory-mb``; decoding in ``--workers`` DataLoader processes);
3. runs one epoch of Poisson DP-SGD (expected batch 256, σ = 1, C = 1) on the last block of the
   tangent model through ``privtangent.dp.training.fit_dp``, which reads its batches from the cache;
4. times gathering one more epoch of Poisson batches alone (the share of an epoch spent reading rows).

The model: timm ``vit_small_patch16_224`` width (embed 384, 6 heads) with depth 4, patch 4,
img 32, in_chans 3, random init (seed 0); the prefix is blocks 0–2, the last block is trained.
Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the child (the decoding workers'
peak is reported apart). Acceptance, each N against the smallest: peak RSS grows ≤ 25 %, and
seconds per epoch ≤ 1.3 × linear in N (reported in wall-clock and in CPU time: on a shared
machine the wall clock also measures the other sessions' load).

The DP step runs in physical micro-batches of ``--physical-batch-size``: a logical Poisson batch
is Binomial(N, q), and over more steps (a larger N at the same q·N) its largest draw grows, so
without micro-batches a step's peak memory would grow with the number of steps, not with the data.

``--old-tree DIR`` also runs each N ≤ ``--old-max`` through the eager path of a privtangent
checkout at DIR (``load_image_folder`` decoding every image into one tensor + ``FeatureCache`` in
memory), for comparison. ``--sizes 200,2000`` is a quick check.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
FASHION = Path(os.environ.get("PRIVTANGENT_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
CLASSES = ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # Fashion-MNIST labels 5–9
EXPECTED_BATCH = 256
PREFIX_BLOCKS = 3


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def write_folder(folder: Path, n: int) -> Path:
    """The first ``n`` training images of Fashion-MNIST 5–9 as 32×32 RGB PNGs, one folder per class.

    Past its 30,000 images the same images are written again under new names (``01234-1.png``):
    other files, the same pixels (enough to measure memory and time).
    """
    from PIL import Image

    done = folder / ".complete"
    if done.exists():
        return folder
    images = _idx(FASHION / "train-images-idx3-ubyte.gz")
    labels = _idx(FASHION / "train-labels-idx1-ubyte.gz")
    chosen = np.flatnonzero(labels >= 5)
    for name in CLASSES:
        (folder / name).mkdir(parents=True, exist_ok=True)
    for k in range(n):
        i, copy = int(chosen[k % len(chosen)]), k // len(chosen)
        img = Image.fromarray(images[i]).resize((32, 32), Image.BILINEAR).convert("RGB")
        img.save(folder / CLASSES[labels[i] - 5] / (f"{i:05d}.png" if copy == 0 else f"{i:05d}-{copy}.png"))
    done.write_text(str(n))
    return folder


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def build_model():
    import timm
    import torch

    torch.manual_seed(0)
    return timm.create_model("vit_small_patch16_224", pretrained=False, img_size=32, patch_size=4, in_chans=3,
                             depth=4, num_classes=len(CLASSES)).eval()


def child(args: argparse.Namespace) -> dict:
    """One N, one path, in this process: returns the measurements."""
    import torch

    from privtangent.dp import DPConfig, fit_dp
    from privtangent.features import FeatureCache

    torch.set_num_threads(args.threads)
    folder = args.root / f"n{args.child}"
    row: dict = {"n": args.child, "path": args.path, "rss_after_import_mb": peak_rss_mb()}
    model = build_model()
    start = time.perf_counter()
    if args.path == "old":  # the eager path: every image decoded into one tensor, features in memory
        from privtangent.data import load_image_folder

        data = load_image_folder(folder, 32, 3)
        cache = FeatureCache(batch_size=args.batch_size)
    else:
        from privtangent.data import open_image_folder

        data = open_image_folder(folder, model=model)
        data.content_hash()
        dtype = torch.float16 if args.dtype == "float16" else torch.float32
        cache_dir = args.root / "cache" / f"n{args.child}-{args.dtype}"
        shutil.rmtree(cache_dir, ignore_errors=True)  # measure the computation, not an earlier run's file
        cache = FeatureCache(cache_dir, batch_size=args.batch_size,
                             memory_bytes=args.memory_mb << 20, dtype=dtype, num_workers=args.workers)
    row["open_seconds"] = time.perf_counter() - start
    row["rss_after_open_mb"] = peak_rss_mb()
    start = time.perf_counter()
    feats = cache.features(model, PREFIX_BLOCKS, data)
    row["feature_seconds"] = time.perf_counter() - start
    row["features_type"] = type(feats).__name__
    row["features_shape"] = list(feats.shape)
    row["rss_after_features_mb"] = peak_rss_mb()
    del feats
    config = DPConfig(tangent=True, blocks=1, regime="full", epochs=1, sample_rate=min(1.0, EXPECTED_BATCH / len(data)),
                      noise_multiplier=1.0, target_epsilon=None, max_grad_norm=1.0, noise_seed=0,
                      physical_batch_size=args.physical_batch_size)
    cpu_start, step_cpu = time.process_time(), []
    result = fit_dp(model, data, config, cache=cache, progress=False,
                    on_step=lambda _: step_cpu.append(time.process_time()))
    row.update(epoch_seconds=result.metrics["train_seconds"], steps=result.metrics["steps"],
               epoch_cpu_seconds=step_cpu[-1] - cpu_start)
    row.update(read_pass(cache.features(model, PREFIX_BLOCKS, data), config.sample_rate, row["steps"]))
    row.update(cache_hits=cache.hits, cache_misses=cache.misses, peak_rss_mb=peak_rss_mb(),
               worker_peak_rss_mb=peak_rss_mb(resource.RUSAGE_CHILDREN), load_5m=os.getloadavg()[1])
    return row


def read_pass(features, sample_rate: float, steps: int) -> dict:
    """Wall and CPU seconds to gather one epoch of Poisson batches (the epoch's share spent reading rows)."""
    import torch

    from privtangent.dp.sampling import poisson_sample

    generator = torch.Generator().manual_seed(1)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        features[poisson_sample(len(features), sample_rate, generator)]
    return {"read_seconds": time.perf_counter() - wall, "read_cpu_seconds": time.process_time() - cpu}


def run_child(args: argparse.Namespace, n: int, path: str, tree: Path) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(n), "--path", path, "--root", str(args.root),
               "--workers", str(args.workers), "--threads", str(args.threads), "--memory-mb", str(args.memory_mb),
               "--dtype", args.dtype, "--batch-size", str(args.batch_size),
               "--physical-batch-size", str(args.physical_batch_size)]
    env = {**os.environ, "PYTHONPATH": str(tree), "PRIVTANGENT_PROGRESS": "0"}
    print("$", " ".join(command), f"(PYTHONPATH={tree})", flush=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"child for N={n} ({path}) failed:\n{done.stderr[-4000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(row), flush=True)
    return row


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def scaling_lines(new: list[dict]) -> list[str]:
    """Each larger N against the smallest: peak RSS growth, epoch time against linear (wall and CPU)."""
    small = new[0]
    lines = []
    for large in new[1:]:
        growth = large["peak_rss_mb"] / small["peak_rss_mb"] - 1
        linear = large["n"] / small["n"]
        wall = large["epoch_seconds"] / small["epoch_seconds"] / linear
        cpu = large["epoch_cpu_seconds"] / small["epoch_cpu_seconds"] / linear
        lines.append(
            f"- N = {small['n']:,} → {large['n']:,}: peak RSS {small['peak_rss_mb']:.0f} → {large['peak_rss_mb']:.0f} MB "
            f"({100 * growth:+.1f} %; ≤ +25 %: {verdict(growth <= 0.25)}); seconds per epoch {wall:.2f} × linear in "
            f"wall-clock time ({verdict(wall <= 1.3)}), {cpu:.2f} × linear in CPU time ({verdict(cpu <= 1.3)}); "
            f"≤ 1.3 × linear required.")
    return lines


def write_report(rows: list[dict], args: argparse.Namespace, command: str, load: tuple) -> None:
    lines = [
        "# Data of real size: streamed image folders and disk-backed prefix features", "",
        f"Command: `{command}`  ",
        f"Date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}; {platform.node()}, "
        f"{os.cpu_count()} CPUs, load average before {load[0]:.2f}; torch threads {args.threads}, "
        f"decoding workers {args.workers}, in-memory feature budget {args.memory_mb} MiB, stored {args.dtype}; "
        f"prefix batch {args.batch_size}, DP physical batch {args.physical_batch_size}.", "",
        "Model: vit_small width (embed 384, 6 heads), depth 4, patch 4, 32×32 RGB, random init; prefix = blocks 0–2 "
        "(features 65 tokens × 384 per image); one epoch of Poisson DP-SGD (q = 256/N, σ = 1, C = 1) on the tangent "
        "model's last block via `fit_dp`. Data: Fashion-MNIST 5–9 written as PNG folders (past 30,000 images the "
        "same images again under other names). Each row is one child process; `new`: streamed folder + features on "
        "disk read by rows; `old`: the eager path of the checkout before streaming (all images and all features in "
        "RAM). CPU s: process CPU time of the same span; the load average is the machine's (other sessions included) "
        "over the 5 minutes before the row ended.",
        "",
        "| path | N | open + hash s | features s | epoch s (CPU s) | steps | reading the epoch's batches s (CPU s) "
        "| features | RSS after features MB | peak RSS MB | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['path']} | {r['n']:,} | {r['open_seconds']:.1f} | {r['feature_seconds']:.1f} | "
                     f"{r['epoch_seconds']:.1f} ({r['epoch_cpu_seconds']:.1f}) | {r['steps']} | "
                     f"{r['read_seconds']:.2f} ({r['read_cpu_seconds']:.2f}) | {r['features_type']} | "
                     f"{r['rss_after_features_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['load_5m']:.1f} |")
    lines += ["", *scaling_lines([r for r in rows if r["path"] == "new"])]
    old = [r for r in rows if r["path"] == "old"]
    if old:
        lines.append(f"- Old eager path (checkout {args.old_tree}): peak RSS "
                     + ", ".join(f"{r['peak_rss_mb']:.0f} MB at N = {r['n']:,}" for r in old) + ".")
    lines.append(f"- Decoding workers' peak RSS (RUSAGE_CHILDREN, forked from the measuring process, so most of it "
                 f"is shared with it): {max(r['worker_peak_rss_mb'] for r in rows):.0f} MB at most.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,20000", help="comma-separated N (default 2000,20000)")
    parser.add_argument("--root", type=Path, default=Path("/tmp/privtangent-data-scale"),
                        help="where the PNG folders and the feature cache go")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader decoding processes (default 1)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("PRIVTANGENT_THREADS", 1)))
    parser.add_argument("--memory-mb", type=int, default=0,
                        help="in-memory feature budget (default 0: every batch is read from disk)")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    parser.add_argument("--batch-size", type=int, default=128, help="images per prefix pass (default 128)")
    parser.add_argument("--physical-batch-size", type=int, default=128,
                        help="DP-SGD micro-batch (default 128): bounds a step's memory whatever the Poisson batch")
    parser.add_argument("--old-tree", type=Path, default=None, help="also run the eager path of this checkout")
    parser.add_argument("--old-max", type=int, default=20000,
                        help="largest N for the old path (default 20000: it holds every feature in RAM)")
    parser.add_argument("--out", type=Path, default=RESULTS / "data_scale.md")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--path", choices=["new", "old"], default="new", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args)))
        return
    command = "python benchmarks/data_scale.py " + " ".join(sys.argv[1:])
    load = os.getloadavg()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    tree = Path(__file__).resolve().parent.parent
    rows = []
    for n in sizes:
        write_folder(args.root / f"n{n}", n)
    for n in sizes:
        rows.append(run_child(args, n, "new", tree))
    if args.old_tree is not None:
        for n in [n for n in sizes if n <= args.old_max]:
            rows.append(run_child(args, n, "old", args.old_tree))
    write_report(rows, args, command, load)


if __name__ == "__main__":
    main()
