"""``privtangent shards``: train shard models, compose them, verify and recover the ledger.

    privtangent shards train --out DIR --data fashion-near --shards 10 [--epochs E ...]
    privtangent shards train --out DIR --data fashion-near --shards 10 --shard 3   # one shard (Slurm arrays)
    privtangent shards compose DIR          # once every shard is trained
    privtangent shards verify DIR [--head SHA]
    privtangent shards recover DIR [--rollback]
    privtangent shards info DIR | evaluate DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from privtangent.choices import REGIMES

EXIT_OK, EXIT_CHECK_FAILED = 0, 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "shards",
        help="train tangent models on disjoint shards and compose them (exact unlearning)",
        description="Sharded tangent models: split a data set into N disjoint shards, train one tangent "
        "model per shard (in parallel), serve their composition (the average of their Δw, which equals "
        "the ensemble of their outputs at the cost of one model), and keep a hash-chained ledger of "
        "every forget request (see `privtangent forget`).",
    )
    ss = p.add_subparsers(dest="shards_command", metavar="ACTION", required=True)

    t = ss.add_parser(
        "train", help="create a sharded model and train its shards",
        description="Create the sharded model directory OUT (if new) and train its shards: all missing ones "
        "with a process pool (default), Ray (--executor ray --address ...), or one per call (--shard I, for "
        "Slurm arrays or any scheduler). When every shard is trained (and no --shard was given), compose them "
        "into the served model and open the ledger. Rerunning skips finished shards.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("--out", required=True, type=Path, help="the sharded model directory")
    t.add_argument("--data", help="training data: a task name (fashion-near, digits, ...) or an image folder")
    t.add_argument("--data-limit", type=int, help="keep the first N training samples")
    t.add_argument("--test", help="test data for the accuracy printed at the end (default: the task's test split)")
    t.add_argument("--shards", type=int, help="number of shards N (when creating OUT)")
    t.add_argument("--split-seed", type=int, default=None, help="seed of the shard split (default 0)")
    t.add_argument("--shard", type=int, action="append", metavar="I",
                   help="train only shard I (repeatable); does not compose")
    g = t.add_argument_group("training (the same for every shard; fixed when OUT is created)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--blocks", type=int, help="number of last blocks linearized")
    g.add_argument("--regime", choices=REGIMES)
    g.add_argument("--reset", action=argparse.BooleanOptionalAction, default=None,
                   help="re-initialize the linearized blocks first (paper PT=F)")
    g.add_argument("--linearize-cls", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--seed", type=int, help="training seed (the same for every shard: one linearization point)")
    g.add_argument("--threads", type=int, default=None, help="torch threads per shard job (default 1)")
    b = t.add_argument_group("base model (default: the embedded default)")
    b.add_argument("--base-checkpoint", type=Path, help="a .safetensors state_dict of a timm VisionTransformer")
    b.add_argument("--base-name", help="its timm model name")
    b.add_argument("--base-kwargs", default="{}", help="JSON kwargs for timm.create_model")
    executor_args(t, default=None)
    t.add_argument("--no-compose", action="store_true", help="train only; compose later with `shards compose`")
    t.add_argument("--json", action="store_true", help="print the summary as JSON")
    t.set_defaults(func=run_train)

    c = ss.add_parser("compose", help="compose the trained shards into the served model",
                      description="Compose every trained shard of DIR into the served model and write the "
                      "ledger's create record (after `shards train --shard I` runs). Idempotent.")
    c.add_argument("dir", type=Path)
    c.add_argument("--cache", type=Path, help="feature cache folder")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=run_compose)

    v = ss.add_parser("verify", help="verify the ledger and the served model (exit 1 on a problem)",
                      description="Check the ledger's hash chain (edited, removed, inserted or reordered lines), "
                      "that the served model is the one the ledger's last entry names, that every forgotten ID "
                      "is excluded from every active shard's training set, that no checkpoint of a dropped shard "
                      "is left, and that the served Δw is the exact composition of the active shards. "
                      "Exit 0: all good; 1: a problem was found; 2: bad input.")
    v.add_argument("dir", type=Path)
    v.add_argument("--head", help="a ledger head (sha256) published earlier: it must still be in the chain")
    v.add_argument("--quick", action="store_true", help="skip re-hashing checkpoints and recomposing")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=run_verify)

    r = ss.add_parser("recover", help="finish a forget request interrupted by a crash",
                      description="Finish an interrupted forget request: roll it forward if its new model is "
                      "already served, else replay it (or, with --rollback, abort it). `privtangent forget` "
                      "does this by itself before serving a new request.")
    r.add_argument("dir", type=Path)
    r.add_argument("--rollback", action="store_true", help="abort an unfinished request instead of replaying it "
                   "(only possible before its new model was served)")
    executor_args(r, default="serial")
    r.set_defaults(func=run_recover)

    i = ss.add_parser("info", help="what the sharded model holds", description="Shards, requests, served model, ledger head.")
    i.add_argument("dir", type=Path)
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=run_info)

    e = ss.add_parser("evaluate", help="test accuracy of the served model",
                      description="Accuracy of the served composed model on its recorded test split.")
    e.add_argument("dir", type=Path)
    e.add_argument("--cache", type=Path, help="feature cache folder")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=run_evaluate)


def executor_args(p: argparse.ArgumentParser, default: str | None = "local") -> None:
    p.add_argument("--executor", choices=["local", "serial", "ray"], default=default,
                   help="where shards train: local process pool, this process (serial), or Ray"
                   + ("" if default else " (default: local; serial with --shard)"))
    p.add_argument("--workers", type=int, help="local pool size (default: number of CPUs)")
    p.add_argument("--address", help="Ray address (e.g. auto, ray://head:10001); default: start a local Ray")
    p.add_argument("--cache", type=Path, help="feature cache folder (default $PRIVTANGENT_CACHE/features)")


def _executor(args: argparse.Namespace):
    from privtangent.shards.executors import make_executor

    return make_executor(args.executor, args.workers, args.address)


def _print(obj: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(obj, indent=2, default=str))
    else:
        print("\n".join(lines))


def _data_ref(name: str, split: str, limit: int | None, base) -> dict[str, Any]:
    from privtangent.data import TASKS
    from privtangent.errors import DataError

    if name in TASKS:
        return {"task": name, "split": split, "limit": limit}
    if Path(name).is_dir():
        size = base.patch_embed.img_size
        return {"folder": str(Path(name).resolve()), "img_size": int(size[0] if isinstance(size, (tuple, list)) else size),
                "in_chans": int(base.patch_embed.proj.in_channels), "limit": limit}
    raise DataError(f"--data {name!r}: not a task ({', '.join(TASKS)}) nor an image folder")


def _load_base(args: argparse.Namespace):
    from privtangent.errors import ConfigError

    if args.base_checkpoint is None:
        from privtangent.models.pretrain import DEFAULT_MODEL, pretrained_base

        model, info = pretrained_base(progress=False)
        return model, DEFAULT_MODEL["name"], dict(DEFAULT_MODEL["kwargs"]), {"source": "embedded default", "sha256": info.get("sha256")}
    from privtangent.models.vit import build_vit, load_checkpoint

    if not args.base_name:
        raise ConfigError("--base-checkpoint needs --base-name (the timm model name)")
    try:
        kwargs = json.loads(args.base_kwargs)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--base-kwargs is not valid JSON: {err}") from None
    if not isinstance(kwargs, dict):
        raise ConfigError("--base-kwargs must be a JSON object")
    model = build_vit(args.base_name, **kwargs)
    done = load_checkpoint(model, args.base_checkpoint)
    return model, args.base_name, kwargs, {"source": str(args.base_checkpoint), **done}


def _config_from_args(args: argparse.Namespace):
    from privtangent.train.config import TrainConfig

    values = {"tangent": True}
    for field, attr in (("epochs", "epochs"), ("lr", "lr"), ("batch_size", "batch_size"), ("blocks", "blocks"),
                        ("regime", "regime"), ("reset", "reset"), ("linearize_cls", "linearize_cls"),
                        ("weight_decay", "weight_decay"), ("seed", "seed")):
        if getattr(args, attr) is not None:
            values[field] = getattr(args, attr)
    return TrainConfig.from_dict(values, section="train")


def _check_matches(model, args: argparse.Namespace) -> None:
    """Options given for an existing OUT must agree with what it was created with."""
    from privtangent.errors import ConfigError

    spec = model.spec
    wrong = []
    if args.shards is not None and args.shards != spec["num_shards"]:
        wrong.append(f"--shards {args.shards} (created with {spec['num_shards']})")
    if args.split_seed is not None and args.split_seed != spec["split_seed"]:
        wrong.append(f"--split-seed {args.split_seed} (created with {spec['split_seed']})")
    ref = spec["data"].get("ref") or {}
    if args.data is not None and args.data not in (ref.get("task"), ref.get("folder")) and \
            str(Path(args.data).resolve()) != ref.get("folder"):
        wrong.append(f"--data {args.data} (created with {ref.get('task') or ref.get('folder')})")
    if args.data_limit is not None and args.data_limit != ref.get("limit"):
        wrong.append(f"--data-limit {args.data_limit} (created with {ref.get('limit')})")
    for field, attr in (("epochs", "epochs"), ("lr", "lr"), ("batch_size", "batch_size"), ("blocks", "blocks"),
                        ("regime", "regime"), ("reset", "reset"), ("linearize_cls", "linearize_cls"),
                        ("weight_decay", "weight_decay"), ("seed", "seed")):
        given = getattr(args, attr)
        if given is not None and given != spec["config"][field]:
            wrong.append(f"--{attr.replace('_', '-')} {given} (created with {spec['config'][field]})")
    if args.threads is not None and args.threads != spec["threads"]:
        wrong.append(f"--threads {args.threads} (created with {spec['threads']})")
    if wrong:
        raise ConfigError(f"{model.directory} already exists with other settings: {'; '.join(wrong)}. "
                          "Leave these options out to continue it, or choose another --out")


def open_or_create(args: argparse.Namespace):
    from privtangent.errors import ConfigError
    from privtangent.shards.sharding import ShardedModel

    if (args.out / "sharded.json").exists():
        model = ShardedModel(args.out)
        _check_matches(model, args)
        return model, None
    if not args.data or args.shards is None:
        raise ConfigError(f"{args.out} is not a sharded model yet: give --data and --shards to create it")
    base, name, kwargs, info = _load_base(args)
    data_ref = _data_ref(args.data, "train", args.data_limit, base)
    test_ref: dict[str, Any] | None
    if args.test:
        test_ref = _data_ref(args.test, "test", None, base)
    else:
        test_ref = {"task": args.data, "split": "test", "limit": None} if "task" in data_ref else None
    from privtangent.shards.sharding import load_ref

    data = load_ref(data_ref)
    model = ShardedModel.create(args.out, base, data, _config_from_args(args), args.shards, base_name=name,
                                base_kwargs=kwargs, seed=args.split_seed or 0, data_ref=data_ref, test_ref=test_ref,
                                threads=args.threads or 1, base_info=info)
    return model, data


def run_train(args: argparse.Namespace) -> int:
    import time

    model, data = open_or_create(args)
    if args.executor is None:
        args.executor = "serial" if args.shard else "local"
    executor = _executor(args)
    start = time.perf_counter()
    quiet = args.json

    def report(out) -> None:
        if not quiet:
            print(f"shard {out.shard}: {out.num_samples} samples, {out.seconds:.1f} s "
                  f"(train accuracy {out.metrics.get('train_accuracy', float('nan')):.3f}) [{out.worker}]",
                  file=sys.stderr, flush=True)

    outputs = model.train(args.shard, executor=executor, data=data, cache_dir=args.cache, on_result=report)
    summary: dict[str, Any] = {"directory": str(model.directory), "num_shards": model.num_shards,
                               "trained_now": [o.shard for o in outputs], "executor": args.executor,
                               "wall_seconds": round(time.perf_counter() - start, 3),
                               "shard_train_seconds": round(sum(o.seconds for o in outputs), 3),
                               "missing": model.missing_shards()}
    lines = [f"trained {len(outputs)} shard(s) in {summary['wall_seconds']:.1f} s wall "
             f"({summary['shard_train_seconds']:.1f} s of shard training, executor {args.executor})"]
    if args.shard or args.no_compose or summary["missing"]:
        if summary["missing"]:
            lines.append(f"{len(summary['missing'])} shard(s) still to train; then: privtangent shards compose {model.directory}")
        else:
            lines.append(f"every shard is trained; compose with: privtangent shards compose {model.directory}")
        _print(summary, args.json, lines)
        return EXIT_OK
    summary.update(_compose(model, args.cache))
    lines += _compose_lines(summary)
    _print(summary, args.json, lines)
    return EXIT_OK


def _compose(model, cache) -> dict[str, Any]:
    manifest = model.build()
    out = {"served_model_sha256": manifest["sha256"], "ledger_head": model.ledger.head()}
    if model.spec.get("test"):
        out.update(model.evaluate(cache_dir=cache))
    return out


def _compose_lines(summary: dict[str, Any]) -> list[str]:
    lines = [f"served model: composition of the shards, sha256 {summary['served_model_sha256']}",
             f"ledger head: {summary['ledger_head']} (publish it; check later with `shards verify --head`)"]
    if "test_accuracy" in summary:
        lines.append(f"test accuracy: {100 * summary['test_accuracy']:.2f}% on {summary['num_test']} samples")
    return lines


def run_compose(args: argparse.Namespace) -> int:
    from privtangent.shards.sharding import ShardedModel

    model = ShardedModel(args.dir)
    summary = _compose(model, args.cache)
    _print(summary, args.json, _compose_lines(summary))
    return EXIT_OK


def run_verify(args: argparse.Namespace) -> int:
    from privtangent.shards.sharding import ShardedModel
    from privtangent.shards.unlearn import verify

    report = verify(ShardedModel(args.dir), head=args.head, deep=not args.quick)
    if args.json:
        print(json.dumps({"ok": report.ok, "problems": report.problems, **report.info}, indent=2, default=str))
    else:
        for p in report.problems:
            print(f"FAIL: {p}")
        i = report.info
        print(f"{'OK' if report.ok else 'FAILED'}: {i.get('ledger_records', 0)} ledger records, "
              f"{i.get('requests_committed', 0)} forget requests committed, {i.get('forgotten_ids', 0)} IDs forgotten, "
              f"{i.get('active_shards', '?')} active shards; ledger head {i.get('ledger_head')}")
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def run_recover(args: argparse.Namespace) -> int:
    from privtangent.shards.sharding import ShardedModel
    from privtangent.shards.unlearn import recover

    done = recover(ShardedModel(args.dir), executor=_executor(args), cache_dir=args.cache, rollback=args.rollback)
    print("\n".join(done) if done else "nothing to recover: every request is committed")
    return EXIT_OK


def run_info(args: argparse.Namespace) -> int:
    from privtangent.shards.sharding import ShardedModel

    model = ShardedModel(args.dir)
    info: dict[str, Any] = {"directory": str(model.directory), "num_shards": model.num_shards,
                            "shard_sizes": model.shard_map.sizes, "config": model.spec["config"],
                            "data": {k: v for k, v in model.spec["data"].items() if k != "classes"},
                            "trained_shards": model.num_shards - len(model.missing_shards())}
    if model.has_served():
        manifest = model.served_manifest()
        state = manifest["state"]
        info.update({
            "served_model_sha256": manifest["sha256"],
            "active_shards": [e["shard"] for e in state["shards"] if e["status"] == "active"],
            "removed_shards": [e["shard"] for e in state["shards"] if e["status"] == "removed"],
            "retrained_shards": [e["shard"] for e in state["shards"] if e.get("version", 0) > 0],
            "requests": [{k: q[k] for k in ("request", "mode", "shards")} | {"num_ids": len(q["ids"])}
                         for q in state["requests"]],
            "ledger_head": model.ledger.head(),
        })
    lines = [f"{info['directory']}: {info['num_shards']} shards, {info['trained_shards']} trained"]
    if "served_model_sha256" in info:
        lines += [f"served: {len(info['active_shards'])} active shards, removed {info['removed_shards']}, "
                  f"retrained {info['retrained_shards']}; {len(info['requests'])} forget requests",
                  f"served model sha256 {info['served_model_sha256']}", f"ledger head {info['ledger_head']}"]
    _print(info, args.json, lines)
    return EXIT_OK


def run_evaluate(args: argparse.Namespace) -> int:
    from privtangent.shards.sharding import ShardedModel

    result = ShardedModel(args.dir).evaluate(cache_dir=args.cache)
    _print(result, args.json, [f"test accuracy: {100 * result['test_accuracy']:.2f}% on {result['num_test']} samples"])
    return EXIT_OK
