"""Membership-inference benchmark on the embedded default → ``benchmarks/results/mia.md``.

LiRA (and LOSS, RMIA) against non-private TAFT and DP TAFT at ε = 8, 3, 1 (full-batch DP-GD,
``DPConfig()``), with the ε lower bounds of the black-box audit; and the time to train one
tangent shadow model vs one non-linear shadow model (the same parameters, data and epochs).

    python benchmarks/mia.py                       # population 256, 64 canaries, 8 replicas
    python benchmarks/mia.py --population 128 --canaries 32 --models 4   # the audit's defaults

Every number in the markdown file comes from the run that wrote it; the machine's load
average is recorded beside the timings (shared machines make timings noisy).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fmt(x, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--population", type=int, default=256)
    parser.add_argument("--canaries", type=int, default=64)
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--timing-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mia.md")
    parser.add_argument("--run-dir", type=Path, default=None, help="cache the replicas' signals here")
    parser.add_argument("--skip-defaults", action="store_true",
                        help="do not time the three audits at their default sizes (what the main job runs)")
    args = parser.parse_args(argv)

    import torch

    from audits.population import make_population
    from audits.privacy.blackbox import run_privacy_audit
    from audits.shadows import time_shadow_training
    from privtangent.data import load_task
    from privtangent.features import FeatureCache
    from privtangent.models import pretrained_base
    from privtangent.threads import torch_threads
    from privtangent.train import TrainConfig

    command = "python benchmarks/mia.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load_before = os.getloadavg()
    base, info = pretrained_base(progress=False)
    train = load_task("fashion-near", "train", limit=max(2000, args.population))
    test = load_task("fashion-near", "test", limit=1000)
    cache = FeatureCache()
    start = time.perf_counter()
    result = run_privacy_audit(base, train=train, test=test, population_size=args.population,
                               num_canaries=args.canaries, num_models=args.models, n_bootstrap=args.bootstrap,
                               measure_timing=False, seed=args.seed, run_dir=args.run_dir, cache=cache,
                               progress=True, threads=args.threads)
    audit_seconds = time.perf_counter() - start
    with torch_threads(args.threads):
        population = make_population(train, args.population, args.canaries, args.seed)
        timing = time_shadow_training(base, population, TrainConfig(), seed=args.seed, cache=cache,
                                      repeats=args.timing_repeats)
    defaults = None
    if not args.skip_defaults:
        import tempfile

        from audits.unlearning import run_unlearning_audit
        from audits.utility import run_utility_audit

        defaults = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, fn, kwargs in (("privacy (ε ∈ {1, 3, 8} + non-private reference)", run_privacy_audit, {}),
                                     ("unlearning", run_unlearning_audit, {"run_dir": Path(tmp) / "unlearning"}),
                                     ("utility (full, fc × ε ∈ {1, 3, 8} × Ours/Reg)", run_utility_audit, {})):
                t0 = time.perf_counter()
                res = fn(base, threads=args.threads, **kwargs)
                defaults[name] = (time.perf_counter() - t0, [f"{c['id']} {c['status']}" for c in res["checks"]])
    load_after = os.getloadavg()
    body = result["body"]

    lines = [
        "# Membership inference on the embedded default",
        "",
        f"Command: `{command}` (from the repository root).",
        "",
        f"Machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, {args.threads} torch thread(s), "
        f"Python {platform.python_version()}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        f"(a shared machine: ~8 engineers' jobs; timings are inflated by that load and vary run to run).",
        "",
        f"Base model: the embedded default ViT ({info['model']['kwargs']['embed_dim']}-dim, depth "
        f"{info['model']['kwargs']['depth']}), pretrained on Fashion-MNIST 0–4. Task: Fashion-MNIST 5–9.",
        "",
        f"Audit population: {args.population} training samples, {args.canaries} of them mislabelled canaries; "
        f"{args.models} replicas per procedure, each trained on a random half (every sample in with probability ½); "
        f"each replica attacked with the other {args.models - 1} as shadow models (leave-one-out), scores pooled "
        f"({body['rows'][0] and body['attacks'][0]['members']} members / {body['attacks'][0]['nonmembers']} "
        f"non-members). Headline attack: {body['setup']['headline_attack']}. Intervals: {args.bootstrap} bootstrap "
        f"replicates, 95 %. Non-private: `TrainConfig()` (TAFT-1, 10 epochs, Adam lr 1e-2, rescaled square loss). "
        f"DP: `DPConfig()` (tangent, J·Δw output, full-batch DP-GD, 50 steps, C = 1, δ = 1e-5, PRV accountant).",
        "",
        "## LiRA against each procedure (headline attack; ε lower bound = max of threshold and one-run bounds)",
        "",
        "| model | claimed ε | σ | AUC (95% CI) | TPR @ 0.1% FPR | TPR @ 1% FPR | ε lower bound | audit power | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    sigma = {p["model"]: p["noise_multiplier"] for p in body["procedures"]}
    for r in body["rows"]:
        lines.append(f"| {r['model']} | {fmt(r['epsilon_claimed'])} | {fmt(sigma.get(r['model']))} | "
                     f"{r['auc']:.3f} ({r['auc_ci_lo']:.3f}–{r['auc_ci_hi']:.3f}) | {r['tpr_at_fpr_0_1pct']:.3f} | "
                     f"{r['tpr_at_fpr_1pct']:.3f} | {r['epsilon_lb']:.3f} | {r['audit_power']:.2f} | {r['status']} |")
    lines += ["", "## Every attack", "",
              "| model | attack | AUC (95% CI) | TPR @ 0.1% FPR | TPR @ 1% FPR |", "|---|---|---|---|---|"]
    for r in body["attacks"]:
        lines.append(f"| {r['model']} | {r['attack']} | {r['auc']:.3f} ({r['auc_ci_lo']:.3f}–{r['auc_ci_hi']:.3f}) | "
                     f"{r['tpr_at_fpr_0_1pct']:.3f} | {r['tpr_at_fpr_1pct']:.3f} |")
    lines += ["", "## The two ε lower bounds", "",
              "| model | threshold ε_lb | threshold power | one-run m | guesses | correct | one-run ε_lb | one-run power |",
              "|---|---|---|---|---|---|---|---|"]
    for t, o in zip(body["threshold"]["rows"], body["one_run"]["rows"]):
        lines.append(f"| {t['model']} | {t['epsilon_lb']:.3f} | {t['audit_power']:.2f} | {o['num_canaries']} | "
                     f"{o['num_guesses']} | {o['num_correct']} | {o['epsilon_lb']:.3f} | {o['audit_power']:.2f} |")
    lines += [
        "", f"Each bound at {100 * body['setup']['confidence_per_bound']:g} % confidence (the verdict at 95 %). "
        "The threshold bound treats pooled (replica, sample) pairs as independent trials (the usual heuristic); "
        "the one-run bound (Steinke et al. 2023) does not need that.",
        "",
        "## Training time per replica (median over the replicas of the audit above)", "",
        "| model | seconds per replica |", "|---|---|"]
    for p in body["procedures"]:
        lines.append(f"| {p['model']} | {p['train_seconds_per_model']:.2f} |")
    lines += [
        "", f"Whole audit (4 procedures × {args.models} replicas, attacks, bootstrap): {audit_seconds:.0f} s.",
        "",
        "## One tangent shadow model vs one non-linear shadow model", "",
        f"Same random half of the population ({timing['train_samples']} samples), {timing['epochs']} epochs, batch "
        f"{timing['batch_size']}, the last block (+ final norm + head) trained, each method's recipe; best of "
        f"{args.timing_repeats}.",
        "",
        "| shadow model | seconds |", "|---|---|",
        f"| tangent ({timing['tangent_method']}), shared prefix features | {timing['tangent_seconds']:.3f} |",
        f"| non-linear ({timing['nonlinear_method']}), shared prefix features | {timing['nonlinear_seconds']:.3f} |",
        f"| non-linear ({timing['nonlinear_method']}), prefix run on its own subset | "
        f"{timing['nonlinear_uncached_seconds']:.3f} |",
        f"| (prefix features of the whole population, once) | {timing['population_features_seconds']:.3f} |",
        "",
        f"Tangent / non-linear (both cached): {timing['tangent_over_nonlinear']:.2f}.",
        "",
    ]
    if defaults:
        lines += ["## The audits at their default sizes (what `privtangent audit` runs)", "",
                  "Fresh caches except the base model; the embedded default; the same machine and load as above.", "",
                  "| audit | seconds | checks |", "|---|---|---|"]
        for name, (seconds, checks) in defaults.items():
            lines.append(f"| {name} | {seconds:.0f} | {', '.join(checks)} |")
        lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
