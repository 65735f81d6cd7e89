"""Input-canary audit of the released model vs the white-box audit, on the embedded default.

    python benchmarks/input_canaries.py                      # → benchmarks/results/input_canaries.md (+ .json)
    python benchmarks/input_canaries.py --sections main,controls --seeds 5

Audited: the main job's DP training — the embedded default ViT, tangent model (last block
linearized, reset), output J·Δw, cross-entropy, full-batch DP-GD, 50 steps, C = 1, δ = 1e-5, σ
calibrated by the PRV accountant, Adam lr 1e-2 — on the main job's 1,000 Fashion-MNIST 5–9
training images plus the included canaries. Probes: the first 1,000 images of the public
Fashion-MNIST 5–9 test split. Sections (``--sections``):

- main: ε ∈ {1, 3, 8} × seeds (canary bits and DP noise), Adam: ε_lb, tightness, power, per decoder;
- timing: the whole audit of the three ε (``run_input_canary_audit``), canaries cached;
- sgd: the same with plain SGD (lr 1) instead of Adam;
- noise: canaries that are Gaussian-noise images (no optimization): the construction's effect;
- fc: the FC regime (head only) with the same canary images;
- controls: the white-box audit's broken-DP runs (noise × ½, clipping off, wrong steps) — must FAIL;
- null: ≥ 200 simulated correct runs of the measured linear score model (a = the claim's μ, the
  real interference and noise Gram), decoded like the real runs: how often ε_lb > ε;
- geometry: public quantities of the crafted and of Gaussian-noise canaries (the part of each
  direction outside the public subspace, the overlap with the other canaries) and the μ_eff/μ
  they predict for the matched-filter and the MMSE decoders; the probes' energy in the subspace.

Every section stores its rows in the JSON file; ``--sections`` reruns only some of them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audits.privacy import input_canaries as ic  # noqa: E402
from audits.privacy import whitebox as wb  # noqa: E402
from audits.privacy.fdp import gdp_one_run_epsilon_lower_bound  # noqa: E402
from audits.privacy.one_run import one_run_guesses  # noqa: E402

EPSILONS = (1.0, 3.0, 8.0)
SECTIONS = ("main", "timing", "sgd", "noise", "fc", "controls", "null", "geometry")
WHITEBOX_FDP = {1.0: (0.60, 0.67), 3.0: (0.69, 0.76), 8.0: (0.65, 0.65)}  # BENCHMARKS.md: median over 5 seeds, m = 20,000 / the run shown


def load():
    from audits.pipeline import _first_n_shuffled
    from privtangent.data import load_task
    from privtangent.models import pretrained_base

    base, _ = pretrained_base(progress=False)
    train = _first_n_shuffled(load_task("fashion-near", "train"), 1000, 0)  # the main job's training set
    probes = load_task("fashion-near", "test", limit=1000).images
    return base, train, probes


def dp_config(**changes):
    from privtangent.dp.training import DPConfig

    return DPConfig(reset=True).replace(**changes)  # the main job's DP training


def mu_estimate(scores: np.ndarray, bits: np.ndarray) -> float:
    """(mean in − mean out) / pooled std: a descriptive effect size, never used by the audit."""
    a, b = scores[bits], scores[~bits]
    return float((a.mean() - b.mean()) / math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2))


def decoded(run, canaries, coef) -> dict[str, np.ndarray]:
    return {d: ic.input_canary_scores(run.canary_outputs, run.probe_outputs, canaries, coef, d) for d in ic.DECODERS}


def one_run(base, train, probes, cfg, pack, seed, bug=None, decoders=ic.DECODERS, full_rows=True) -> dict:
    canaries, coef = pack
    run = ic.input_canary_run(base, train, cfg, canaries, coef, probes, seed=seed, bug=bug, noise_seed=None)
    m, claim = canaries.num_canaries, run.claim
    r = wb.choose_num_guesses(m, claim)
    bits = run.canaries.included
    out: dict = {"epsilon": claim.target_epsilon, "claimed": claim.epsilon, "mu": claim.mu, "seed": seed, "bug": bug,
           "optimizer": cfg.optimizer, "m": m, "r": r, "seconds": run.seconds, "decoders": {}}
    for name, scores in decoded(run, canaries, coef).items():
        if name not in decoders:
            continue
        rr, v = one_run_guesses(scores, bits, r)
        entry: dict = {"correct": v, "mu_hat": mu_estimate(scores, bits),
                 "fdp": float(gdp_one_run_epsilon_lower_bound(m, rr, v, delta=claim.delta, confidence=0.95))}
        if full_rows and name == "mmse":
            run.scores = scores
            rows = wb.bound_rows(run, num_guesses=r, confidence=0.95)  # type: ignore[arg-type]  # duck-typed run
            for row in rows:
                row["method"] = "input canaries, " + row["method"].replace("white-box ", "")
            entry["rows"] = rows
        out["decoders"][name] = entry
    return out


def fmt(x, nd=2):
    return "–" if x is None else f"{x:.{nd}f}"


# --------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------
def section_main(ctx, args, optimizer="adam", lr=1e-2, epsilons=EPSILONS, seeds=None):
    rows = []
    for eps in epsilons:
        for seed in range(seeds or args.seeds):
            cfg = dp_config(target_epsilon=eps, optimizer=optimizer, lr=lr)
            rows.append(one_run(ctx["base"], ctx["train"], ctx["probes"], cfg, ctx["pack"], seed))
            d = rows[-1]["decoders"]
            print(f"[{optimizer}] ε={eps} seed={seed}: " + ", ".join(f"{k} {v['fdp']:.2f} (μ̂ {v['mu_hat']:.2f})"
                                                              for k, v in d.items()), flush=True)
    return rows


def section_timing(ctx, args):
    start = time.perf_counter()
    res = ic.run_input_canary_audit(ctx["base"], ctx["train"], dp_config(), probe_images=ctx["probes"],
                                    epsilons=list(EPSILONS), canaries=ctx["pack"], seed=100)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "checks": [c.to_dict() for c in res.checks], "runs": res.body["runs"],
            "rows": [{k: r[k] for k in ("method", "epsilon_claimed", "num_guesses", "num_correct", "epsilon_lb",
                                        "tightness", "audit_power", "status")} for r in res.body["rows"]]}


def section_noise(ctx, args):
    _, pack = _noise_pack(ctx)
    rows = []
    for eps in (3.0, 8.0):
        for seed in range(2):
            rows.append(one_run(ctx["base"], ctx["train"], ctx["probes"], dp_config(target_epsilon=eps), pack, seed,
                                full_rows=False))
            print(f"[noise] ε={eps} seed={seed}: {rows[-1]['decoders']['mmse']['fdp']:.2f}", flush=True)
    return {"keep_median": float(pack[0].keep.median()), "rows": rows}


def _noise_pack(ctx):
    """Gaussian-noise canary images (seeded), described against the same public subspace."""
    from privtangent.train import prepare_model

    model = prepare_model(ctx["base"], 5, dp_config().train_config()).eval()
    if ctx.get("subspace") is None:
        with torch.no_grad():
            ctx["features"] = model.prefix(ctx["probes"])
        ctx["subspace"] = ic.public_subspace(model, ctx["features"], 5, rank=ic.DEFAULT_RANK)
    m = ctx["pack"][0].num_canaries
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.randn(m, 1, 28, 28, generator=gen), torch.randint(0, 5, (m,), generator=gen)
    return model, (ic.canary_directions(model, images, labels, 5, ctx["subspace"]), ctx["subspace"].coef.float())


def predicted_ratio(canaries, mu: float) -> dict:
    """μ_eff/μ predicted from public geometry alone, a = μ (the canary exactly as strong as the claim):
    matched filter keep/√(1 + (μ²/4)Σ_{c'≠c} M²) and linear MMSE 2√(SINR)/μ (medians over canaries)."""
    m_mat, gram = canaries.interference.double(), canaries.noise_gram.double()
    off = m_mat - torch.diag(torch.diag(m_mat))
    matched = torch.diag(m_mat) / (1 + mu * mu / 4 * off.pow(2).sum(1)).sqrt()
    h = mu * m_mat
    q = 0.25 * (h * torch.linalg.solve(gram + 0.25 * h @ h.T, h)).sum(0)
    mmse = 2 * (q / (1 - q)).sqrt() / mu
    return {"matched": float(matched.median()), "mmse": float(mmse.median())}


def section_geometry(ctx, args):
    model, noise = _noise_pack(ctx)
    total = sum(float(ic._probe_rows(model, ctx["features"][i : i + 100], 5).double().pow(2).sum())
                for i in range(0, ctx["features"].shape[0], 100))
    sub = ctx["subspace"]
    out = {"probe_energy_in_subspace": float(sub.singular_values.pow(2).sum()) / total, "rank": sub.rank, "packs": {}}
    for name, (canaries, _) in (("crafted", ctx["pack"]), ("noise", noise)):
        m_mat = canaries.interference.double()
        off = m_mat - torch.diag(torch.diag(m_mat))
        entry = {"keep_median": float(canaries.keep.median()), "overlap_median": float(off.pow(2).sum(1).median()),
                 "grad_norm_median": float(canaries.grad_norms.median()), "predicted": {}}
        for eps in EPSILONS:
            claim, _ = wb.claim_for(dp_config(target_epsilon=eps), 1000)
            entry["predicted"][str(eps)] = predicted_ratio(canaries, claim.mu)
        out["packs"][name] = entry
        print(f"[geometry] {name}: {entry}", flush=True)
    return out


def section_fc(ctx, args):
    from privtangent.train import prepare_model

    cfg = dp_config(regime="fc")
    model = prepare_model(ctx["base"], 5, cfg.train_config()).eval()
    with torch.no_grad():
        feats = model.prefix(ctx["probes"])
    canaries = ctx["pack"][0]
    out = {}
    for rank in (0, 100):
        if rank:
            sub = ic.public_subspace(model, feats, 5, rank=rank)
        else:
            dim = sum(int(p.numel()) for p in model.trainable_parameters().values())
            sub = ic.TangentSubspace(torch.zeros(0, dim), torch.zeros(0, 4 * feats.shape[0], dtype=torch.float64),
                                     torch.zeros(0), "none")
        pack = (ic.canary_directions(model, canaries.images, canaries.labels, 5, sub), sub.coef.float())
        rows = [one_run(ctx["base"], ctx["train"], ctx["probes"], dp_config(regime="fc", target_epsilon=8.0), pack, 0,
                        full_rows=False)]
        print(f"[fc rank {rank}] ε=8: " + ", ".join(f"{k} {v['fdp']:.2f}" for k, v in rows[0]["decoders"].items()),
              flush=True)
        out[str(rank)] = {"keep_median": float(pack[0].keep.median()), "rows": rows}
    return out


def section_controls(ctx, args):
    rows = []
    for bug in ("noise-half", "clip-off", "wrong-steps"):
        for eps in EPSILONS:
            rows.append(one_run(ctx["base"], ctx["train"], ctx["probes"], dp_config(target_epsilon=eps), ctx["pack"],
                                0, bug=bug, decoders=("mmse",)))
            status = rows[-1]["decoders"]["mmse"]["rows"]
            print(f"[control {bug}] ε={eps}: " + ", ".join(f"{r['method']} {r['epsilon_lb']:.2f} {r['status']}"
                                                          for r in status), flush=True)
    return rows


def section_null(ctx, args, main_rows):
    """Simulated correct runs: s = a·M·b + τ·(ŴŴᵀ)^{1/2} z with a = the claim's μ (τ = 1)."""
    canaries, _ = ctx["pack"]
    m_mat, gram = canaries.interference.double(), canaries.noise_gram.double()
    evals, evecs = torch.linalg.eigh(gram)
    root = evecs * evals.clamp(min=0).sqrt()
    out = {}
    for eps in EPSILONS:
        claim, _ = wb.claim_for(dp_config(target_epsilon=eps), 1000)
        r = wb.choose_num_guesses(canaries.num_canaries, claim)
        lbs = []
        rng = np.random.default_rng([7, int(eps * 10)])
        for sim in range(args.null_runs):
            bits = rng.random(canaries.num_canaries) < 0.5
            z = torch.as_tensor(rng.standard_normal(canaries.num_canaries))
            s = claim.mu * (m_mat @ torch.as_tensor(bits, dtype=torch.float64)) + root @ z
            scores = ic.mmse_scores(s, canaries).numpy()
            rr, v = one_run_guesses(scores, bits, r)
            lbs.append(float(gdp_one_run_epsilon_lower_bound(canaries.num_canaries, rr, v, delta=claim.delta,
                                                             confidence=0.95)))
        real = [row["decoders"]["mmse"] for row in main_rows if row["epsilon"] == eps and row["bug"] is None]
        out[str(eps)] = {"runs": args.null_runs, "over": int(sum(lb > claim.epsilon for lb in lbs)),
                         "median_lb": float(np.median(lbs)), "max_lb": float(np.max(lbs)), "claimed": claim.epsilon,
                         "real_runs": len(real), "real_over": int(sum(x["fdp"] > claim.epsilon for x in real))}
        print(f"[null] ε={eps}: over {out[str(eps)]['over']}/{args.null_runs}, median {out[str(eps)]['median_lb']:.2f}",
              flush=True)
    return out


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------
def _median(xs):
    return statistics.median(xs) if xs else None


def render(res: dict, args) -> str:
    meta = res["meta"]
    commands = sorted(set(meta.get("section_commands", {}).values()) or {meta["command"]})
    lines = ["## Input-canary audit of the released model (black box, one run)", "",
             "Commands (from the repository root): " + "; ".join(f"`{c}`" for c in commands) + ".", "",
             f"Machine: {meta['machine']}; load average {meta['load_before']} before, {meta['load_after']} after "
             "(a shared machine: seconds vary run to run).", "",
             "Audited: the main job's DP training (embedded default ViT, tangent, last block linearized with reset, "
             "output J·Δw, cross-entropy, full-batch DP-GD, 50 steps, C = 1, δ = 1e-5, PRV-calibrated σ, Adam lr 1e-2) "
             "on the main job's 1,000 Fashion-MNIST 5–9 training images plus the included canaries. "
             f"Canaries: {meta['canaries']}. Probes: the first 1,000 images of the public Fashion-MNIST 5–9 test split. "
             "Guesses: top ⌊r/2⌋ in, bottom r − ⌊r/2⌋ out, r = `choose_num_guesses(m, claim)` fixed before the run. "
             "Bounds: f-DP (accountant's curve, `gdp_one_run_epsilon_lower_bound`, method auto) and binomial, 95 %.", ""]
    for note in meta.get("notes", []):
        lines += [f"Note: {note}", ""]
    main = res.get("main")
    if main:
        lines += ["### Tightness over seeds (Adam, the production recipe)", "",
                  "| claimed ε | decoder | seeds | median ε_lb | median tightness | min | max | median μ̂/μ | white-box f-DP tightness (median / one run) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for eps in EPSILONS:
            these = [row for row in main if row["epsilon"] == eps]
            if not these:
                continue
            for dec in ic.DECODERS:
                lbs = [row["decoders"][dec]["fdp"] for row in these if dec in row["decoders"]]
                mus = [row["decoders"][dec]["mu_hat"] / row["mu"] for row in these if dec in row["decoders"]]
                claimed = these[0]["claimed"]
                wbm, wb1 = WHITEBOX_FDP[eps]
                lines.append(f"| {eps:g} | {dec} | {len(lbs)} | {fmt(_median(lbs))} | {fmt(_median(lbs) / claimed)} | "
                             f"{fmt(min(lbs) / claimed)} | {fmt(max(lbs) / claimed)} | {fmt(_median(mus))} | {wbm:.2f} / {wb1:.2f} |")
        lines += ["", "One run per ε (seed 0, decoder mmse), every row of the audit:", "",
                  "| claimed ε | bound | m | guesses | correct | ε_lb | tightness | ideal tightness | audit power | verdict |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in main:
            if row["seed"] != 0:
                continue
            for b in row["decoders"]["mmse"].get("rows", []):
                lines.append(f"| {b['epsilon_claimed']:.3g} | {b['method'].replace('white-box ', 'input canaries, ')} | {b['num_canaries']} | {b['num_guesses']} | "
                             f"{b['num_correct']} | {fmt(b['epsilon_lb'], 3)} | {fmt(b['tightness'])} | "
                             f"{fmt(b['ideal_tightness'])} | {fmt(b['audit_power'])} | {b['status']} |")
        lines.append("")
    if res.get("timing"):
        t = res["timing"]
        lines += [f"Whole audit of the three ε (`run_input_canary_audit(epsilons=[1, 3, 8])`, canaries cached): "
                  f"**{t['seconds']:.0f} s** on one thread; verdicts {', '.join(c['status'] for c in t['checks'])}. "
                  f"Building the canaries once (cached on disk): {meta.get('construction_seconds', float('nan')):.0f} s.", ""]
    if res.get("timing"):
        lines += ["| claimed ε | bound | guesses | correct | ε_lb | tightness | power | verdict |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['epsilon_claimed']:.3g} | {r['method']} | {r['num_guesses']} | {r['num_correct']} | "
                  f"{fmt(r['epsilon_lb'], 3)} | {fmt(r['tightness'])} | {fmt(r['audit_power'])} | {r['status']} |"
                  for r in res["timing"]["rows"]] + [""]
    for key, title in (("sgd", "Plain SGD (lr 1) instead of Adam"),):
        if res.get(key):
            lines += [f"### {title}", "", "| claimed ε | decoder | seeds | median ε_lb | median tightness | median μ̂/μ |",
                      "|---|---|---|---|---|---|"]
            for eps in EPSILONS:
                these = [row for row in res[key] if row["epsilon"] == eps]
                if not these:
                    continue
                for dec in ic.DECODERS:
                    lbs = [row["decoders"][dec]["fdp"] for row in these]
                    mus = [row["decoders"][dec]["mu_hat"] / row["mu"] for row in these]
                    lines.append(f"| {eps:g} | {dec} | {len(lbs)} | {fmt(_median(lbs))} | "
                                 f"{fmt(_median(lbs) / these[0]['claimed'])} | {fmt(_median(mus))} |")
            lines.append("")
    if res.get("noise"):
        n = res["noise"]
        lines += ["### Construction: Gaussian-noise images instead of crafted canaries", "",
                  f"Median ‖w_c‖ (the part of a canary's direction outside the public subspace): {n['keep_median']:.2f} "
                  f"(crafted: {meta['keep_median']:.2f}).", "",
                  "| claimed ε | seed | decoder | ε_lb | tightness | μ̂/μ |", "|---|---|---|---|---|---|"]
        for row in n["rows"]:
            for dec, v in row["decoders"].items():
                lines.append(f"| {row['epsilon']:g} | {row['seed']} | {dec} | {fmt(v['fdp'])} | "
                             f"{fmt(v['fdp'] / row['claimed'])} | {fmt(v['mu_hat'] / row['mu'])} |")
        lines.append("")
    if res.get("fc"):
        lines += ["### Regime FC (head only), ε = 8, the same canary images", "",
                  "| public rank removed | median ‖w_c‖ | decoder | ε_lb | tightness | μ̂/μ |", "|---|---|---|---|---|---|"]
        for rank, v in res["fc"].items():
            row = v["rows"][0]
            for dec, d in row["decoders"].items():
                lines.append(f"| {rank} | {v['keep_median']:.2f} | {dec} | {fmt(d['fdp'])} | "
                             f"{fmt(d['fdp'] / row['claimed'])} | {fmt(d['mu_hat'] / row['mu'])} |")
        lines.append("")
    if res.get("controls"):
        lines += ["### Broken-DP controls (each claims the target ε; each must FAIL)", "",
                  "| bug | claimed ε | binomial ε_lb | f-DP ε_lb | verdict |", "|---|---|---|---|---|"]
        for row in res["controls"]:
            b = {r["method"]: r for r in row["decoders"]["mmse"]["rows"]}
            binom = next((r for k, r in b.items() if "binomial" in k), None)
            fdp = next((r for k, r in b.items() if "f-DP" in k), None)
            verdict = "FAIL" if any(r["status"] == "FAIL" for r in b.values()) else "PASS"
            lines.append(f"| {row['bug']} | {row['claimed']:.3g} | {fmt(binom and binom['epsilon_lb'], 3)} | "
                         f"{fmt(fdp and fdp['epsilon_lb'], 3)} | {verdict} |")
        lines.append("")
    if res.get("geometry"):
        g = res["geometry"]
        lines += ["### Geometry of the canaries (public quantities, no training)", "",
                  f"The probes' Jacobian rows keep {100 * g['probe_energy_in_subspace']:.1f} % of their squared norm in the "
                  f"rank-{g['rank']} public subspace.", "",
                  "| canaries | median ‖g_c‖ | median ‖w_c‖ (outside the subspace) | median Σ_{c'≠c} M²_{cc'} (overlap) | "
                  "predicted μ_eff/μ, matched (ε = 1 / 3 / 8) | predicted μ_eff/μ, MMSE (ε = 1 / 3 / 8) |",
                  "|---|---|---|---|---|---|"]
        for name, e in g["packs"].items():
            pm = " / ".join(f"{e['predicted'][str(eps)]['matched']:.2f}" for eps in EPSILONS)
            pq = " / ".join(f"{e['predicted'][str(eps)]['mmse']:.2f}" for eps in EPSILONS)
            lines.append(f"| {name} | {e['grad_norm_median']:.1f} | {e['keep_median']:.2f} | {e['overlap_median']:.2f} | "
                         f"{pm} | {pq} |")
        lines.append("")
    if res.get("null"):
        lines += ["### Over-claims on correct runs", "",
                  "| claimed ε | simulated correct runs | ε_lb > ε | median ε_lb | max ε_lb | real correct runs (Adam and SGD) | ε_lb > ε |",
                  "|---|---|---|---|---|---|---|"]
        for eps, v in res["null"].items():
            real = [row for row in (res.get("main") or []) + (res.get("sgd") or []) if row["epsilon"] == float(eps)]
            over = sum(row["decoders"]["mmse"]["fdp"] > row["claimed"] for row in real)
            lines.append(f"| {float(eps):g} | {v['runs']} | {v['over']} | {v['median_lb']:.2f} | {v['max_lb']:.2f} | "
                         f"{len(real)} | {over} |")
        lines.append("")
    lines += findings(res)
    return "\n".join(lines) + "\n"


BLACKBOX_LIRA = {1.0: 0.00, 3.0: 0.04, 8.0: 0.05}  # BENCHMARKS.md, white-box section: LiRA one-run tightness


def _median_tightness(rows, eps, decoder="mmse"):
    these = [row for row in rows or [] if row["epsilon"] == eps and decoder in row["decoders"]]
    return _median([row["decoders"][decoder]["fdp"] / row["claimed"] for row in these]) if these else None


def findings(res: dict) -> list[str]:
    """What the tables say, with every number read from them."""
    main = res.get("main") or []
    out = ["### What closes the gap and what does not", ""]
    if main:
        t = {eps: _median_tightness(main, eps) for eps in EPSILONS}
        out.append("- **Headline.** Median f-DP tightness of the input-canary audit (decoder mmse, Adam, the production "
                   "recipe): " + " / ".join(fmt(t[e]) for e in EPSILONS) + " at ε = 1 / 3 / 8, against "
                   + " / ".join(f"{BLACKBOX_LIRA[e]:.2f}" for e in EPSILONS) + " for today's black-box LiRA one-run audit "
                   "and " + " / ".join(f"{WHITEBOX_FDP[e][0]:.2f}" for e in EPSILONS) + " for the white-box audit "
                   "(BENCHMARKS.md). The goal (≥ 0.5 at ε = 3 and 8) is **not met**.")
        dec = {d: [_median_tightness(main, e, d) for e in EPSILONS] for d in ic.DECODERS}
        out.append("- **Scores.** Reading ⟨Δw, u_c⟩ directly (raw) gives " + " / ".join(fmt(x) for x in dec["raw"])
                   + "; removing the public tangent subspace (projected) " + " / ".join(fmt(x) for x in dec["projected"])
                   + "; the MMSE multiuser detector on top (mmse) " + " / ".join(fmt(x) for x in dec["mmse"]) + ".")
    g = res.get("geometry")
    if g:
        c, n = g["packs"]["crafted"], g["packs"].get("noise")
        out.append(f"- **Where the signal is lost (geometry).** A crafted canary keeps a median {c['keep_median']:.2f} of its "
                   f"direction outside the public subspace and overlaps the other canaries by Σ M² = {c['overlap_median']:.2f}; "
                   "even with a canary signal exactly as strong as the claim, that predicts μ_eff/μ = "
                   + " / ".join(f"{c['predicted'][str(e)]['mmse']:.2f}" for e in EPSILONS) + " (MMSE, ε = 1 / 3 / 8)"
                   + (f"; Gaussian-noise images keep {n['keep_median']:.2f} and overlap by {n['overlap_median']:.2f} "
                      "(predicted " + " / ".join(f"{n['predicted'][str(e)]['mmse']:.2f}" for e in EPSILONS) + ")" if n else "")
                   + f". The probes' own Jacobian rows keep {100 * g['probe_energy_in_subspace']:.1f} % of their energy in "
                   f"the rank-{g['rank']} subspace: the tangent features of natural inputs are nearly low-rank, so the data's "
                   "gradient sum and the canaries' shared components leak into every canary's score unless crafted away.")
    if res.get("null"):
        nl = res["null"]
        out.append("- **The construction is the bottleneck, not training.** Simulating the linear score model with a = μ "
                   "(the strongest canary a correct mechanism allows) and the real overlap matrices gives median tightness "
                   + " / ".join(f"{nl[str(e)]['median_lb'] / nl[str(e)]['claimed']:.2f}" for e in EPSILONS)
                   + ", close to the real runs: the real training loses little beyond what the canaries' geometry costs.")
    if res.get("sgd") and main:
        out.append("- **Optimizer.** Plain SGD instead of Adam: median tightness "
                   + " / ".join(fmt(_median_tightness(res["sgd"], e)) for e in (3.0, 8.0)) + " vs Adam "
                   + " / ".join(fmt(_median_tightness(main, e)) for e in (3.0, 8.0)) + " at ε = 3 / 8: Adam's per-"
                   "coordinate scaling is not what limits the audit (the noise dominates its second-moment estimate, so "
                   "it acts nearly linearly on the canaries' updates).")
    if res.get("noise"):
        nz = res["noise"]["rows"]
        out.append("- **Construction.** Gaussian-noise canaries (no optimization): ε_lb "
                   + ", ".join(fmt(r["decoders"]["mmse"]["fdp"]) for r in nz) + " (ε = 3, 3, 8, 8): without crafting, "
                   "the audit certifies nothing.")
    if res.get("fc"):
        fc = res["fc"]
        out.append("- **Regime FC.** The head has 645 trained coordinates, fewer than the 1,024 canaries: their directions "
                   "cannot be told apart; ε_lb at ε = 8: " + ", ".join(
                       f"{fmt(v['rows'][0]['decoders']['mmse']['fdp'])} (rank {k} removed)" for k, v in fc.items()) + ".")
    if res.get("controls"):
        failed = [(r["bug"], r["epsilon"]) for r in res["controls"]
                  if any(b["status"] == "FAIL" for b in r["decoders"]["mmse"]["rows"])]
        out.append("- **Controls.** FAIL: " + (", ".join(f"{b} at ε = {e:g}" for b, e in failed) or "none")
                   + "; every other broken run PASSES. At this tightness the input-canary audit cannot refute a halved "
                   "noise or a 10× step-count error: it complements the white-box audit (which catches all of them) and "
                   "must not replace it as the release gate.")
    if res.get("null"):
        nl = res["null"]
        real = (res.get("main") or []) + (res.get("sgd") or [])
        over = sum(row["decoders"]["mmse"]["fdp"] > row["claimed"] for row in real)
        out.append(f"- **Over-claims.** {sum(nl[str(e)]['over'] for e in EPSILONS)} of "
                   f"{sum(nl[str(e)]['runs'] for e in EPSILONS)} simulated correct runs and {over} of {len(real)} real "
                   "correct runs exceeded the claim (a valid 95 % bound allows about 1 in 20; the audit is far from tight, "
                   "so none is expected).")
    return out + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--sgd-seeds", type=int, default=3)
    ap.add_argument("--null-runs", type=int, default=200)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--render-only", action="store_true", help="rewrite the .md from the .json, run nothing")
    args = ap.parse_args()
    if args.render_only:
        data = json.loads((args.out / "input_canaries.json").read_text())
        (args.out / "input_canaries.md").write_text(render(data, args))
        return
    torch.set_num_threads(1)
    wanted = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown sections {unknown}")
    path = args.out / "input_canaries.json"
    res = json.loads(path.read_text()) if path.exists() else {}
    load_before = [round(x, 1) for x in os.getloadavg()]
    base, train, probes = load()
    start = time.perf_counter()
    pack = ic.load_or_make_input_canaries(base, dp_config(), probes, 5, ic.Construction(), progress=True)
    ctx = {"base": base, "train": train, "probes": probes, "pack": pack}
    meta = res.get("meta", {})
    meta.update({"canaries": (f"m = {pack[0].num_canaries} crafted images (construction {pack[0].meta}), labels uniform"),
                 "keep_median": float(pack[0].keep.median()),
                 "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 torch thread",
                 "command": "python benchmarks/input_canaries.py " + " ".join(sys.argv[1:])})
    meta.setdefault("section_commands", {}).update({sec: meta["command"] for sec in wanted})
    if not pack[0].meta.get("cached", False):
        meta["construction_seconds"] = time.perf_counter() - start
    for section in wanted:
        t0 = time.perf_counter()
        if section == "main":
            res["main"] = section_main(ctx, args)
        elif section == "sgd":
            res["sgd"] = section_main(ctx, args, optimizer="sgd", lr=1.0, epsilons=(3.0, 8.0), seeds=args.sgd_seeds)
        elif section == "null":
            res["null"] = section_null(ctx, args, res.get("main", []))
        else:
            res[section] = globals()[f"section_{section}"](ctx, args)
        meta.setdefault("section_seconds", {})[section] = time.perf_counter() - t0
        meta["load_before"], meta["load_after"] = load_before, [round(x, 1) for x in os.getloadavg()]
        res["meta"] = meta
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res, indent=1, default=float))
        (args.out / "input_canaries.md").write_text(render(res, args))


if __name__ == "__main__":
    main()
