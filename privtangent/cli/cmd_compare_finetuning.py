"""``privtangent compare-finetuning``: the paper's Table 1 (TAFT vs NLFT vs FC) on the embedded default."""

from __future__ import annotations

import argparse
import sys

from privtangent.choices import TABLE1_EPOCHS as DEFAULT_EPOCHS
from privtangent.choices import TABLE1_METHODS as METHOD_ORDER
from privtangent.choices import TABLE1_TASKS as TASKS
from privtangent.cli.options import add_device_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare-finetuning",
        help="Table 1: TAFT vs non-linear fine-tuning vs the head, near and far task",
        description="Reproduce the paper's Table 1 on the embedded default: NLFT-1, TAFT-1, NLFT-k, TAFT-k\n"
        "(k = half the base model's depth) and FC, each with and without resetting the fine-tuned blocks\n"
        "(PT) and with and without a fresh trained CLS token (CLS), on the near task (Fashion-MNIST 5–9,\n"
        "first 5,000 training images, full test set) and the far task (digits), over several seeds.\n"
        "Writes OUT/table1.md, OUT/table1.csv (mean ± std per setting), OUT/table1_runs.csv (every run)\n"
        "and OUT/table1.json. The frozen prefix runs once per data set (feature cache).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  privtangent compare-finetuning --out benchmarks/results --seeds 0 1 2 --epochs 10\n"
        "exit status: 0 ok, 2 bad input",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="where the tables go")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="S", help="seeds (default 0 1 2)")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"epochs per run (default {DEFAULT_EPOCHS})")
    p.add_argument("--tasks", nargs="+", choices=tuple(TASKS), default=list(TASKS), help="tasks (default: near far)")
    p.add_argument("--methods", nargs="+", choices=METHOD_ORDER, metavar="M",
                   help=f"only these columns ({', '.join(METHOD_ORDER)}; default all)")
    p.add_argument("--near-limit", type=int, default=5000, metavar="N",
                   help="training samples of the near task (default 5000)")
    p.add_argument("--test-limit", type=int, metavar="N", help="test samples per task (default: the full test sets)")
    p.add_argument("--no-nlft-reset", action="store_true",
                   help="run NLFT only from the pretrained block (PT=T), as in the paper's NLFT columns")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2, one per core)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (skip finished runs)")
    p.add_argument("--feature-cache", metavar="DIR",
                   help="where frozen-prefix features are cached (default $PRIVTANGENT_CACHE/features)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from privtangent.experiments.finetuning import best_per_family, run_table1

    table = run_table1(args.out, seeds=args.seeds, epochs=args.epochs, tasks=args.tasks, near_limit=args.near_limit,
                       test_limit=args.test_limit, families=args.methods, nlft_reset=not args.no_nlft_reset,
                       workers=args.workers, threads=args.threads, batch_size=args.batch_size, resume=args.resume,
                       progress=not args.quiet, command=canonical_command(args), cache_dir=args.feature_cache)
    for task in args.tasks:
        best = best_per_family(table.summary, task)
        cells = ", ".join(f"{f} {e['mean']:.1f}±{e['std']:.1f}" for f, e in best.items())
        print(f"{task}: {cells}")
    print(f"{len(table.rows)} runs, {table.wall_seconds / 60:.1f} min → {args.out}/table1.md", file=sys.stdout)
    return 0


def canonical_command(args: argparse.Namespace) -> str:
    """The command with every effective setting spelled out (what the tables were made with)."""
    import shlex

    parts = ["privtangent", "compare-finetuning", "--out", str(args.out), "--seeds", *map(str, args.seeds),
             "--epochs", str(args.epochs), "--tasks", *args.tasks, "--near-limit", str(args.near_limit)]
    if args.test_limit is not None:
        parts += ["--test-limit", str(args.test_limit)]
    if args.methods:
        parts += ["--methods", *args.methods]
    if args.no_nlft_reset:
        parts.append("--no-nlft-reset")
    parts += ["--workers", str(args.workers), "--threads", str(args.threads), "--batch-size", str(args.batch_size)]
    return " ".join(shlex.quote(p) for p in parts)
