"""Benchmark: one DP-SGD step on the last ViT-L/16 block, tangent (ours) vs Opacus vs non-private.

Shapes are those of timm's ``vit_large_patch16_224`` (pretrained=False, random init, seeded),
built with ``depth=1``: its one block has exactly the shapes of ViT-L/16's last block (embed
1024, 16 heads, MLP 4096, 197 tokens), so no 300M-parameter prefix is allocated; the block
input is a cached feature tensor (batch, 197, 1024) as the FeatureCache would hold it. The
trained part is the block + final norm + a head for ``--classes`` classes ("full" regime,
12.6M parameters), cross-entropy loss, Adam; DP steps use σ = 1, C = 1, expected batch size =
batch (full-batch style), float32, CPU.

Rows (median seconds over ``--reps`` repetitions after one warm-up; the paths are interleaved
within each repetition, so the machine's load drifts evenly over all of them):

- tangent, non-private: ``forward_features(output="jvp")`` + backward + Adam;
- tangent, DP, ours: ``privtangent.dp.optimizer.DPOptimizer`` with the linear-site ("ghost")
  engine: ghost norms, clipped sum as one reweighted matmul per site, noise, Adam;
- tangent, DP, vmap: the same step with per-sample gradients materialized by
  ``torch.func.vmap(grad)`` (chunks of 8), the generic baseline;
- non-linear, non-private: the timm block (fused attention) + backward + Adam;
- non-linear, DP, Opacus: ``opacus.GradSampleModule`` hooks + ``opacus.optimizers.DPOptimizer``;
- non-linear, DP, ours: ``DPOptimizer`` with the ghost engine on the non-linear block.

Peak memory: each path first runs alone in a fresh subprocess (setup, one warm-up step, one
timed step) that reports its peak RSS (``VmHWM``; ``ru_maxrss`` would carry the parent's
peak over fork+exec) and its RSS after setup; the difference is the memory the step itself
needs on top of model and inputs.

    python benchmarks/dp_step.py                     # batch 32, 3 repetitions
    python benchmarks/dp_step.py --batch 8 --reps 2  # a lighter run for a loaded machine
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = "vit_large_patch16_224"
PATHS = {
    "tangent_nonprivate": "tangent, non-private step",
    "tangent_dp_ours": "tangent, DP step, ours (ghost engine)",
    "tangent_dp_vmap": "tangent, DP step, vmap(grad) per-sample gradients",
    "nonlinear_nonprivate": "non-linear, non-private step",
    "nonlinear_dp_opacus": "non-linear, DP step, Opacus GradSampleModule",
    "nonlinear_dp_ours": "non-linear, DP step, ours (ghost engine)",
}


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mib() -> float:
    """Peak RSS of this process image: VmHWM (ru_maxrss would carry the parent's peak over fork+exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(path: str, batch: int, classes: int, seed: int = 0):
    """(step function, description) for one path; all randomness seeded."""
    import timm

    from privtangent.dp.noise import mechanism_randomness
    from privtangent.dp.optimizer import DPOptimizer
    from privtangent.dp.per_sample import FeatureForward
    from privtangent.finetune import NonLinearViT
    from privtangent.losses import make_loss
    from privtangent.tangent import linearize

    torch.manual_seed(seed)
    base = timm.create_model(MODEL, pretrained=False, depth=1, num_classes=classes).eval()
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(batch, 197, base.embed_dim, generator=g)
    y = torch.randint(0, classes, (batch,), generator=g)
    loss = make_loss("ce")
    noise = mechanism_randomness(seed).generator  # seeded: a benchmark, not a release
    if path.startswith("tangent"):
        model = linearize(base, blocks=1, regime="full")
        with torch.no_grad():  # a non-zero Δw, as after some training
            for p in model.trainable_parameters().values():
                p.normal_(0, 1e-3, generator=g)
        output = "jvp"
    else:
        model = NonLinearViT(base, blocks=1, regime="full")
        output = "full"
    del base
    params = list(model.trainable_parameters().values())
    opt = torch.optim.Adam(params, lr=1e-3)
    if path.endswith("nonprivate"):
        def step():
            opt.zero_grad(set_to_none=True)
            loss(model.forward_features(feats, output=output), y).backward()
            opt.step()
        return step
    if path.endswith("_ours") or path.endswith("_vmap"):
        dp = DPOptimizer(model, opt, loss, noise_multiplier=1.0, max_grad_norm=1.0, expected_batch_size=batch,
                         generator=noise, output=output, method="vmap" if path.endswith("vmap") else "ghost",
                         physical_batch_size=batch, chunk_size=8)
        return lambda: dp.step(feats, y)
    if path == "nonlinear_dp_opacus":
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer as OpacusDPOptimizer

        gsm = GradSampleModule(FeatureForward(model), batch_first=True, loss_reduction="mean")
        gsm.train()
        popt = OpacusDPOptimizer(opt, noise_multiplier=1.0, max_grad_norm=1.0, expected_batch_size=batch)

        def step():
            popt.zero_grad(set_to_none=True)
            loss(gsm(feats), y).backward()
            popt.step()
        return step
    raise SystemExit(f"unknown path {path!r}")


def time_paths(paths: list[str], batch: int, classes: int, reps: int) -> dict[str, list[float]]:
    steps = {}
    for p in paths:
        steps[p] = build(p, batch, classes)
        steps[p]()  # warm-up
    times: dict[str, list[float]] = {p: [] for p in paths}
    for r in range(reps):
        for p in paths:
            t0 = time.perf_counter()
            steps[p]()
            times[p].append(time.perf_counter() - t0)
        print(f"repetition {r + 1}/{reps}: " + ", ".join(f"{p} {times[p][-1]:.2f}s" for p in paths), flush=True)
    return times


def memory_child(path: str, batch: int, classes: int) -> None:
    """Runs in a fresh subprocess: one path alone; prints a JSON line."""
    step = build(path, batch, classes)
    after_setup = _rss_mib()
    setup_peak = _maxrss_mib()
    step()
    t0 = time.perf_counter()
    step()
    seconds = time.perf_counter() - t0
    print(json.dumps({"path": path, "rss_after_setup_mib": after_setup, "setup_peak_mib": setup_peak,
                      "peak_mib": _maxrss_mib(), "seconds": seconds}))


def memory_paths(paths: list[str], batch: int, classes: int, threads: int) -> dict[str, dict]:
    out = {}
    for p in paths:
        cmd = [sys.executable, __file__, "--child", p, "--batch", str(batch), "--classes", str(classes),
               "--threads", str(threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
        if res.returncode != 0 or not lines:
            out[p] = {"error": (res.stderr or res.stdout)[-500:]}
        else:
            out[p] = json.loads(lines[-1])
        print(f"memory {p}: {out[p]}", flush=True)
    return out


def write_report(path: Path, args, times, memory, wall: float) -> str:
    med = {p: statistics.median(v) for p, v in times.items()}

    def ratio(a: str, b: str) -> str:
        return f"{med[a] / med[b]:.2f}×" if a in med and b in med else "—"

    lines = [
        "# DP step on the last ViT-L/16 block (CPU)",
        "",
        f"timm `{MODEL}` (pretrained=False, random init, seed 0) built with depth=1: the block has the shapes of "
        f"ViT-L/16's last block (D=1024, 16 heads, MLP 4096, 197 tokens); cached block input ({args.batch}, 197, 1024), "
        f"float32; trained: block + final norm + head ({args.classes} classes), 12.6M parameters ('full' regime); "
        "cross-entropy, Adam; DP steps: flat clipping C = 1, Gaussian noise σ = 1, divided by the batch size. "
        "The tangent model predicts with J·Δw (the paper's DP setting); its last block computes queries, attention "
        "and MLP for the CLS row only. "
        f"Median of {args.reps} repetitions after one warm-up, paths interleaved within each repetition; "
        f"torch {torch.__version__}, {args.threads} torch thread(s), {os.cpu_count()} cores, "
        f"load average at start {args.load_start}, at end {tuple(round(x, 1) for x in os.getloadavg())} "
        "(a shared machine: absolute times are noisy; compare the ratios).",
        "",
        f"Batch {args.batch}{' (the brief asked for 32; see the note below)' if args.batch != 32 else ''}.",
        "",
        "| path | median s | min s | max s | vs tangent non-private | peak RSS MiB | step memory MiB (peak − RSS after setup) |",
        "|---|---|---|---|---|---|---|",
    ]
    for p, label in PATHS.items():
        if p not in times:
            continue
        v = times[p]
        m = memory.get(p, {})
        peak = f"{m['peak_mib']:.0f}" if "peak_mib" in m else "—"
        extra = f"{m['peak_mib'] - m['rss_after_setup_mib']:.0f}" if "peak_mib" in m else "—"
        lines.append(f"| {label} | {med[p]:.3f} | {min(v):.3f} | {max(v):.3f} | "
                     f"{med[p] / med['tangent_nonprivate']:.2f}× | {peak} | {extra} |" if "tangent_nonprivate" in med
                     else f"| {label} | {med[p]:.3f} | {min(v):.3f} | {max(v):.3f} | — | {peak} | {extra} |")
    lines += [
        "",
        "Goals:",
        "",
        f"- DP tangent step (ours) / non-private tangent step: **{ratio('tangent_dp_ours', 'tangent_nonprivate')}** "
        "(goal ≤ 1.5×).",
        f"- Opacus DP step (non-linear) / DP tangent step (ours): **{ratio('nonlinear_dp_opacus', 'tangent_dp_ours')}** "
        "(goal ≥ 2×).",
        f"- For reference: Opacus / non-private non-linear {ratio('nonlinear_dp_opacus', 'nonlinear_nonprivate')}; "
        f"ghost engine on the non-linear block / non-private non-linear {ratio('nonlinear_dp_ours', 'nonlinear_nonprivate')}; "
        f"Opacus / ghost engine on the same non-linear block {ratio('nonlinear_dp_opacus', 'nonlinear_dp_ours')}; "
        f"vmap(grad) tangent DP / ghost tangent DP {ratio('tangent_dp_vmap', 'tangent_dp_ours')}.",
        "",
        "GPU rows: not measured (no GPU).",
        "",
        f"Whole benchmark: {wall / 60:.1f} min wall. Command:",
        "",
        "```",
        "python " + " ".join(sys.argv),
        "```",
        "",
    ]
    if args.note:
        lines.insert(-7, args.note + "\n")
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    (path.with_suffix(".json")).write_text(json.dumps({"times": times, "memory": memory, "batch": args.batch,
                                                       "classes": args.classes, "threads": args.threads,
                                                       "date": datetime.datetime.now().isoformat(),
                                                       "machine": platform.platform()}, indent=1))
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    parser.add_argument("--no-memory", action="store_true", help="skip the per-path memory subprocesses")
    parser.add_argument("--note", default="", help="a sentence added to the report")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dp_step.md"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    if args.child:
        memory_child(args.child, args.batch, args.classes)
        return
    args.load_start = tuple(round(x, 1) for x in os.getloadavg())
    start = time.perf_counter()
    memory = {} if args.no_memory else memory_paths(args.paths, args.batch, args.classes, args.threads)
    times = time_paths(args.paths, args.batch, args.classes, args.reps)
    print(write_report(Path(args.out), args, times, memory, time.perf_counter() - start))


if __name__ == "__main__":
    main()
