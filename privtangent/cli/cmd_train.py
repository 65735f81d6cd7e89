"""``privtangent train``: fine-tune one model (TAFT, NLFT or FC) into a run directory.

Values come from, in order of precedence: the command line, the ``--config`` file (the sections
every command accepts: ``model``, ``data``, ``training`` — or ``train`` —, run settings ``out``
and ``threads``; see ``privtangent.config.schema``), and the method's defaults
(``TrainConfig.recipe``: lr 1e-2 + rescaled square loss for TAFT, lr 1e-3 + cross-entropy for
NLFT and FC). Every input is validated before anything is written; an error names the flag or
the config field the bad value came from.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from privtangent.choices import LOSSES, OUTPUTS, REGIMES, SCHEDULES, TASKS
from privtangent.cli.options import add_device_option
from privtangent.errors import ConfigError
from privtangent.io.outdir import check_output_dir

TRAIN_FLAGS = {  # TrainConfig field -> the flag that sets it
    "tangent": "--tangent", "blocks": "--blocks", "regime": "--regime", "reset": "--reset",
    "linearize_cls": "--linearize-cls", "loss": "--loss", "alpha": "--alpha", "kappa": "--kappa",
    "lr": "--lr", "epochs": "--epochs", "batch_size": "--batch-size", "weight_decay": "--weight-decay",
    "project_radius": "--project-radius", "schedule": "--schedule", "output": "--output", "seed": "--seed",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune one model (TAFT, NLFT or FC), with DP (--epsilon) or without, into a model directory",
        description="Fine-tune the last blocks of a ViT, tangent (TAFT: trains Δw of the linearized\n"
        "model) or not (NLFT: trains the same parameters of the original network). Writes the model\n"
        "directory a team releases: DIR/model.safetensors (Δw keyed by the base model's parameter\n"
        "names), DIR/model.json (base, config, data hashes, metrics, and a privacy block),\n"
        "DIR/model_card.md and DIR/metrics.json (test_accuracy as a fraction, train_seconds).\n"
        "\n"
        "With --epsilon E it trains with DP-SGD (σ calibrated by the PRV accountant for E at δ):\n"
        "Poisson sampling at rate q (--sample-rate, or --batch-size B for q = B/N; default q = 256/N\n"
        "above 5,000 samples, full-batch DP-GD below), per-example clipping at C (--max-grad-norm),\n"
        "Gaussian noise from OS entropy; progress shows the ε spent so far. Without --epsilon it is\n"
        "not private (model.json says so) and writes a resumable state after every epoch.\n"
        "Base model: the embedded default unless --model/--checkpoint. Flags override --config values.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  privtangent train --data fashion-near --data-limit 5000 --blocks 1 --tangent --reset --epochs 10 --out runs/taft1\n"
        "  privtangent train --data digits --no-tangent --regime fc --epochs 10 --seed 1 --out runs/fc\n"
        "  privtangent train --config run.yaml --resume\n"
        "  privtangent train --data fashion-near --epsilon 3 --sample-rate 0.01 --out runs/release\n"
        "exit status: 0 ok, 2 bad input (nothing is written) or a corrupt checkpoint",
    )
    g = p.add_argument_group("data and output")
    g.add_argument("--data", choices=TASKS, help="the task (default fashion-near); image folders via --config")
    g.add_argument("--data-limit", type=int, metavar="N", help="train on the first N training samples")
    g.add_argument("--test-limit", type=int, metavar="N", help="evaluate on the first N test samples (default all)")
    g.add_argument("--out", metavar="DIR", help="the run directory (required here or in the config)")
    g.add_argument("--config", metavar="FILE",
                   help="a YAML/TOML/JSON file with the sections every command accepts (model, data, training or "
                        "train, privacy; see configs/example.yaml); command-line flags override it")
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
    t.add_argument("--output", choices=OUTPUTS, help="TAFT output: f_w + J·Δw (full) or J·Δw (jvp)")
    o = p.add_argument_group("optimization")
    o.add_argument("--epochs", type=int, metavar="E", help="epochs (default 10)")
    o.add_argument("--seed", type=int, metavar="S", help="seed of the head, reset, CLS token and data order (default 0)")
    o.add_argument("--loss", choices=LOSSES, help="rsl (rescaled square loss, TAFT default), ce (NLFT/FC default), mse")
    o.add_argument("--kappa", type=float, help="RSL κ (default 15)")
    o.add_argument("--alpha", type=float, help="RSL α (default 1)")
    o.add_argument("--lr", type=float, help="Adam learning rate (default 1e-2 for TAFT, 1e-3 for NLFT and FC)")
    o.add_argument("--batch-size", type=int, metavar="B",
                   help="batch size (default 32); with --epsilon, the expected DP batch size (q = B/N)")
    o.add_argument("--weight-decay", type=float, metavar="WD",
                   help="TAFT: wd·‖Δw‖² penalty; NLFT: decoupled AdamW decay (default 1e-4)")
    o.add_argument("--project-radius", type=float, metavar="R", help="project the trained vector onto ‖·‖₂ ≤ R")
    o.add_argument("--schedule", choices=SCHEDULES, help="lr ÷10 at 50%% and 83%% of epochs (step, default)")
    d = p.add_argument_group("differential privacy (--epsilon trains with DP-SGD)")
    d.add_argument("--epsilon", type=float, metavar="E", help="train with DP at this ε (σ calibrated for it)")
    d.add_argument("--delta", type=float, metavar="D", help="δ of the guarantee (default min(1e-5, 1/(10N)))")
    d.add_argument("--sample-rate", type=float, metavar="Q",
                   help="Poisson sampling rate q in (0, 1]; 1 = full-batch DP-GD (default: 256/N above 5,000 "
                        "samples, else 1); or give --batch-size B for q = B/N")
    d.add_argument("--max-grad-norm", type=float, metavar="C", help="per-example clipping norm C (default 1)")
    d.add_argument("--noise-seed", type=int, metavar="S",
                   help="seed the DP noise (reproducible runs only: the model is marked NOT FOR RELEASE)")
    r = p.add_argument_group("running")
    r.add_argument("--threads", type=int, metavar="N",
                   help="torch threads (default 1: fastest for small models on shared CPUs; fixed so that a "
                   "resumed run is bit-identical)")
    r.add_argument("--feature-cache", metavar="DIR",
                   help="where frozen-prefix features are cached (default $PRIVTANGENT_CACHE/features)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_option(r)
    r.add_argument("--json", action="store_true", help="print metrics.json to stdout at the end")
    p.set_defaults(func=run)


DP_FROM_TRAINING = ("lr", "epochs", "loss", "weight_decay", "output")  # flags a DP run takes into privacy:
NOT_DP = ("alpha", "kappa", "schedule", "project_radius")  # the non-private recipe only
POISSON_ABOVE = 5000  # larger training sets default to Poisson DP-SGD ...
DEFAULT_DP_BATCH = 256  # ... with this expected batch size
DEFAULT_DP_EPOCHS = {True: 50, False: 10}  # full batch: 50 steps (the paper's setting); Poisson: 10 passes


def _overrides(args: argparse.Namespace, dp: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The flags as a config layer, and field → flag for the error messages. In a DP run the
    optimization flags set the DP mechanism (``privacy:``), not the non-private recipe."""
    flags = {k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None}
    sources = {k: TRAIN_FLAGS[k] for k in flags}
    training = {k: v for k, v in flags.items() if not (dp and k in DP_FROM_TRAINING)}
    layer: dict[str, Any] = {"training": training} if training else {}
    privacy = {k: v for k, v in flags.items() if dp and k in DP_FROM_TRAINING}
    for field, flag in (("epsilon", "--epsilon"), ("delta", "--delta"), ("sample_rate", "--sample-rate"),
                        ("max_grad_norm", "--max-grad-norm"), ("noise_seed", "--noise-seed")):
        value = getattr(args, field)
        if value is not None:
            privacy["epsilons" if field == "epsilon" else field], sources[field] = value, flag
    if "epsilons" in privacy:
        sources["epsilons"] = "--epsilon"
    if privacy:
        layer["privacy"] = privacy
    data: dict[str, Any] = {}
    for field, flag, value in (("task", "--data", args.data), ("train_limit", "--data-limit", args.data_limit),
                               ("test_limit", "--test-limit", args.test_limit)):
        if value is not None:
            data[field], sources[field] = value, flag
    if data:
        layer["data"] = data
    model: dict[str, Any] = {}
    if args.model is not None:
        model["name"], sources["name"] = args.model, "--model"
    if args.checkpoint is not None:
        model["checkpoint"], sources["checkpoint"] = args.checkpoint, "--checkpoint"
    if args.model_kwargs is not None:
        try:
            model["kwargs"] = json.loads(args.model_kwargs)
        except json.JSONDecodeError as err:
            raise ConfigError(f"--model-kwargs: not valid JSON ({err})") from None
        sources["kwargs"] = "--model-kwargs"
    if model:
        layer["model"] = model
    for key, flag in (("out", "--out"), ("threads", "--threads")):
        if getattr(args, key) is not None:
            layer[key], sources[key] = getattr(args, key), flag
    return layer, sources


