"""``privtangent forget``: serve a forget request on a sharded model, recorded in its ledger."""

from __future__ import annotations

import argparse
import json
import re
import textwrap
from pathlib import Path

from privtangent.cli.cmd_shards import executor_args

EXIT_OK = 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "forget",
        help="forget sample IDs: drop or retrain the shards that hold them",
        description=textwrap.fill("Forget training samples by ID on a sharded tangent model (`privtangent shards train`). "
        "--mode remove drops the shards holding the IDs from the composition (exact, costs one weighted "
        "sum); --mode retrain retrains those shards without the IDs (same seeds) and recomposes. The "
        "checkpoints of dropped or superseded shards are deleted. Each request is recorded in the model's "
        "hash-chained ledger (IDs as a salted commitment; the salt is printed as a receipt) and applied "
        "crash-safely: an interrupted request is finished by the next `forget` or by `shards recover`. "
        "Exit 2, with nothing changed, for unknown IDs, IDs already forgotten, or a request that would "
        "leave no shard.", width=90),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  privtangent forget --model runs/shards --ids 17,4242\n"
        "  privtangent forget --model runs/shards --ids-file ids.txt --mode retrain",
    )
    p.add_argument("--model", required=True, type=Path, help="the sharded model directory")
    ids = p.add_mutually_exclusive_group(required=True)
    ids.add_argument("--ids", help="sample IDs, comma-separated (e.g. 1,2,3)")
    ids.add_argument("--ids-file", type=Path, help="a file with one sample ID per line (# comments allowed)")
    p.add_argument("--mode", choices=["remove", "retrain"], default="remove",
                   help="remove: drop the shards (default); retrain: retrain them without the IDs")
    executor_args(p, default="serial")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def read_ids(text: str, source: str) -> list[int]:
    """IDs from ``text``: separated by commas, whitespace or newlines; '#' starts a comment."""
    from privtangent.shards.unlearn import ForgetError

    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0]
        for token in re.split(r"[,\s]+", line.strip()):
            if not token:
                continue
            if not re.fullmatch(r"[+-]?\d+", token):
                where = source if source == "--ids" else f"{source} line {number}"
                raise ForgetError(f"{where}: {token!r} is not a sample ID (IDs are integers)")
            out.append(int(token))
    if not out:
        raise ForgetError(f"{source}: no sample IDs given")
    return out


def run(args: argparse.Namespace) -> int:
    from privtangent.errors import DataError
    from privtangent.shards.executors import make_executor
    from privtangent.shards.sharding import ShardedModel
    from privtangent.shards.unlearn import forget

    if args.ids is not None:
        ids = read_ids(args.ids, "--ids")
    else:
        try:
            text = args.ids_file.read_text()
        except OSError as err:
            raise DataError(f"--ids-file {args.ids_file}: cannot read it ({err.strerror})") from None
        ids = read_ids(text, str(args.ids_file))
    model = ShardedModel(args.model)
    result = forget(model, ids, args.mode, executor=make_executor(args.executor, args.workers, args.address),
                    cache_dir=args.cache)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return EXIT_OK
    lines = list(result.recovered)
    lines.append(f"request {result.request} ({result.mode}): forgot {result.num_ids} sample(s) held by shard(s) "
                 f"{', '.join(map(str, result.shards_touched))} in {result.seconds:.3f} s")
    if result.shards_removed:
        lines.append(f"  removed shard(s): {', '.join(map(str, result.shards_removed))}")
    if result.shards_retrained:
        lines.append(f"  retrained shard(s): {', '.join(map(str, result.shards_retrained))}")
    lines += [f"  active shards now: {result.active_shards}",
              f"  served model: {result.before[:16]}… -> {result.after[:16]}…",
              f"  receipt: ids_sha256 {result.ids_sha256} salt {result.salt}",
              f"  ledger head: {result.ledger_head}"]
    print("\n".join(lines))
    return EXIT_OK
