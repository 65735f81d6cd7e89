"""``privtangent compare-regimes``: which regime, tangent (Ours) or not (Reg), to fine-tune under DP."""

from __future__ import annotations

import argparse

from privtangent.choices import REGIMES
from privtangent.cli.options import add_device_option


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _names(text: str) -> tuple[str, ...]:
    values = tuple(v for v in text.replace(",", " ").split() if v)
    if not values:
        raise argparse.ArgumentTypeError("expected at least one name")
    return values


def _delta(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare-regimes",
        help="Table 3: which regime, tangent (Ours) or not (Reg), to fine-tune under DP, per ε",
        description="For each data set, regime (full = last block, bitfit = its biases, layernorm = its LayerNorm\n"
        "affine parameters, fc = the head; the head is trained in every regime), model (Ours = tangent, Reg =\n"
        "non-linear fine-tuning of the same parameters), target ε and seed: train with DP and compare.\n\n"
        "Default recipe: Poisson-subsampled DP-SGD, expected batch 512, 100 steps, Adam, δ = min(1e-5, 1/(10N)),\n"
        "on the whole private training set. (lr, C) are chosen per (regime, kind) on data declared public and\n"
        "never seen by the DP runs (a small grid, the same number of runs for every cell; not accounted for\n"
        "in ε, and the output says so); --no-tune uses --lr/--clip for every cell instead.\n\n"
        "Output: for each ε, the best (regime, kind) with its 95 % interval, and one sentence on what was found\n"
        "(printed, and in OUT/table3.md); Ours − Reg per (regime, ε) with its interval paired by seed; the\n"
        "paper's table (mean ± std); OUT/table3*.csv, OUT/table3.json, OUT/table3.png, OUT/table3_vs_n.png\n"
        "(with several --sizes), OUT/table3_manifests/*.json (the privacy manifest of every run).\n"
        "Finished runs are kept in OUT/runs/: a rerun skips them (--fresh runs everything again).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  privtangent compare-regimes --out runs/table3\n"
        "  privtangent compare-regimes --data fashion-near --sizes 500,5000,30000 --epsilons 3 --out runs/table3_n\n"
        "  privtangent compare-regimes --base wide --batch-size 128 --out runs/table3_wide\n"
        "exit status: 0 ok, 2 bad input",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="where the tables, plots, manifests and runs go")
    p.add_argument("--base", default="default", choices=("default", "wide"),
                   help="embedded base: default (embed 128, depth 4) or wide (embed 384, depth 6) (default default)")
    p.add_argument("--regimes", type=_names, default=REGIMES, metavar="R,...",
                   help="regimes (default full,bitfit,layernorm,fc)")
    p.add_argument("--kinds", type=_names, default=("Ours", "Reg"), metavar="K,...",
                   help="Ours (tangent) and/or Reg (non-linear) (default both)")
    p.add_argument("--epsilons", type=_floats, default=(1.0, 3.0, 8.0), metavar="E,...", help="target ε (default 1,3,8)")
    p.add_argument("--delta", type=_delta, default=None, metavar="D",
                   help="δ, or 'auto' for min(1e-5, 1/(10N)) per data set (default auto)")
    p.add_argument("--data", type=_names, default=("fashion-near", "digits"), metavar="NAME,...",
                   help="data sets (default fashion-near,digits: the near and far tasks)")
    p.add_argument("--data-limit", type=int, metavar="N", help="private training images per data set (first N; "
                   "default all)")
    p.add_argument("--sizes", type=_ints, metavar="N,...",
                   help="run at several private training set sizes (first N each) and plot Ours − Reg against N")
    p.add_argument("--test-limit", type=int, metavar="N", help="test images per data set (default all)")
    p.add_argument("--seeds", type=_ints, default=(0, 1, 2), metavar="S,...", help="seeds (default 0,1,2)")
    sampling = p.add_argument_group("DP recipe")
    sampling.add_argument("--batch-size", type=int, default=512, metavar="B",
                          help="expected batch size of Poisson sampling, q = min(1, B/N) (default 512)")
    sampling.add_argument("--steps", type=int, metavar="T", help="steps (default 100, or from --epochs)")
    sampling.add_argument("--epochs", type=float, metavar="E", help="expected passes over the data instead of --steps")
    sampling.add_argument("--full-batch", action="store_true",
                          help="full-batch DP-GD (q = 1, the paper's setting) instead of Poisson sampling")
    sampling.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="optimizer (default adam)")
    sampling.add_argument("--accountant", default="prv", choices=("prv", "rdp", "gdp"), help="accountant (default prv)")
    out = sampling.add_mutually_exclusive_group()
    out.add_argument("--jvp-only", dest="jvp_only", action="store_true", default=True,
                     help="tangent models predict with J·Δw only (default; the paper's DP setting)")
    out.add_argument("--full-output", dest="jvp_only", action="store_false", help="tangent models predict with f_w + J·Δw")
    sampling.add_argument("--reset", action="store_true", help="reset the fine-tuned block first (paper PT=F)")
    sampling.add_argument("--noise-seed", type=int, default=0, metavar="S",
                          help="seeds the noise and sampling of every run; Ours and Reg of a seed share them, so the "
                          "comparison is paired (default 0; the models are measurements, never released)")
    hp = p.add_argument_group("hyperparameters")
    tune = hp.add_mutually_exclusive_group()
    tune.add_argument("--tune", dest="tune", action="store_true", default=True,
                      help="choose (lr, C) per (regime, kind) on public data (default)")
    tune.add_argument("--no-tune", dest="tune", action="store_false", help="use --lr / --clip for every cell")
    hp.add_argument("--lrs", type=_floats, default=(3e-3, 1e-2, 3e-2, 1e-1, 3e-1), metavar="LR,...",
                    help="learning rates searched (default 0.003,0.01,0.03,0.1,0.3)")
    hp.add_argument("--clips", type=_floats, default=(1.0, 10.0), metavar="C,...",
                    help="clipping norms searched (default 1,10)")
    hp.add_argument("--tune-epsilon", type=float, default=3.0, metavar="E", help="ε of the search (default 3)")
    hp.add_argument("--lr", type=float, default=1e-2, help="with --no-tune: learning rate (default 1e-2)")
    hp.add_argument("--lr-ours", type=float, metavar="LR", help="with --no-tune: lr of the tangent models")
    hp.add_argument("--lr-reg", type=float, metavar="LR", help="with --no-tune: lr of the non-linear models")
    hp.add_argument("--clip", type=float, default=1.0, metavar="C", help="with --no-tune: clipping norm (default 1)")
    p.add_argument("--fresh", action="store_true", help="run everything again (ignore finished runs in OUT/runs)")
    p.add_argument("--threads", type=int, metavar="T", help="torch threads (default: torch's choice)")
    add_device_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def canonical_command(args: argparse.Namespace) -> str:
    """The command that reproduces this run, every option spelled out."""
    import shlex

    def join(values) -> str:
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)

    parts = ["privtangent", "compare-regimes", "--out", str(args.out), "--base", args.base,
             "--data", join(args.data), "--regimes", join(args.regimes), "--kinds", join(args.kinds),
             "--epsilons", join(args.epsilons), "--delta", "auto" if args.delta is None else f"{args.delta:g}",
             "--seeds", join(args.seeds), "--optimizer", args.optimizer, "--accountant", args.accountant,
             "--jvp-only" if args.jvp_only else "--full-output", "--noise-seed", str(args.noise_seed)]
    parts += ["--full-batch"] if args.full_batch else ["--batch-size", str(args.batch_size)]
    parts += ["--epochs", f"{args.epochs:g}"] if args.epochs is not None else ["--steps", str(args.steps or 100)]
    if args.tune:
        parts += ["--tune", "--lrs", join(args.lrs), "--clips", join(args.clips), "--tune-epsilon",
                  f"{args.tune_epsilon:g}"]
    else:
        parts += ["--no-tune", "--lr", f"{args.lr:g}", "--clip", f"{args.clip:g}"]
        for flag, value in (("--lr-ours", args.lr_ours), ("--lr-reg", args.lr_reg)):
            if value is not None:
                parts += [flag, f"{value:g}"]
    for flag, value in (("--data-limit", args.data_limit), ("--test-limit", args.test_limit),
                        ("--threads", args.threads)):
        if value is not None:
            parts += [flag, str(value)]
    if args.sizes:
        parts += ["--sizes", join(args.sizes)]
    for flag in ("reset", "fresh", "quiet"):
        if getattr(args, flag):
            parts.append(f"--{flag}")
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    import torch

    from privtangent.errors import ConfigError
    from privtangent.experiments.regimes import RegimeGrid, RunStore, TuningGrid, run_comparison, write_outputs
    from privtangent.experiments.regimes.analysis import summarize
    from privtangent.experiments.regimes.report import answer_table
    from privtangent.experiments.regimes.runner import RegimeResults
    from privtangent.models.pretrain import pretrained_base

    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be ≥ 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.steps is not None and args.epochs is not None:
        raise ConfigError("give --steps or --epochs, not both")
    if args.sizes and args.data_limit is not None:
        raise ConfigError("give --sizes or --data-limit, not both")
    sampling = dict(sample_rate=1.0, batch_size=None) if args.full_batch else dict(batch_size=args.batch_size)
    length = dict(epochs=args.epochs) if args.epochs is not None else dict(steps=args.steps or 100)
    grid = RegimeGrid(regimes=args.regimes, kinds=args.kinds, epsilons=args.epsilons, delta=args.delta, data=args.data,
                      data_limit=args.data_limit, test_limit=args.test_limit, seeds=args.seeds, clip=args.clip,
                      lr=args.lr, lr_ours=args.lr_ours, lr_reg=args.lr_reg, optimizer=args.optimizer,
                      jvp_only=args.jvp_only, reset=args.reset, accountant=args.accountant, noise_seed=args.noise_seed,
                      **sampling, **length)
    tuning = TuningGrid(lrs=args.lrs, clips=args.clips, epsilon=args.tune_epsilon) if args.tune else None
    out = Path(args.out)
    base, _ = pretrained_base(progress=not args.quiet, base=args.base)
    store = RunStore(out / "runs", reuse=not args.fresh)
    rows, comparisons, info = [], [], {"wall_seconds": 0.0, "cpu_seconds": 0.0, "runs": 0, "runs_resumed": 0,
                                       "run_cpu_seconds": 0.0, "tuning_cpu_seconds": 0.0}
    for size in args.sizes or (args.data_limit,):
        sized = dataclasses.replace(grid, data_limit=size)
        results, found = run_comparison(sized, tuning=tuning, base=base, base_name=args.base, store=store,
                                        progress=not args.quiet, manifest_dir=out / "table3_manifests")
        rows.extend(results.rows)
        comparisons.extend(found)
        for key in info:
            info[key] += results.info[key]
    results = RegimeResults(grid, rows, summarize(rows), info)
    paths = write_outputs(out, results, comparisons, command=canonical_command(args))
    for c in comparisons:
        print(f"\n{c.data}, N = {c.num_train:,} ({c.base} base)\n{answer_table(c)}\n{c.sentence}\n"
              f"Hyperparameters: {c.hyperparameters}.")
    print(f"\n{len(rows)} runs ({info['runs_resumed']} resumed) in {info['wall_seconds'] / 60:.1f} min → {paths['md']}")
    return 0