def _named(err: ConfigError, sources: dict[str, str]) -> ConfigError:
    """``err`` naming the flag when the bad value came from one (``--lr: must be > 0``)."""
    match = re.match(r"^((?:[a-z_]+\.)*)([a-z_]+):(.*)$", str(err), flags=re.S)
    if match and match.group(2) in sources:
        return ConfigError(f"{sources[match.group(2)]}:{match.group(3)}")
    return err


def _file_privacy(args: argparse.Namespace) -> dict[str, Any]:
    """The ``privacy:`` section the config file itself gives (to tell a DP run file from a plain one)."""
    from privtangent.config.files import read_config_file

    if not args.config:
        return {}
    section = read_config_file(args.config).get("privacy") or {}
    return dict(section) if isinstance(section, dict) else {}


def is_dp(args: argparse.Namespace) -> bool:
    """A DP run: --epsilon, or a config file whose privacy section claims ε."""
    return args.epsilon is not None or "epsilons" in _file_privacy(args)


def resolve(args: argparse.Namespace) -> Any:
    """The run's ``RunConfig``, validated; raises ConfigError naming the bad flag or field."""
    from privtangent.config.schema import load_config

    dp = is_dp(args)
    if not dp:
        given = [flag for flag, value in (("--delta", args.delta), ("--sample-rate", args.sample_rate),
                                          ("--max-grad-norm", args.max_grad_norm), ("--noise-seed", args.noise_seed))
                 if value is not None]
        if given:
            raise ConfigError(f"{given[0]}: a DP setting, but no --epsilon was given (the run would not be private)")
    else:
        unused = [TRAIN_FLAGS[k] for k in NOT_DP if getattr(args, k) is not None]
        if unused:
            raise ConfigError(f"{unused[0]}: not used by DP training (it belongs to the non-private recipe)")
        if args.resume:
            raise ConfigError("--resume: a DP run is not resumable (its noise is never stored); start it again")
        if args.sample_rate is not None and args.batch_size is not None:
            raise ConfigError("--batch-size: give --sample-rate Q or --batch-size B (q = B/N), not both")
    layer, sources = _overrides(args, dp)
    try:
        config = load_config(args.config, None, layer)
    except ConfigError as err:
        raise _named(err, sources) from None
    if dp and len(config.privacy.epsilons) != 1:
        raise ConfigError(f"privacy.epsilons: train fits one model; the file claims {list(config.privacy.epsilons)}: "
                          "give --epsilon E")
    if config.out is None:
        raise ConfigError("--out: required (the run directory), on the command line or as out: in the config")
    return config


