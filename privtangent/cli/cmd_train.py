"""``privtangent train``: fine-tune one model (TAFT, NLFT or FC) into a run directory.

Values come from, in order of precedence: the command line, the ``--config`` file (YAML,
TOML or JSON: TrainConfig fields under ``train:`` or at the top level, plus ``data``,
``data_limit``, ``test_limit``, ``model`` and ``out``), and the method's defaults
(``TrainConfig.recipe``: lr 1e-2 + rescaled square loss for TAFT, lr 1e-3 + cross-entropy
for NLFT and FC). Every input is validated before anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TRAIN_FLAGS = {  # TrainConfig field -> the flag that sets it
    "tangent": "--tangent", "blocks": "--blocks", "regime": "--regime", "reset": "--reset",
    "linearize_cls": "--linearize-cls", "loss": "--loss", "alpha": "--alpha", "kappa": "--kappa",
    "lr": "--lr", "epochs": "--epochs", "batch_size": "--batch-size", "weight_decay": "--weight-decay",
    "project_radius": "--project-radius", "schedule": "--schedule", "output": "--output", "seed": "--seed",
}
TOP_LEVEL = ("data", "data_limit", "test_limit", "model", "out", "train", "threads")


def register(sub: argparse._SubParsersAction) -> None:
    from privtangent.data import TASKS
    from privtangent.losses import LOSSES
    from privtangent.tangent.regimes import REGIMES

    p = sub.add_parser(
        "train",
        help="fine-tune one model (TAFT, NLFT or FC) into a run directory",
        description="Fine-tune the last blocks of a ViT, tangent (TAFT: trains Δw of the linearized\n"
        "model) or not (NLFT: trains the same parameters of the original network). Writes\n"
        "DIR/metrics.json (test_accuracy as a fraction, train_seconds), the trained parameters\n"
        "(DIR/model.json + safetensors, verified by sha256) and a resumable state after every\n"
        "epoch (DIR/state.json). Base model: the embedded default unless --model/--checkpoint.\n"
        "Flags override --config values; unset values take the method's defaults.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  privtangent train --data fashion-near --data-limit 5000 --blocks 1 --tangent --reset --epochs 10 --out runs/taft1\n"
        "  privtangent train --data digits --no-tangent --regime fc --epochs 10 --seed 1 --out runs/fc\n"
        "  privtangent train --config run.yaml --resume\n"
        "exit status: 0 ok, 2 bad input (nothing is written) or a corrupt checkpoint",
    )
    g = p.add_argument_group("data and output")
    g.add_argument("--data", choices=TASKS, help="the task (default fashion-near); image folders via --config")
    g.add_argument("--data-limit", type=int, metavar="N", help="train on the first N training samples")
    g.add_argument("--test-limit", type=int, metavar="N", help="evaluate on the first N test samples (default all)")
    g.add_argument("--out", metavar="DIR", help="the run directory (required here or in the config)")
    g.add_argument("--config", metavar="FILE", help="a YAML/TOML/JSON run file; command-line flags override it")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished epoch")
    m = p.add_argument_group("base model (default: the embedded default)")
    m.add_argument("--model", metavar="NAME", help="a timm VisionTransformer name (needs --checkpoint)")
    m.add_argument("--checkpoint", metavar="FILE", help="the base model's weights, a local .safetensors file")
    m.add_argument("--model-kwargs", metavar="JSON", help='timm kwargs, e.g. \'{"img_size": 28, "in_chans": 1}\'')
    t = p.add_argument_group("method")
    t.add_argument("--tangent", action=argparse.BooleanOptionalAction, default=None,
                   help="TAFT (--tangent, default) or non-linear fine-tuning (--no-tangent)")
    t.add_argument("--blocks", type=int, metavar="K", help="fine-tune the last K blocks (default 1)")
    t.add_argument("--regime", choices=REGIMES, help="which parameters are trained (default full; fc = the head only)")
    t.add_argument("--reset", action=argparse.BooleanOptionalAction, default=None,
                   help="re-initialize the fine-tuned blocks first (PyTorch default init; paper PT=F)")
    t.add_argument("--linearize-cls", action=argparse.BooleanOptionalAction, default=None,
                   help="replace the CLS token by a fresh one and train it (paper CLS=T)")
    t.add_argument("--output", choices=("full", "jvp"), help="TAFT output: f_w + J·Δw (full) or J·Δw (jvp)")
    o = p.add_argument_group("optimization")
    o.add_argument("--epochs", type=int, metavar="E", help="epochs (default 10)")
    o.add_argument("--seed", type=int, metavar="S", help="seed of the head, reset, CLS token and data order (default 0)")
    o.add_argument("--loss", choices=LOSSES, help="rsl (rescaled square loss, TAFT default), ce (NLFT/FC default), mse")
    o.add_argument("--kappa", type=float, help="RSL κ (default 15)")
    o.add_argument("--alpha", type=float, help="RSL α (default 1)")
    o.add_argument("--lr", type=float, help="Adam learning rate (default 1e-2 for TAFT, 1e-3 for NLFT and FC)")
    o.add_argument("--batch-size", type=int, metavar="B", help="batch size (default 32)")
    o.add_argument("--weight-decay", type=float, metavar="WD",
                   help="TAFT: wd·‖Δw‖² penalty; NLFT: decoupled AdamW decay (default 1e-4)")
    o.add_argument("--project-radius", type=float, metavar="R", help="project the trained vector onto ‖·‖₂ ≤ R")
    o.add_argument("--schedule", choices=("step", "constant"), help="lr ÷10 at 50%% and 83%% of epochs (step, default)")
    r = p.add_argument_group("running")
    r.add_argument("--threads", type=int, metavar="N",
                   help="torch threads (default 1: fastest for small models on shared CPUs; fixed so that a "
                   "resumed run is bit-identical)")
    r.add_argument("--feature-cache", metavar="DIR",
                   help="where frozen-prefix features are cached (default $PRIVTANGENT_CACHE/features)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--json", action="store_true", help="print metrics.json to stdout at the end")
    p.set_defaults(func=run)


def _merge_config(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str], dict[str, Any], Path | None]:
    """Train fields with their source ('--lr', 'train.lr', 'lr'), and the top-level settings."""
    from privtangent.errors import ConfigError
    from privtangent.train.config import TrainConfig, read_config_file

    fields = set(TrainConfig.field_names())
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    top: dict[str, Any] = {}
    root = None
    if args.config:
        path = Path(args.config)
        data = read_config_file(path)
        root = path.resolve().parent
        unknown = sorted(set(data) - set(TOP_LEVEL) - fields)
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown field in {path} (known: {', '.join(TOP_LEVEL)} and the "
                              f"training fields {', '.join(sorted(fields))})")
        section = data.get("train") or {}
        if not isinstance(section, dict):
            raise ConfigError(f"train: must be a mapping of training fields, got {type(section).__name__}")
        for key, value in section.items():
            if key not in fields:
                raise ConfigError(f"train.{key}: unknown field (known: {', '.join(sorted(fields))})")
            values[key], sources[key] = value, f"train.{key}"
        for key in fields & set(data):
            if key in values:
                raise ConfigError(f"{key}: given both at the top level and under train:; keep one")
            values[key], sources[key] = data[key], key
        top = {k: data[k] for k in TOP_LEVEL if k in data and k != "train"}
    for key, flag in TRAIN_FLAGS.items():
        value = getattr(args, key)
        if value is not None:
            values[key], sources[key] = value, flag
    return values, sources, top, root


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """Everything the run needs, validated; raises ConfigError naming the bad field."""
    from privtangent.errors import ConfigError
    from privtangent.train.config import TrainConfig

    values, sources, top, root = _merge_config(args)
    given = {k: v for k, v in values.items() if v is not None}
    try:
        config = TrainConfig.recipe(given.pop("tangent", True), given.pop("regime", "full"), section="train", **given)
    except ConfigError as err:
        field, _, rest = str(err).partition(":")
        name = field.removeprefix("train.")
        source = sources.get(name)
        raise ConfigError(f"{source}:{rest}" if source else str(err)) from None

    def rel(value: Any) -> Any:
        return value if root is None or value is None or Path(value).is_absolute() else str(root / value)

    model_cfg = top.get("model") or {}
    if not isinstance(model_cfg, dict):
        raise ConfigError(f"model: must be a mapping (name, kwargs, checkpoint), got {type(model_cfg).__name__}")
    unknown = sorted(set(model_cfg) - {"name", "kwargs", "checkpoint"})
    if unknown:
        raise ConfigError(f"model.{unknown[0]}: unknown field (known: name, kwargs, checkpoint)")
    model_kwargs = model_cfg.get("kwargs")
    if args.model_kwargs is not None:
        try:
            model_kwargs = json.loads(args.model_kwargs)
        except json.JSONDecodeError as err:
            raise ConfigError(f"--model-kwargs: not valid JSON ({err})") from None
        if not isinstance(model_kwargs, dict):
            raise ConfigError("--model-kwargs: must be a JSON object")
    out = args.out or rel(top.get("out"))
    if not out:
        raise ConfigError("--out: required (the run directory), on the command line or as out: in the config")
    threads = args.threads if args.threads is not None else top.get("threads", 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"--threads: must be an integer ≥ 1, got {threads!r}")
    return {
        "config": config,
        "data": args.data or top.get("data") or "fashion-near",
        "data_limit": args.data_limit if args.data_limit is not None else top.get("data_limit"),
        "test_limit": args.test_limit if args.test_limit is not None else top.get("test_limit"),
        "model_name": args.model or model_cfg.get("name"),
        "checkpoint": args.checkpoint or rel(model_cfg.get("checkpoint")),
        "model_kwargs": model_kwargs,
        "out": Path(out),
        "threads": threads,
        "root": root,
        "sources": sources,
    }


def run(args: argparse.Namespace) -> int:
    from privtangent.features import FeatureCache
    from privtangent.models.pretrain import cache_dir
    from privtangent.train.run import has_run, load_base, load_data, train_run

    settings = resolve(args)
    config, out = settings["config"], settings["out"]
    if has_run(out) and not args.resume:  # before any expensive loading
        from privtangent.errors import ConfigError

        raise ConfigError(f"--out {out}: already holds a training run; pass --resume to continue it, "
                          "or choose another directory")
    progress = not args.quiet
    base, base_record = load_base(settings["model_name"], settings["checkpoint"], settings["model_kwargs"],
                                  progress=progress)
    depth = len(base.blocks)
    if config.blocks > depth:
        from privtangent.errors import ConfigError

        raise ConfigError(f"{settings['sources'].get('blocks', 'blocks')}: must be in [1, {depth}] "
                          f"(the base model has {depth} blocks), got {config.blocks}")
    data_spec = settings["data"]
    train, test, data_record = load_data(data_spec, base, settings["data_limit"], settings["test_limit"],
                                         root=settings["root"])
    result = train_run(base, train, config, out, test=test, base_record=base_record, data_extra=data_record,
                       cache=FeatureCache(args.feature_cache or cache_dir() / "features"), progress=progress, resume=args.resume,
                       threads=settings["threads"])
    metrics = result.metrics
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        resumed = f", resumed after epoch {result.resumed_from}" if result.resumed_from else ""
        print(f"{config.method} on {train.name} ({len(train)} samples, {config.epochs} epochs{resumed}): "
              f"test accuracy {100 * metrics['test_accuracy']:.2f}% on {len(test)}, "
              f"{metrics['train_seconds']:.1f} s training → {out}", file=sys.stdout)
    return 0
