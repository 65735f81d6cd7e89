"""White-box gradient-canary audit vs black-box LiRA one-run audit on the embedded default.

    python benchmarks/whitebox.py                # → benchmarks/results/whitebox.md (+ whitebox.json)
    python benchmarks/whitebox.py --seeds 3 --no-blackbox --no-full-data

Measures, for claimed ε ∈ {1, 3, 8} (full-batch tangent DP-GD, the main job's configuration):
the ε lower bound, the tightness ε_lb / ε, the ideal tightness (the same bound on a simulated
perfect Gaussian mechanism with the same m, guesses, σ, T) and the seconds of

- the black-box one-run audit (LiRA replicas, ``audits.privacy.blackbox.run_privacy_audit``);
- the white-box audit (``audits.privacy.whitebox.run_whitebox_audit``), binomial and f-DP rows,
  at the product's defaults (m = 20,000, guesses by the pre-registered rule) and at the brief's
  sizes (m = 5,000, 500 guesses);

then the spread of the white-box tightness over seeds, the data-handling check (a canary run
with all training records vs a subset: the same scores), and the broken-DP controls.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audits.privacy import whitebox as wb  # noqa: E402


def load() -> tuple:
    from privtangent.data import load_task
    from privtangent.features import FeatureCache
    from privtangent.inputs import random_subset
    from privtangent.models import pretrained_base
    from privtangent.paths import feature_cache_dir

    base, _ = pretrained_base(progress=False)
    train = random_subset(load_task("fashion-near", "train"), 2000, 0)  # the main job's training set
    test = random_subset(load_task("fashion-near", "test"), 1000, 1)
    return base, train, test, FeatureCache(feature_cache_dir())


def dp_config():
    from privtangent.dp.config import DPConfig

    return DPConfig(reset=True)  # the main job's DP training (full-batch DP-GD, 50 steps, C = 1)


def whitebox(base, train, eps, **kw) -> dict:
    start = time.perf_counter()
    res = wb.run_whitebox_audit(base, train, dp_config(), epsilons=[eps], **kw)
    res["body"]["total_seconds"] = time.perf_counter() - start
    return res


def blackbox(base, train, test, cache, eps, args) -> dict:
    from audits.privacy.blackbox import default_dp_config, run_privacy_audit

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        res = run_privacy_audit(base, train=train, test=test, epsilons=[eps], dp_config=default_dp_config(reset=True),
                                include_reference=False, population_size=args.bb_population,
                                num_canaries=args.bb_canaries, num_models=args.bb_models, attacks=("lira-offline",),
                                n_bootstrap=100, measure_timing=False, seed=0, run_dir=tmp, cache=cache, progress=False)
    seconds = time.perf_counter() - start
    one = res["body"]["one_run"]["rows"][0]
    claim, _ = wb.claim_for(default_dp_config(reset=True, target_epsilon=float(eps)), len(train))
    conf = 1 - (1 - 0.95) / 2  # the black-box audit runs each of its two bounds at 97.5 %
    bound = wb._bounds(claim)["binomial"]
    ideal = wb.ideal_epsilon_lb(bound, one["num_canaries"], one["num_guesses"], claim, conf)
    return {"method": "black-box LiRA one-run (binomial)", "epsilon_claimed": claim.epsilon,
            "num_canaries": one["num_canaries"], "num_guesses": one["num_guesses"], "num_correct": one["num_correct"],
            "epsilon_lb": one["epsilon_lb"], "tightness": one["epsilon_lb"] / claim.epsilon,
            "ideal_tightness": ideal / claim.epsilon, "audit_power": one["audit_power"], "seconds": seconds}


def fmt(x, nd=3):
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="white-box seeds per ε for the spread (default 5)")
    ap.add_argument("--no-blackbox", action="store_true")
    ap.add_argument("--no-full-data", action="store_true", help="skip the all-records canary run")
    ap.add_argument("--no-controls", action="store_true")
    ap.add_argument("--bb-population", type=int, default=256)
    ap.add_argument("--bb-canaries", type=int, default=64)
    ap.add_argument("--bb-models", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    base, train, test, cache = load()
    epsilons = (1.0, 3.0, 8.0)
    out: dict = {"headline": [], "spread": {}, "brief_sizes": [], "data": [], "controls": [], "timing": {}}

    # 1. headline: one audit of all three ε (what the main job runs), seed 0
    t0 = time.perf_counter()
    headline = wb.run_whitebox_audit(base, train, dp_config(), epsilons=epsilons, seed=0, noise_seed=100)
    out["timing"]["whitebox_all_three_epsilons_seconds"] = time.perf_counter() - t0
    out["timing"]["runs"] = headline["body"]["runs"]
    rows_by_eps = {}
    for row in headline["body"]["rows"]:
        rows_by_eps.setdefault(round(row["epsilon_claimed"]), []).append(row)
    for eps in epsilons:
        if not args.no_blackbox:
            out["headline"].append(blackbox(base, train, test, cache, eps, args))
        out["headline"] += rows_by_eps[round(eps)]

    # 2. spread over seeds (white-box, product defaults)
    for eps in epsilons:
        vals: dict[str, list[float]] = {}
        for s in range(1, args.seeds):
            res = whitebox(base, train, eps, seed=s, noise_seed=100 + s)
            for row in res["body"]["rows"]:
                vals.setdefault(row["method"], []).append(row["tightness"])
        for row in rows_by_eps[round(eps)]:
            vals.setdefault(row["method"], []).insert(0, row["tightness"])
        out["spread"][eps] = vals

    # 3. the brief's sizes: m = 5,000, 500 guesses
    for eps in epsilons:
        res = whitebox(base, train, eps, seed=0, noise_seed=100, num_canaries=5000, num_guesses=500)
        out["brief_sizes"] += res["body"]["rows"]

    # 4. data handling at ε = 3: subset vs all records (same seeds → same noise), and the data left in
    variants = [("256 records, data sum subtracted (default)", dict(data_limit=256)),
                ("256 records, data gradient left in the scores", dict(data_limit=256, data_gradient="ignore"))]
    if not args.no_full_data:
        variants += [("all 2,000 records, data sum subtracted", dict(data_limit=None, cache=cache)),
                     ("all 2,000 records, data gradient left in the scores",
                      dict(data_limit=None, data_gradient="ignore", cache=cache))]
    scores = {}
    for name, kw in variants:
        claim, _ = wb.claim_for(dp_config().replace(target_epsilon=3.0), len(train))
        start = time.perf_counter()
        run = wb.canary_run(base, train, dp_config().replace(target_epsilon=3.0), num_canaries=wb.DEFAULT_CANARIES,
                            seed=0, noise_seed=100, **kw)
        r = wb.choose_num_guesses(wb.DEFAULT_CANARIES, claim)
        rows = wb.bound_rows(run, num_guesses=r)
        scores[name] = run.scores
        out["data"].append({"variant": name, "records": run.details["records"],
                            "epsilon_lb_fdp": rows[-1]["epsilon_lb"], "tightness_fdp": rows[-1]["tightness"],
                            "epsilon_lb_binomial": rows[0]["epsilon_lb"], "seconds": time.perf_counter() - start,
                            "replay_max_abs_diff": run.details.get("replay_max_abs_diff")})
    ref = scores[variants[0][0]]
    for row in out["data"]:
        row["max_abs_score_diff_vs_default"] = float(np.abs(scores[row["variant"]] - ref).max())

    # 5. broken-DP controls
    if not args.no_controls:
        for bug in wb.BUGS:
            for eps in epsilons:
                res = whitebox(base, train, eps, seed=0, noise_seed=100, bug=bug)
                rows = {r["method"]: r for r in res["body"]["rows"]}
                out["controls"].append({"bug": bug, "epsilon_claimed": res["body"]["rows"][0]["epsilon_claimed"],
                                        "rows": rows, "verdict": res["checks"][0]["status"],
                                        "seconds": res["body"]["total_seconds"]})
    out["machine"] = {"cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "python": platform.python_version(), "load_before": load_before,
                      "load_after": os.getloadavg()[0]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "whitebox.json").write_text(json.dumps(out, indent=1, default=float))
    (args.out / "whitebox.md").write_text(render(out, args))
    print((args.out / "whitebox.md").read_text())


def render(out: dict, args) -> str:
    m = out["machine"]
    runs = out["timing"]["runs"]
    lines = [
        "# White-box canary audit of the DP training",
        "",
        f"Command: `python benchmarks/whitebox.py{' --seeds ' + str(args.seeds) if args.seeds != 5 else ''}` "
        "(from the repository root).",
        "",
        f"Machine: {m['cores']} CPU cores, torch {m['torch']}, {m['threads']} torch thread, Python {m['python']}; "
        f"load average {m['load_before']:.1f} before, {m['load_after']:.1f} after (a shared machine: seconds are "
        "inflated by other jobs and vary run to run).",
        "",
        "Audited: the main job's DP training — the embedded default ViT, TAFT (tangent, last block, PT=F reset), "
        "Fashion-MNIST 5–9 (2,000 training records), full-batch DP-GD, T = 50 steps, C = 1, δ = 1e-5, σ calibrated "
        "by the PRV accountant (exact μ-GDP at q = 1). White-box: a separate canary run per ε (never released) "
        f"with {wb.DEFAULT_CANARIES:,} Dirac gradient canaries (norm 10·C, distinct random coordinates of Δw, each in "
        "with probability ½), every privatized update observed, the clipped data sum subtracted by replaying the run "
        f"({runs[0]['records']} training records in the canary run: the scores do not depend on them, see below); "
        "guesses fixed before the run by the rule of `choose_num_guesses` (m, claim). Black-box: LiRA one-run game "
        f"(`run_privacy_audit`: {args.bb_models} replicas on random halves of a {args.bb_population}-record "
        f"population with {args.bb_canaries} mislabelled canaries, pooled game, m/4 guesses, binomial bound at "
        "97.5 %). 95 % confidence. Ideal: the same bound, same m and guesses, on a simulated perfect Gaussian "
        "mechanism that meets the claim (median of 21 simulations).",
        "",
        "## Claimed ε × audit → ε lower bound, tightness, ideal",
        "",
        "| claimed ε | audit | m | guesses | correct | ε_lb | tightness ε_lb/ε | ideal tightness | audit power | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in out["headline"]:
        lines.append(f"| {row['epsilon_claimed']:.3g} | {row['method']} | {row['num_canaries']} | {row['num_guesses']} | "
                     f"{row['num_correct']} | {fmt(row['epsilon_lb'])} | {fmt(row['tightness'], 2)} | "
                     f"{fmt(row['ideal_tightness'], 2)} | {fmt(row.get('audit_power'), 2)} | {row['seconds']:.1f} |")
    lines += [
        "",
        f"White-box seconds = that ε's canary run (training + the auditor's replay) + the bound. The whole white-box "
        f"audit of the three ε (what the main job runs): **{out['timing']['whitebox_all_three_epsilons_seconds']:.0f} s**"
        " on 1 thread of the loaded 2-core machine. Per canary run: "
        + ", ".join(f"ε = {r['epsilon_claimed']:.3g}: training {r['train_seconds']:.1f} s (of which the auditor's "
                    f"replay {r.get('replay_seconds', 0):.1f} s)" for r in runs) + ".",
        "",
        "## Spread of the white-box tightness over seeds (canary draw + DP noise)",
        "",
        "| claimed ε | audit | seeds | median | min | max |",
        "|---|---|---|---|---|---|",
    ]
    for eps, vals in out["spread"].items():
        for method, v in vals.items():
            lines.append(f"| {eps:g} | {method} | {len(v)} | {statistics.median(v):.2f} | {min(v):.2f} | {max(v):.2f} |")
    lines += [
        "",
        "## The brief's sizes: m = 5,000 canaries, 500 guesses",
        "",
        "| claimed ε | audit | correct | ε_lb | tightness | ideal tightness | audit power |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in out["brief_sizes"]:
        lines.append(f"| {row['epsilon_claimed']:.3g} | {row['method']} | {row['num_correct']} | {fmt(row['epsilon_lb'])} | "
                     f"{fmt(row['tightness'], 2)} | {fmt(row['ideal_tightness'], 2)} | {fmt(row['audit_power'], 2)} |")
    lines += [
        "",
        "With 500 guesses the f-DP bound's power (every guess right) is just under 8: at ε = 8 no run, however "
        "broken, could FAIL. Hence the product's defaults: 20,000 canaries (Dirac canaries cost nothing: one "
        "scatter per step) and a number of guesses chosen before the run with power ≥ 1.2 × the claim.",
        "",
        "## How the data's gradient in the canary directions is handled (ε = 3, same canaries, same DP noise)",
        "",
        "| canary run | records | f-DP ε_lb | tightness | binomial ε_lb | max |score − default score| | replay max |Δw diff| | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in out["data"]:
        lines.append(f"| {row['variant']} | {row['records']} | {fmt(row['epsilon_lb_fdp'])} | {fmt(row['tightness_fdp'], 2)} | "
                     f"{fmt(row['epsilon_lb_binomial'])} | {row['max_abs_score_diff_vs_default']:.2g} | "
                     f"{fmt(row['replay_max_abs_diff'], 1) if row['replay_max_abs_diff'] is not None else '–'} | "
                     f"{row['seconds']:.1f} |")
    lines += [
        "",
        "Subtracting the clipped data sum (the auditor replays the run from the observed updates; its final Δw matches "
        "the canary run's bit for bit) leaves each canary's score exactly N(√T/σ·b, 1), whatever the data: a canary "
        "run on a subset of the records gives the same scores up to float rounding. Left in the scores, the data's "
        "gradient is extra noise (the bound stays valid, the audit is weaker).",
    ]
    if out["controls"]:
        lines += [
            "",
            "## Broken-DP controls (each claims the target ε; each must FAIL)",
            "",
            "| bug | claimed ε | binomial ε_lb | f-DP ε_lb | verdict | seconds |",
            "|---|---|---|---|---|---|",
        ]
        for c in out["controls"]:
            b = c["rows"].get(wb.METHODS["binomial"], {})
            f = c["rows"].get(wb.METHODS["fdp"], {})
            lines.append(f"| {c['bug']} | {c['epsilon_claimed']:.3g} | {fmt(b.get('epsilon_lb'))} | "
                         f"{fmt(f.get('epsilon_lb'))}{' (' + f['error'][:60] + ')' if f.get('error') else ''} | "
                         f"{c['verdict']} | {c['seconds']:.1f} |")
        lines += [
            "",
            "noise-half: noise std × ½. clip-off: C = 10⁶ with the claimed noise std σ·C. wrong-steps: σ calibrated for "
            "T/10 steps, T run. wrong-sample-rate: σ calibrated (and ε claimed) for Poisson sampling at q = 0.1, the "
            "run full-batch (the f-DP row then tests the subsampled-Gaussian curve).",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