def dp_run_config(args: argparse.Namespace, config: Any, num_train: int) -> Any:
    """The DP run's ``DPConfig``: q, δ and epochs default from the training set's size N."""
    file_privacy = _file_privacy(args)
    dp = config.dp_config()
    changes: dict[str, Any] = {}
    if args.sample_rate is None and "sample_rate" not in file_privacy:
        if args.batch_size is not None:
            if not 1 <= args.batch_size <= num_train:
                raise ConfigError(f"--batch-size: the expected DP batch must be in [1, N = {num_train}], "
                                  f"got {args.batch_size}")
            changes["sample_rate"] = args.batch_size / num_train
        else:
            changes["sample_rate"] = DEFAULT_DP_BATCH / num_train if num_train > POISSON_ABOVE else 1.0
    if args.delta is None and "delta" not in file_privacy:
        changes["delta"] = min(1e-5, 1.0 / (10 * num_train))
    if args.epochs is None and "epochs" not in file_privacy:
        changes["epochs"] = DEFAULT_DP_EPOCHS[changes.get("sample_rate", dp.sample_rate) == 1.0]
    return dp.replace(**changes)


def run(args: argparse.Namespace) -> int:
    from privtangent.features import FeatureCache
    from privtangent.inputs import load_base, load_data
    from privtangent.paths import feature_cache_dir
    from privtangent.train.run import has_run, train_run

    config = resolve(args)
    training, out = config.training, check_output_dir(config.out)
    if has_run(out) and not args.resume:  # before any expensive loading
        raise ConfigError(f"--out {out}: already holds a training run; pass --resume to continue it, "
                          "or choose another directory")
    progress = not args.quiet
    base, base_record = load_base(config.model, progress=progress, require_checkpoint=True)
    depth = len(base.blocks)
    if training.blocks > depth:
        flag = "--blocks" if args.blocks is not None else "training.blocks"
        raise ConfigError(f"{flag}: must be in [1, {depth}] (the base model has {depth} blocks), got {training.blocks}")
    train, test, data_record = load_data(config.data, base, seed=training.seed)
    cache = FeatureCache(args.feature_cache or feature_cache_dir())
    if is_dp(args):
        return _run_dp(args, config, base, base_record, train, test, data_record, cache, out, progress)
    result = train_run(base, train, training, out, test=test, base_record=base_record, data_extra=data_record,
                       cache=cache, progress=progress, resume=args.resume, threads=config.threads or 1)
    metrics = result.metrics
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        resumed = f", resumed after epoch {result.resumed_from}" if result.resumed_from else ""
        print(f"{training.method} on {train.name} ({len(train)} samples, {training.epochs} epochs{resumed}): "
              f"test accuracy {100 * metrics['test_accuracy']:.2f}% on {len(test)}, "
              f"{metrics['train_seconds']:.1f} s training → {out} (not private)", file=sys.stdout)
    return 0


