"""Benchmark: the closed-form tangent forward of the last ViT-L/16 block vs timm and torch.func.jvp.

Shapes are those of timm's ``vit_large_patch16_224`` (pretrained=False, random init, seeded):
the linearized part is the last block + final norm + head (1000 classes); its input is a
cached block input of shape (batch, 197, 1024), as the FeatureCache would hold it (random
values: the cost does not depend on them). Δw is random and non-zero in every parameter
("full" regime), so every term of the tangent is computed. All paths run in float32.

Rows (medians over repetitions, the paths interleaved within each repetition so that the
machine's load drifts evenly over all of them):

- timm plain forward of the block + norm + head (fused SDPA attention; and math attention);
- ours: the tangent forward (primal + tangent) on every row, and CLS-only (the default for a
  token-pooled ViT: queries, attention and MLP of the last block for the CLS row only);
- ``torch.func.jvp`` of the same function (timm's forward, math attention, along Δw), and
  ``torch.func.jvp`` of our CLS-only primal (the strongest autodiff baseline);
- training steps (rescaled square loss, forward + backward to the trained parameters):
  plain non-linear fine-tuning of the same parameters (timm forward); ours CLS-only; ours with
  the primal cache (``privtangent.tangent.primal_cache``: per-sample primal quantities of the
  last block computed once, only the tangent per step), whose one-off build is reported too.

On a GPU (when one is visible) the same rows run at batch 32; otherwise they are marked
"not measured (no GPU)". Writes ``benchmarks/results/tangent_forward.md`` (or ``--out``).

    python benchmarks/tangent_forward.py            # the full run (a few minutes on 2 cores)
    python benchmarks/tangent_forward.py --quick    # a smoke run: 2 repetitions, batch 2
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import timm
import torch
from torch.func import jvp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from privtangent.losses import rescaled_square_loss  # noqa: E402
from privtangent.tangent import Deltas, linearize, tangent_forward  # noqa: E402
from privtangent.tangent.primal_cache import build_primal_cache, cached_forward  # noqa: E402
from privtangent.tangent.reference import math_attention, plain_function  # noqa: E402

MODEL = "vit_large_patch16_224"
ROOT = Path(__file__).resolve().parents[1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(device: torch.device, seed: int = 0):
    """ViT-L/16 (random init), keeping only its last block (the prefix is the cached input)."""
    torch.manual_seed(seed)
    model = timm.create_model(MODEL, pretrained=False).eval()
    depth = len(model.blocks)
    # keep the last block only (renamed blocks.0: a slice of nn.Sequential would keep the key "23");
    # same block, same shapes, and the 23 frozen blocks' memory is freed
    model.blocks = torch.nn.Sequential(model.blocks[depth - 1])
    model.requires_grad_(False)
    tm = linearize(model, blocks=1, regime="full").to(device)
    assert "blocks.0.attn.qkv.weight" in tm.delta_names and "blocks.0.mlp.fc2.bias" in tm.delta_names
    g = torch.Generator().manual_seed(seed + 1)
    tm.load_delta({n: torch.randn(t.shape, generator=g) * 1e-3 for n, t in tm.named_deltas().items()})
    return model.to(device), tm, depth


def timm_forward(model, feats):
    return model.forward_head(model.norm(model.blocks[-1](feats)))


def make_paths(model, tm, feats, labels):
    """name → (zero-argument callable, grad enabled?)."""
    delta = tm.named_deltas()
    names = list(delta)
    point = {n: p.detach() for n, p in model.named_parameters() if n in delta}
    tangents = tuple(delta[n].detach() for n in names)
    run_timm = plain_function(tm, feats)  # timm's forward as a function of the trained parameters

    def jvp_timm():
        return jvp(lambda *v: run_timm(dict(zip(names, v))), tuple(point[n] for n in names), tangents)

    def cls_only_primal(*values):
        """Our CLS-only primal (no Δ, no tangent) as a function of the parameters, for jvp."""
        params = {**dict(model.named_parameters()), **dict(zip(names, values))}
        with torch.nn.utils.stateless._reparametrize_module(model, params):
            x, _ = tangent_forward(model.blocks[-1], feats, None, Deltas({}), cls_only=True)
            x, _ = tangent_forward(model.norm, x, None, Deltas({}))
            y, _ = tangent_forward(model.head, x[:, 0], None, Deltas({}))
        return y

    def jvp_cls_only():
        return jvp(cls_only_primal, tuple(point[n] for n in names), tangents)

    def ours(cls_only: bool):
        def run():
            tm.cls_only = cls_only
            try:
                return tm.forward_features(feats)
            finally:
                tm.cls_only = True
        return run

    # the non-linear ("Reg") training step trains the same parameters of the original network
    trained = [p for n, p in model.named_parameters() if n in delta]

    def step_plain():
        for p in trained:
            p.requires_grad_(True)
        try:
            loss = rescaled_square_loss(timm_forward(model, feats), labels)
            grads = torch.autograd.grad(loss, trained)
        finally:
            for p in trained:
                p.requires_grad_(False)
        return grads

    def step_ours():
        loss = rescaled_square_loss(tm.forward_features(feats), labels)
        return torch.autograd.grad(loss, list(delta.values()))

    cache_box = {}

    def step_cached():
        loss = rescaled_square_loss(cached_forward(tm, cache_box["cache"]), labels)
        return torch.autograd.grad(loss, list(delta.values()))

    def build_cache():
        with torch.no_grad():
            cache_box["cache"] = build_primal_cache(tm, feats, batch_size=feats.shape[0])
        return cache_box["cache"]

    def timm_math():
        with math_attention(model):
            return timm_forward(model, feats)

    forward = {
        "timm plain forward (fused SDPA)": lambda: timm_forward(model, feats),
        "timm plain forward (math attention)": timm_math,
        "ours: tangent forward, every row": ours(False),
        "ours: tangent forward, CLS-only": ours(True),
        "torch.func.jvp of timm forward (math attention)": jvp_timm,
        "torch.func.jvp of our CLS-only primal": jvp_cls_only,
    }
    training = {
        "train step: plain NLFT, timm forward + backward": step_plain,
        "train step: ours CLS-only, forward + backward": step_ours,
        "train step: ours with primal cache, forward + backward": step_cached,
    }
    return forward, training, build_cache


def measure(paths: dict[str, Callable], reps: int, device: torch.device,
            grad: set[str] = frozenset()) -> dict[str, list[float]]:
    """Seconds per call of each path; every repetition runs every path once (interleaved), so
    that load drifts on a shared machine affect all paths alike. Paths named in ``grad`` run with
    autograd enabled (training steps), the others under ``torch.no_grad``."""
    times: dict[str, list[float]] = {name: [] for name in paths}

    def call(name: str, fn: Callable) -> None:
        with contextlib.nullcontext() if name in grad else torch.no_grad():
            fn()

    for name, fn in paths.items():  # warm-up (allocator, kernels)
        call(name, fn)
    sync(device)
    for _ in range(reps):
        for name, fn in paths.items():
            sync(device)
            start = time.perf_counter()
            call(name, fn)
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def check_agreement(model, tm, feats, forward) -> dict[str, float]:
    """Relative differences between the paths that compute the same thing (float32)."""
    with torch.no_grad():
        ours_cls = tm.forward_features(feats, output="pair")
        tm.cls_only = False
        ours_all = tm.forward_features(feats, output="pair")
        tm.cls_only = True
        base = timm_forward(model, feats)
    ref_primal, ref_tangent = forward["torch.func.jvp of timm forward (math attention)"]()
    cache = build_primal_cache(tm, feats, batch_size=feats.shape[0])
    cached = cached_forward(tm, cache, output="pair")

    def rel(a, b):
        return ((a - b).norm() / b.norm()).item()

    return {
        "CLS-only vs every row, primal": rel(ours_cls[0], ours_all[0]),
        "CLS-only vs every row, tangent": rel(ours_cls[1], ours_all[1]),
        "ours (CLS-only) vs timm forward, primal": rel(ours_cls[0], base),
        "ours (CLS-only) vs torch.func.jvp, tangent": rel(ours_cls[1], ref_tangent),
        "primal cache vs full tangent forward, tangent": rel(cached[1].detach(), ours_cls[1]),
    }


def run_device(device: torch.device, batch: int, reps: int, seed: int = 0):
    model, tm, depth = build(device, seed)
    g = torch.Generator().manual_seed(seed + 2)
    feats = torch.randn(batch, 197, model.embed_dim, generator=g).to(device)
    labels = torch.randint(0, model.num_classes, (batch,), generator=g).to(device)
    forward, training, build_cache = make_paths(model, tm, feats, labels)
    agreement = check_agreement(model, tm, feats, forward)
    build_times = measure({"build": build_cache}, max(3, reps // 2), device)["build"]
    times = measure({**forward, **training}, reps, device, grad=set(training))
    cache = build_cache()
    info = {
        "depth": depth,
        "cache_build": build_times,
        "cache_bytes_per_sample": cache.nbytes() / batch,
        "feature_bytes_per_sample": feats[0].numel() * feats.element_size(),
        "delta_params": sum(p.numel() for p in tm.delta_parameters()),
    }
    return times, agreement, info


def fmt(seconds: float) -> str:
    return f"{seconds:.4f}" if seconds < 1 else f"{seconds:.3f}"


def table(times: dict[str, list[float]], batch: int, device_label: str) -> list[str]:
    med = {k: statistics.median(v) for k, v in times.items()}
    plain, plain_step = med["timm plain forward (fused SDPA)"], med["train step: plain NLFT, timm forward + backward"]
    ours_cls, ours_step = med["ours: tangent forward, CLS-only"], med["train step: ours CLS-only, forward + backward"]
    rows = []
    for name, m in med.items():
        is_step = name.startswith("train step")
        base = plain_step if is_step else plain
        ours = ours_step if is_step else ours_cls
        rows.append(f"| {name} | {device_label} | {batch} | {fmt(m)} | {fmt(min(times[name]))} | "
                    f"{m / base:.2f}× | {m / ours:.2f}× |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="CPU batch size (default 8)")
    parser.add_argument("--gpu-batch", type=int, default=32, help="GPU batch size (default 32)")
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions per path (default 7)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 2, 2 repetitions, no file unless --out")
    parser.add_argument("--out", type=Path, default=None, help="markdown output file")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.gpu_batch, args.reps = 2, 4, 2
    out = args.out or (None if args.quick else ROOT / "benchmarks" / "results" / "tangent_forward.md")
    if args.threads:
        torch.set_num_threads(args.threads)
    command = " ".join(["python benchmarks/tangent_forward.py", *(argv if argv is not None else sys.argv[1:])])
    load_start, started = os.getloadavg(), time.time()

    cpu_times, cpu_agree, cpu_info = run_device(torch.device("cpu"), args.batch, args.reps)
    gpu = None
    if torch.cuda.is_available():
        gpu = run_device(torch.device("cuda"), args.gpu_batch, args.reps)
    load_end, elapsed = os.getloadavg(), time.time() - started

    lines = [
        "# Tangent forward benchmark (ViT-L/16 shapes, last block + final norm + head)",
        "",
        f"Command (from the repository root): `{command}`",
        "",
        f"- Date: {datetime.datetime.now().isoformat(timespec='seconds')}; wall time of the run {elapsed:.0f} s",
        f"- Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} intra-op threads), timm {timm.__version__}, Python {platform.python_version()}",
        f"- Load average (1/5/15 min) at start {tuple(round(v, 2) for v in load_start)}, "
        f"at end {tuple(round(v, 2) for v in load_end)} — the machine is shared; "
        "compare ratios within this run, not absolute seconds across runs",
        f"- Model: timm `{MODEL}` (pretrained=False, random init, seed 0), {cpu_info['depth']} blocks; "
        "the linearized part is the last block + final norm + head (1000 classes); regime full "
        f"({cpu_info['delta_params']:,} Δw parameters, random, non-zero); float32",
        "- Input: a cached block input (the frozen prefix's output) of shape "
        f"({args.batch}, 197, 1024) on CPU, random values",
        f"- Statistic: median (and minimum) of {args.reps} repetitions after one warm-up; all paths (forward "
        "and training steps) are interleaved within each repetition",
        *([f"- Single-threaded on purpose (`--threads 1`): the {os.cpu_count()} cores are shared with other jobs "
           "(load above); with 2 intra-op threads, OpenMP barrier waits under that load inflate the paths made "
           "of many small operations (the primal-cache step most) by up to ~10x and make the ratios unstable"]
          if torch.get_num_threads() == 1 and (os.cpu_count() or 1) > 1 else []),
        "",
        "| path | device | batch | median s | min s | vs timm plain (same kind) | vs ours CLS-only (same kind) |",
        "|---|---|---|---|---|---|---|",
        *table(cpu_times, args.batch, "CPU"),
    ]
    if gpu is None:
        lines += [f"| every path above | GPU | {args.gpu_batch} | not measured (no GPU) | | | |"]
    else:
        gpu_times, gpu_agree, _ = gpu
        lines += table(gpu_times, args.gpu_batch, torch.cuda.get_device_name())
    med = {k: statistics.median(v) for k, v in cpu_times.items()}
    plain = med["timm plain forward (fused SDPA)"]
    ours_cls, ours_all = med["ours: tangent forward, CLS-only"], med["ours: tangent forward, every row"]
    jvp_timm, jvp_cls = med["torch.func.jvp of timm forward (math attention)"], med["torch.func.jvp of our CLS-only primal"]
    step_plain = med["train step: plain NLFT, timm forward + backward"]
    step_ours, step_cached = med["train step: ours CLS-only, forward + backward"], med["train step: ours with primal cache, forward + backward"]
    build = statistics.median(cpu_info["cache_build"])
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    lines += [
        "",
        "## Ratios (CPU, this run)",
        "",
        f"- Ours CLS-only tangent forward / timm plain forward: **{ours_cls / plain:.2f}×** "
        f"(goal ≤ 1: {verdict(ours_cls <= plain)}). Ours on every row / timm plain: {ours_all / plain:.2f}×.",
        f"- torch.func.jvp of timm's forward / ours CLS-only: **{jvp_timm / ours_cls:.1f}×** "
        f"(goal ≥ 2: {verdict(jvp_timm >= 2 * ours_cls)}); / ours on every row: {jvp_timm / ours_all:.1f}×; "
        f"jvp of our own CLS-only primal / ours CLS-only: {jvp_cls / ours_cls:.1f}×.",
        f"- Training step (forward + backward), ours CLS-only / plain NLFT step: {step_ours / step_plain:.2f}×; "
        f"with the primal cache: {step_cached / step_plain:.3f}× of the plain step, "
        f"**{step_ours / step_cached:.0f}× faster** than ours without it.",
        f"- Primal cache: built once per data set in {fmt(build)} s for {args.batch} samples "
        f"({build / args.batch * 1000:.1f} ms per sample; it computes keys and values of every token once, "
        "like a primal forward); it holds "
        f"{cpu_info['cache_bytes_per_sample'] / 2**20:.2f} MiB per sample (the cached block input itself: "
        f"{cpu_info['feature_bytes_per_sample'] / 2**20:.2f} MiB). It pays for itself after "
        f"{build / max(step_ours - step_cached, 1e-9):.1f} training steps' worth of the same samples.",
        "",
        "## Agreement of the paths (float32, relative L2 difference)",
        "",
        *(f"- {k}: {v:.1e}" for k, v in cpu_agree.items()),
        "",
        "(float32 at these scales; the float64 exactness checks, ≤ 1e-9 against jvp and ≤ 1e-13 for the "
        "primal cache, are in tests/test_linearize.py and tests/test_tangent_layers.py)",
        "",
        "## What each row is",
        "",
        "- *timm plain forward*: `model.forward_head(model.norm(model.blocks[-1](x)))`, no tangent, "
        "with timm's default fused `scaled_dot_product_attention`, and with its math attention path.",
        "- *ours: tangent forward*: `TangentViT.forward_features(x)` = f_w(x) + J·Δw in one modified "
        "forward pass (primal and tangent); *CLS-only* is the default for token pooling, *every row* "
        "sets `cls_only = False`.",
        "- *torch.func.jvp of timm forward*: `jvp` of timm's own modules as a function of the trained "
        "parameters (`privtangent.tangent.reference.plain_function`), along Δw; math attention, because "
        "fused SDPA has no forward-mode AD on CPU. *jvp of our CLS-only primal*: `jvp` of our CLS-only "
        "primal computation (no closed-form tangent), i.e. what autodiff costs with the CLS-only trick.",
        "- *train step*: rescaled square loss (κ = 15), gradients of the trained parameters by "
        "`torch.autograd.grad`: plain NLFT differentiates timm's forward w.r.t. the same parameters "
        "(non-linear fine-tuning); ours w.r.t. Δw through the tangent forward; *with primal cache* uses "
        "`privtangent.tangent.primal_cache.cached_forward` on a cache built once "
        "(`build_primal_cache`, timed separately above).",
    ]
    if gpu is None:
        lines += ["- GPU rows (batch 32): not measured — no GPU was visible to this run (`torch.cuda.is_available()` is False)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
