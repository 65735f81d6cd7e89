"""``privtangent compare-regimes``: the paper's Table 3 (DP fine-tuning, Ours vs Reg, per regime and ε)."""

from __future__ import annotations

import argparse


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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare-regimes",
        help="Table 3: DP fine-tuning per regime, tangent (Ours) vs non-linear (Reg), at several ε",
        description="For each data set, regime (full = last block, bitfit = its biases, layernorm = its LayerNorm\n"
        "affine parameters, fc = the head; the head is trained in every regime), model (Ours = tangent,\n"
        "Reg = non-linear fine-tuning of the same parameters), target ε and seed: calibrate σ, train with\n"
        "DP (default: full-batch DP-GD, 50 epochs = 50 steps, Adam, no LR decay, cross-entropy, tangent\n"
        "models predict with the JVP output only), evaluate. Writes OUT/table3.md (the paper's layout,\n"
        "mean ± std over seeds, and whether Ours ≥ Reg and accuracy rises with ε), OUT/table3.csv,\n"
        "OUT/table3_runs.csv, OUT/table3.png and OUT/table3_manifests/*.json (ε, δ, σ, C, q, steps, accountant,\n"
        "sampling scheme of every run). The DP noise comes from OS entropy unless --noise-seed is given.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  privtangent compare-regimes --data-limit 500 --seeds 0,1,2 --out runs/table3\n"
        "exit status: 0 ok, 2 bad input",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="where the tables, plot and manifests go")
    p.add_argument("--regimes", type=_names, default=("full", "bitfit", "layernorm", "fc"), metavar="R,...",
                   help="regimes (default full,bitfit,layernorm,fc)")
    p.add_argument("--epsilons", type=_floats, default=(1.0, 3.0, 8.0), metavar="E,...", help="target ε (default 1,3,8)")
    p.add_argument("--delta", type=float, default=1e-5, help="δ (default 1e-5)")
    p.add_argument("--data", type=_names, default=("fashion-near", "digits"), metavar="NAME,...",
                   help="data sets (default fashion-near,digits: the near and far tasks)")
    p.add_argument("--data-limit", type=int, metavar="N", help="training samples per data set (first N; default all)")
    p.add_argument("--test-limit", type=int, metavar="N", help="test samples per data set (default all)")
    p.add_argument("--epochs", type=float, default=50, help="epochs (= steps for full batch; default 50)")
    p.add_argument("--sample-rate", type=float, default=1.0, metavar="Q",
                   help="Poisson sampling rate q (default 1: full-batch DP-GD, the paper's setting)")
    p.add_argument("--clip", type=float, default=1.0, metavar="C", help="per-sample clipping norm C (default 1)")
    p.add_argument("--lr", type=float, default=1e-2, help="learning rate (default 1e-2)")
    p.add_argument("--lr-ours", type=float, metavar="LR", help="learning rate of the tangent models (default: --lr)")
    p.add_argument("--lr-reg", type=float, metavar="LR", help="learning rate of the non-linear models (default: --lr)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="optimizer (default adam)")
    p.add_argument("--seeds", type=_ints, default=(0, 1, 2), metavar="S,...", help="seeds (default 0,1,2)")
    p.add_argument("--kinds", type=_names, default=("Ours", "Reg"), metavar="K,...",
                   help="Ours (tangent) and/or Reg (non-linear) (default both)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--jvp-only", dest="jvp_only", action="store_true", default=True,
                     help="tangent models predict with J·Δw only (default; the paper's DP setting)")
    out.add_argument("--full-output", dest="jvp_only", action="store_false",
                     help="tangent models predict with f_w + J·Δw")
    p.add_argument("--reset", action="store_true", help="reset the fine-tuned block first (paper PT=F)")
    p.add_argument("--accountant", default="prv", choices=("prv", "rdp", "gdp"), help="accountant (default prv)")
    p.add_argument("--noise-seed", type=int, metavar="S",
                   help="seed the DP noise (reproducible; every manifest says NOT FOR RELEASE)")
    p.add_argument("--threads", type=int, metavar="T", help="torch threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def canonical_command(args: argparse.Namespace) -> str:
    """The command that reproduces this run, every option spelled out."""
    import shlex

    def join(values) -> str:
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)

    parts = ["python", "-m", "privtangent.cli.main", "compare-regimes", "--out", str(args.out),
             "--data", join(args.data), "--regimes", join(args.regimes), "--epsilons", join(args.epsilons),
             "--delta", f"{args.delta:g}", "--epochs", f"{args.epochs:g}", "--sample-rate", f"{args.sample_rate:g}",
             "--clip", f"{args.clip:g}", "--lr", f"{args.lr:g}", "--optimizer", args.optimizer,
             "--seeds", join(args.seeds), "--kinds", join(args.kinds),
             "--jvp-only" if args.jvp_only else "--full-output", "--accountant", args.accountant]
    for flag, value in (("--lr-ours", args.lr_ours), ("--lr-reg", args.lr_reg),
                        ("--data-limit", args.data_limit), ("--test-limit", args.test_limit),
                        ("--noise-seed", args.noise_seed), ("--threads", args.threads)):
        if value is not None:
            parts += [flag, str(value)]
    if args.reset:
        parts.append("--reset")
    if args.quiet:
        parts.append("--quiet")
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from privtangent.errors import ConfigError
    from privtangent.experiments.regimes import RegimeGrid, markdown_table, run_grid, write_outputs

    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be ≥ 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    grid = RegimeGrid(regimes=args.regimes, epsilons=args.epsilons, delta=args.delta, data=args.data,
                      data_limit=args.data_limit, test_limit=args.test_limit, epochs=args.epochs,
                      sample_rate=args.sample_rate, clip=args.clip, lr=args.lr, lr_ours=args.lr_ours, lr_reg=args.lr_reg,
                      optimizer=args.optimizer,
                      seeds=args.seeds, jvp_only=args.jvp_only, reset=args.reset, accountant=args.accountant,
                      noise_seed=args.noise_seed, kinds=args.kinds)
    results = run_grid(grid, progress=not args.quiet, manifest_dir=Path(args.out) / "table3_manifests")
    paths = write_outputs(results, args.out, command=canonical_command(args))
    print(markdown_table(results.summary, grid))
    print(f"{len(results.rows)} runs in {results.info['wall_seconds'] / 60:.1f} min → {paths['md']}")
    return 0