def _run_dp(args: argparse.Namespace, config: Any, base: Any, base_record: dict[str, Any], train: Any, test: Any,
            data_record: dict[str, Any], cache: Any, out: Path, progress: bool) -> int:
    from privtangent.dp.run import train_dp_run

    dp = dp_run_config(args, config, len(train))
    result = train_dp_run(base, train, dp, out, test=test, base_record=base_record, data_extra=data_record,
                          cache=cache, progress=progress, threads=config.threads or 1)
    privacy = result.manifest["privacy"]
    if args.json:
        print(json.dumps({**result.metrics, "privacy": privacy}, indent=2, sort_keys=True, default=str))
    else:
        print(f"{result.manifest['method']} on {train.name} ({len(train)} samples): (ε = {privacy['epsilon']:.4g}, "
              f"δ = {privacy['delta']:.3g})-DP, σ = {privacy['sigma']:.4g}, C = {privacy['max_grad_norm']:g}, "
              f"q = {privacy['sample_rate']:.4g}, T = {privacy['steps']} steps; test accuracy "
              f"{100 * result.metrics['test_accuracy']:.2f}% on {len(test)} → {out}"
              + ("  [NOT FOR RELEASE: seeded noise]" if privacy["noise_seeded"] else ""), file=sys.stdout)
    return 0
