"""``privtangent audit privacy|unlearning|utility``: the three audits as sub-subcommands.

``add_audit_subcommands(subparsers)`` adds them to the ``audit`` command (registered in
``reports/``); ``main(argv)`` runs them standalone (``python -m audits.cli privacy --out DIR``).
Each writes ``DIR/<section>.json`` (section, checks, verdict, body; NaN/∞ written as null),
its tables as CSV (``DIR/<section>-<table>.csv``) and the ROC curves
(``DIR/<section>-roc.csv``, columns curve, fpr, tpr), and returns 0 when every check passed,
1 when one failed; bad input raises ``PrivtangentError`` (exit 2).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from audits.choices import ATTACKS, BLACKBOX_BUGS, WHITEBOX_BUGS, WHITEBOX_CANARIES, WHITEBOX_DATA_LIMIT
from privtangent.choices import REGIMES
from privtangent.cli.options import add_device_option
from privtangent.errors import ConfigError, ExitStatus, PrivtangentError
from privtangent.io.outdir import check_output_dir

__all__ = ["add_audit_subcommands", "main", "write_section"]


# --------------------------------------------------------------------------------------
# parsing helpers
# --------------------------------------------------------------------------------------
def _floats(text: str, flag: str) -> list[float]:
    out = []
    for token in text.replace(" ", "").split(","):
        if not token:
            continue
        try:
            value = float(token)
        except ValueError:
            raise ConfigError(f"{flag}: {token!r} is not a number (give a comma-separated list, e.g. 1,3,8)") from None
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{flag}: every value must be a finite number > 0, got {token}")
        out.append(value)
    if not out:
        raise ConfigError(f"{flag}: give at least one value")
    return out


def _ints(text: str, flag: str) -> list[int]:
    out = []
    for token in text.replace(" ", "").split(","):
        if not token:
            continue
        if not token.lstrip("+").isdigit():
            raise ConfigError(f"{flag}: {token!r} is not a non-negative integer")
        out.append(int(token))
    if not out:
        raise ConfigError(f"{flag}: give at least one value")
    return out


def _names(text: str, flag: str, allowed: tuple[str, ...]) -> list[str]:
    out = [t for t in text.replace(" ", "").split(",") if t]
    bad = [t for t in out if t not in allowed]
    if bad or not out:
        raise ConfigError(f"{flag}: {bad[0] if bad else 'nothing'} is not one of {', '.join(allowed)}")
    return out


def _positive(value: Any, flag: str, minimum: int = 1) -> int | None:
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{flag}: must be an integer ≥ {minimum}, got {value!r}")
    return value


def _required_positive(value: Any, flag: str, minimum: int = 1) -> int:
    """``_positive`` for a flag with an integer default (None is refused like any other non-integer)."""
    checked = _positive(value, flag, minimum)
    if checked is None:
        raise ConfigError(f"{flag}: must be an integer ≥ {minimum}, got None")
    return checked


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output and running")
    g.add_argument("--out", required=True, metavar="DIR", help="where the results are written (created if missing)")
    g.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the audit's random draws (default 0)")
    g.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch threads (default 1: fastest for these small models, and far faster on a loaded machine)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_option(g)
    g.add_argument("--confidence", type=float, default=0.95, metavar="C",
                   help="confidence of every interval and bound (default 0.95)")
    g.add_argument("--bootstrap", type=int, default=500, metavar="B",
                   help="bootstrap replicates of the AUC / TPR intervals (default 500)")
    m = p.add_argument_group("base model and data (default: the embedded default)")
    m.add_argument("--base", metavar="NAME", help="a timm VisionTransformer name (needs --checkpoint)")
    m.add_argument("--checkpoint", metavar="FILE", help="the base model's weights, a local .safetensors file")
    m.add_argument("--base-kwargs", metavar="JSON", help='timm kwargs, e.g. \'{"img_size": 28, "in_chans": 1}\'')
    m.add_argument("--data", default="fashion-near", metavar="TASK",
                   help="the task (fashion-near, digits, fashion; default fashion-near)")


def _setup(args: argparse.Namespace) -> dict[str, Any]:
    """Validated common settings, the base model and the data."""
    from privtangent.config.schema import DataSpec, ModelSpec
    from privtangent.inputs import load_base, load_data
    from privtangent.threads import torch_threads

    if not 0.0 < args.confidence < 1.0:
        raise ConfigError(f"--confidence: must lie strictly between 0 and 1, got {args.confidence}")
    _positive(args.bootstrap, "--bootstrap")
    _positive(args.threads, "--threads")
    if args.seed < 0:
        raise ConfigError(f"--seed: must be ≥ 0, got {args.seed}")
    kwargs: dict[str, Any] = {}
    if args.base_kwargs is not None:
        try:
            kwargs = json.loads(args.base_kwargs)
        except json.JSONDecodeError as err:
            raise ConfigError(f"--base-kwargs: not valid JSON ({err})") from None
    out = check_output_dir(args.out)
    try:
        model_spec, data_spec = ModelSpec(args.base, kwargs, args.checkpoint), DataSpec(task=args.data)
    except ConfigError as err:
        raise ConfigError(f"--{str(err).replace('task:', 'data:', 1)}") from None
    progress = not args.quiet
    with torch_threads(args.threads):
        base, record = load_base(model_spec, progress=progress, require_checkpoint=True)
        train, test, data_record = load_data(data_spec, base)
    return {"base": base, "base_record": record, "train": train, "test": test, "data_record": data_record,
            "out": out, "progress": progress}


def _cache() -> Any:
    from privtangent.features import FeatureCache
    from privtangent.paths import feature_cache_dir

    return FeatureCache(feature_cache_dir())


# --------------------------------------------------------------------------------------
# writing results
# --------------------------------------------------------------------------------------
def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/∞ → None, numpy/torch scalars → Python, tuples → lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return _clean(obj.item())
    return obj


def _tables(body: dict[str, Any]) -> dict[str, list[dict]]:
    """Every list of row dicts in the body (top level, or a section's "rows")."""
    out = {}
    for key, value in body.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out[key] = value
        elif isinstance(value, dict) and isinstance(value.get("rows"), list) and value["rows"]:
            out[key] = value["rows"]
    return out


def write_section(result: Any, out: str | Path, extra: dict[str, Any] | None = None) -> list[Path]:
    """Write an audit's ``AuditSection``: ``<section>.json``, ``<section>-<table>.csv``, ``<section>-roc.csv``."""
    import pandas as pd

    from audits.report_file import round_numbers
    from privtangent.io.atomic import atomic_write_json, atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    section = result.key
    doc = {"section": section, "verdict": result.verdict.value, "checks": [c.to_dict() for c in result.checks],
           "body": result.body, **(extra or {})}
    written = [atomic_write_json(out / f"{section}.json", _clean(round_numbers(doc)), sort_keys=False)]
    for key, rows in _tables(result.body).items():
        name = section if key == "rows" else f"{section}-{key.replace('_', '-')}"
        frame = pd.DataFrame([_clean(r) for r in rows])
        written.append(atomic_write_text(out / f"{name}.csv", frame.to_csv(index=False)))
    roc = result.roc
    if roc is not None:
        written.append(atomic_write_text(out / f"{section}-roc.csv", roc.to_csv(index=False)))
    return written


def _finish(result: Any, out: Path, quiet: bool, extra: dict[str, Any]) -> int:
    write_section(result, out, extra)
    failed = [c for c in result.checks if c.status.value == "FAIL"]
    if not quiet or failed:
        for c in result.checks:
            print(f"{c.status.value:4s}  {c.title}: {c.reason}", file=sys.stderr if c in failed else sys.stdout)
    print(f"results: {out / (result.key + '.json')}")
    return ExitStatus.CHECK_FAILED if failed else ExitStatus.OK


# --------------------------------------------------------------------------------------
# privacy
# --------------------------------------------------------------------------------------
def run_privacy(args: argparse.Namespace) -> int:
    from audits.privacy.blackbox import broken_target, default_dp_config, run_privacy_audit
    from privtangent.train import TrainConfig

    if args.white_box and args.input_canaries:
        raise ConfigError("give --white-box or --input-canaries, not both")
    if args.white_box:  # the white-box gradient-canary audit (audits.privacy.whitebox)
        return run_whitebox(args)
    if args.input_canaries:  # the black-box input-canary audit (audits.privacy.input_canaries)
        return run_input_canaries(args)

    epsilons = _floats(args.epsilons, "--epsilons") if args.epsilons.strip() else []
    attacks = _names(args.attacks, "--attacks", ATTACKS)
    for flag, value, low in (("--population", args.population, 8), ("--canaries", args.canaries, 0),
                             ("--models", args.models, 3), ("--reference-epochs", args.reference_epochs, 1)):
        _positive(value, flag, low)
    if args.canaries > args.population:
        raise ConfigError(f"--canaries ({args.canaries}) must not exceed --population ({args.population})")
    if not 0 < args.delta < 1:
        raise ConfigError(f"--delta: must lie in (0, 1), got {args.delta}")
    if args.dp_epochs is not None and not args.dp_epochs > 0:
        raise ConfigError(f"--dp-epochs: must be > 0, got {args.dp_epochs}")
    if not epsilons and args.no_reference and not args.inject_bug:
        raise ConfigError("nothing to audit: --epsilons is empty and --no-reference is set")
    s = _setup(args)
    dp = default_dp_config(**({"epochs": args.dp_epochs} if args.dp_epochs is not None else {}))
    reference = TrainConfig(epochs=args.reference_epochs) if args.reference_epochs else TrainConfig()
    extra = [broken_target(bug, args.bug_epsilon, args.delta, dp_config=dp, dataset_size=args.population // 2)
             for bug in (args.inject_bug or [])]
    result = run_privacy_audit(
        s["base"], s["train"], test=s["test"], epsilons=epsilons, delta=args.delta, train_config=reference,
        dp_config=dp, include_reference=not args.no_reference, extra_targets=extra,
        population_size=args.population, num_canaries=args.canaries, num_models=args.models, attacks=attacks,
        confidence=args.confidence, n_bootstrap=args.bootstrap, measure_timing=not args.no_timing, seed=args.seed,
        run_dir=Path(args.shadow_dir) if args.shadow_dir else s["out"], cache=_cache(), progress=s["progress"],
        threads=args.threads)
    return _finish(result, s["out"], args.quiet, {"base_model": s["base_record"], "data": s["data_record"],
                                                  "command": _command(args)})


def _add_privacy(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "privacy",
        help="black-box membership-inference audit: ε lower bounds vs the claimed ε",
        description=(
            "Train M replicas of each audited procedure on random halves of an audit population (part of it\n"
            "mislabelled canaries), attack each with the others as shadow models (LiRA online/offline, LOSS,\n"
            "RMIA), and turn the results into two ε lower bounds at 95% confidence: a threshold test\n"
            "(Clopper-Pearson, threshold chosen on a held-out split) and a one-run canary game (Steinke et\n"
            "al. 2023), with the audit's power (the most it could ever prove) beside each. Audited: a\n"
            "non-private TAFT reference (the positive control: the audit must detect it) and the DP\n"
            "procedure (full-batch DP-GD, the paper's setting) calibrated for each --epsilons value.\n"
            "A check FAILS when a lower bound exceeds the claimed ε. Replica signals are cached under\n"
            "DIR/shadows (safetensors), so a rerun with the same settings trains nothing."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="writes DIR/membership_inference.json, DIR/membership_inference*.csv, DIR/membership_inference-roc.csv\n"
               "examples:\n"
               "  privtangent audit privacy --out runs/audit\n"
               "  privtangent audit privacy --epsilons 1 --no-reference --inject-bug noise-off --out runs/control\n"
               "exit status: 0 all checks passed, 1 a check failed, 2 bad input",
    )
    a = p.add_argument_group("what is audited")
    a.add_argument("--epsilons", default="1,3,8", metavar="LIST", help="claimed ε values, comma-separated (default 1,3,8)")
    a.add_argument("--delta", type=float, default=1e-5, help="δ of the claims (default 1e-5)")
    a.add_argument("--no-reference", action="store_true", help="skip the non-private reference (positive control)")
    a.add_argument("--reference-epochs", type=int, default=None, metavar="E",
                   help="epochs of the non-private TAFT reference (default 10)")
    a.add_argument("--dp-epochs", type=float, default=None, metavar="E", help="epochs of the DP procedure (default 50)")
    a.add_argument("--inject-bug", action="append", choices=BLACKBOX_BUGS, metavar="BUG",
                   help="also audit a DP run with this bug (noise-off, clip-off) that claims --bug-epsilon: a "
                        "positive control of the audit itself, which must FAIL it (repeatable)")
    a.add_argument("--bug-epsilon", type=float, default=1.0, metavar="EPS", help="the ε a buggy run claims (default 1)")
    z = p.add_argument_group("audit size")
    z.add_argument("--population", type=int, default=128, metavar="N", help="audit population size (default 128)")
    z.add_argument("--canaries", type=int, default=32, metavar="N", help="mislabelled canaries in it (default 32)")
    z.add_argument("--models", type=int, default=4, metavar="M", help="replicas per procedure, ≥ 3 (default 4)")
    z.add_argument("--attacks", default=",".join(ATTACKS), metavar="LIST",
                   help=f"attacks to run (default {','.join(ATTACKS)})")
    z.add_argument("--no-timing", action="store_true", help="do not time a tangent vs a non-linear shadow model")
    z.add_argument("--shadow-dir", metavar="DIR", help="where replica signals are cached (default --out)")
    _add_whitebox_arguments(p)
    _add_input_canary_arguments(p)
    _common(p)
    p.set_defaults(func=run_privacy)


# --------------------------------------------------------------------------------------
# white-box: `privtangent audit privacy --white-box`
# --------------------------------------------------------------------------------------
def _add_whitebox_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("white-box canary audit (--white-box)")
    g.add_argument("--white-box", dest="white_box", action="store_true",
                   help="run the white-box gradient-canary audit of the DP training (a separate canary run per ε, "
                        "every privatized update observed) instead of the black-box membership audit")
    g.add_argument("--wb-canaries", dest="wb_canaries", type=int, default=WHITEBOX_CANARIES, metavar="M",
                   help=f"gradient canaries m (default {WHITEBOX_CANARIES})")
    g.add_argument("--wb-guesses", dest="wb_guesses", type=int, default=None, metavar="R",
                   help="guesses r, fixed in advance (default: chosen per ε from m and the claim before the run: "
                        "best simulated tightness with audit power ≥ 1.2× the claim)")
    g.add_argument("--wb-data-limit", dest="wb_data_limit", type=int, default=WHITEBOX_DATA_LIMIT, metavar="N",
                   help=f"training records in each canary run (default {WHITEBOX_DATA_LIMIT}; 0 = all); with the "
                        "data's clipped sum subtracted the scores do not depend on them")
    g.add_argument("--wb-bug", dest="wb_bug", choices=WHITEBOX_BUGS, default=None,
                   help="inject a DP bug (a control of the audit itself: it must FAIL)")


def run_whitebox(args: argparse.Namespace) -> int:
    """``privtangent audit privacy --white-box``: writes ``OUT/canary_audit.json`` (+ CSV); exit 0 / 1.

    The audited procedure is the black-box audit's (``default_dp_config``), with ``--epsilons``,
    ``--delta`` and ``--dp-epochs``.
    """
    from audits.privacy.blackbox import default_dp_config
    from audits.privacy.whitebox import run_whitebox_audit

    epsilons = _floats(args.epsilons, "--epsilons")
    if not 0 < args.delta < 1:
        raise ConfigError(f"--delta: must lie in (0, 1), got {args.delta}")
    m = _required_positive(args.wb_canaries, "--wb-canaries")
    r = _positive(args.wb_guesses, "--wb-guesses")
    limit = _positive(args.wb_data_limit, "--wb-data-limit", minimum=0)
    if r is not None and r > m:
        raise ConfigError(f"--wb-guesses ({r}) must not exceed --wb-canaries ({m})")
    if args.dp_epochs is not None and not args.dp_epochs > 0:
        raise ConfigError(f"--dp-epochs: must be > 0, got {args.dp_epochs}")
    setup = _setup(args)
    config = default_dp_config(delta=float(args.delta), **({"epochs": args.dp_epochs} if args.dp_epochs else {}))
    result = run_whitebox_audit(setup["base"], setup["train"], config, num_canaries=m, num_guesses=r,
                                confidence=args.confidence, seed=args.seed, epsilons=epsilons, bug=args.wb_bug,
                                data_limit=limit or None, cache=_cache(), progress=setup["progress"],
                                threads=args.threads)
    return _finish(result, setup["out"], args.quiet, {"base_model": setup["base_record"],
                                                      "data": setup["data_record"], "command": _command(args)})


# --------------------------------------------------------------------------------------
# input canaries: `privtangent audit privacy --input-canaries`
# --------------------------------------------------------------------------------------
def _add_input_canary_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "input-canary audit (--input-canaries)",
        "A one-run audit from the released model's outputs alone: crafted canary images, each in the training set "
        "with probability ½, one DP run per ε, scores read from the model's outputs on the canaries and on public "
        "probes (the test split). Building the canaries is a one-time cost (about 13 minutes for 1,024 canaries "
        "on 2 cores; cached under $PRIVTANGENT_CACHE/input_canaries); each audited ε then takes about 20 s. "
        "Measured tightness on the embedded default: ε_lb/ε ≈ 0.3 / 0.2 at ε = 3 / 8 (the white-box audit: ≈ 0.6–0.7). Under Adam "
        "no reading of the released model keeps more than 0.89 of the white-box signal after 50 steps (plain SGD: all "
        "of it); each run reports that ceiling as readout_ceiling.")
    g.add_argument("--input-canaries", dest="input_canaries", action="store_true",
                   help="run the input-canary audit of the DP training instead of the membership audit")
    g.add_argument("--ic-canaries", dest="ic_canaries", type=int, default=1024, metavar="M",
                   help="canary images m (default 1024)")
    g.add_argument("--ic-probes", dest="ic_probes", type=int, default=1000, metavar="N",
                   help="public probe images from the test split (default 1000)")
    g.add_argument("--ic-data-limit", dest="ic_data_limit", type=int, default=1000, metavar="N",
                   help="training records in each canary run (default 1000, as measured; 0 = all)")
    g.add_argument("--ic-rank", dest="ic_rank", type=int, default=200, metavar="R",
                   help="public tangent directions removed from every score (default 200)")
    g.add_argument("--ic-span-steps", dest="ic_span_steps", type=int, default=0, metavar="S",
                   help="push each canary out of the probes' whole tangent span for S Adam steps and remove that "
                        "whole span from the scores (default 0: off). More signal per canary at ε = 3, little more "
                        "at ε = 8 under Adam (BENCHMARKS.md); costs 0.06–0.13 s per canary and step on 2 cores: 6.5 h or more "
                        "for 1,024 canaries at S = 400, once (cached)")
    g.add_argument("--ic-decoder", dest="ic_decoder", choices=("mmse", "projected", "raw"), default="mmse",
                   help="score decoder (default mmse)")
    g.add_argument("--ic-bug", dest="ic_bug", choices=WHITEBOX_BUGS, default=None,
                   help="inject a DP bug (a control of the audit itself)")
    g.add_argument("--ic-cache", dest="ic_cache", metavar="DIR",
                   help="where built canaries are cached (default $PRIVTANGENT_CACHE/input_canaries)")


def run_input_canaries(args: argparse.Namespace) -> int:
    """``privtangent audit privacy --input-canaries``: writes ``OUT/input_canary_audit.json``; exit 0 / 1."""
    from audits.privacy.blackbox import default_dp_config
    from audits.privacy.input_canaries import Construction, run_input_canary_audit

    epsilons = _floats(args.epsilons, "--epsilons")
    if not 0 < args.delta < 1:
        raise ConfigError(f"--delta: must lie in (0, 1), got {args.delta}")
    m = _required_positive(args.ic_canaries, "--ic-canaries", minimum=4)
    probes = _required_positive(args.ic_probes, "--ic-probes", minimum=2)
    rank = _required_positive(args.ic_rank, "--ic-rank")
    span_steps = _required_positive(args.ic_span_steps, "--ic-span-steps", minimum=0)
    limit = _positive(args.ic_data_limit, "--ic-data-limit", minimum=0)
    if args.dp_epochs is not None and not args.dp_epochs > 0:
        raise ConfigError(f"--dp-epochs: must be > 0, got {args.dp_epochs}")
    setup = _setup(args)
    test = setup["test"]
    if len(test) < probes:
        raise ConfigError(f"--ic-probes {probes}: the test split has only {len(test)} images")
    config = default_dp_config(delta=float(args.delta), **({"epochs": args.dp_epochs} if args.dp_epochs else {}))
    probe_images = test.limit(probes).images
    train = setup["train"].limit(limit) if limit and len(setup["train"]) > limit else setup["train"]
    result = run_input_canary_audit(setup["base"], train, config, probe_images=probe_images,
                                    epsilons=epsilons, construction=Construction(num_canaries=m, rank=rank,
                                                                                 seed=args.seed,
                                                                                 span_steps=span_steps),
                                    confidence=args.confidence, seed=args.seed, bug=args.ic_bug,
                                    decoder=args.ic_decoder, cache_directory=args.ic_cache,
                                    threads=args.threads, progress=setup["progress"])
    return _finish(result, setup["out"], args.quiet, {"base_model": setup["base_record"],
                                                      "data": setup["data_record"], "command": _command(args)})


# --------------------------------------------------------------------------------------
# unlearning
# --------------------------------------------------------------------------------------
def run_unlearning(args: argparse.Namespace) -> int:
    from audits.unlearning import run_unlearning_audit
    from privtangent.train import TrainConfig

    for flag, value, low in (("--shards", args.shards, 2), ("--data-size", args.data_size, 4),
                             ("--forget", args.forget, 2), ("--never-seen", args.never_seen, 4),
                             ("--shadows", args.shadows, 2), ("--epochs", args.epochs, 1)):
        _positive(value, flag, low)
    out = Path(args.out)
    if args.sharded_model is None and (out / "sharded-model").exists():
        raise ConfigError(f"--out {out}: already holds an unlearning scenario (sharded-model/); choose another directory")
    if args.sharded_model is not None:  # the model directory names its own base model and data
        from audits.unlearning import audit_unlearning
        from privtangent.shards import ShardedModel

        ShardedModel(args.sharded_model)  # not a sharded model: bad input, before anything is written
        out = check_output_dir(args.out)
        result = audit_unlearning(args.sharded_model, None, num_shadows=args.shadows, n_bootstrap=args.bootstrap,
                                  confidence=args.confidence, cache=_cache(), progress=not args.quiet,
                                  threads=args.threads)
        return _finish(result, out, args.quiet, {"model": str(args.sharded_model), "command": _command(args)})
    s = _setup(args)
    extra = {"base_model": s["base_record"], "data": s["data_record"], "command": _command(args)}
    record = s["base_record"]
    config = TrainConfig(epochs=args.epochs) if args.epochs else TrainConfig()
    result = run_unlearning_audit(
        s["base"], s["train"], test=s["test"], run_dir=s["out"], base_name=record["name"],
        base_kwargs=dict(record["kwargs"]), num_shards=args.shards, data_size=args.data_size, num_forget=args.forget,
        num_never_seen=args.never_seen, num_shadows=args.shadows, train_config=config, mode=args.mode,
        n_bootstrap=args.bootstrap, confidence=args.confidence, seed=args.seed, cache=_cache(), progress=s["progress"],
        threads=args.threads)
    return _finish(result, s["out"], args.quiet, extra)


def _add_unlearning(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "unlearning",
        help="unlearning audit: exact removal, ledger, forgotten samples vs never-seen samples",
        description=(
            "Without --sharded-model: build a sharded tangent model in DIR/sharded-model with mislabelled\n"
            "canaries planted in shard 0, serve a forget request for them, then audit it: (a) the served Δw\n"
            "is bit-identical to the recomposition of the remaining shards, no active shard saw a forgotten\n"
            "ID, and the ledger's hash chain and before/after hashes match; (b) LiRA with sharded shadow\n"
            "models finds the forgotten canaries no more member-like than never-seen ones (positive\n"
            "control: they were detectable before removal, else the check is 'inconclusive', SKIP);\n"
            "(c) retained-set and test accuracy before/after. With --sharded-model DIR: (a) and (c) for an\n"
            "existing model (the membership check needs the model served before the request)."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="writes DIR/unlearning.json, DIR/unlearning-*.csv, DIR/unlearning-roc.csv\n"
               "examples:\n  privtangent audit unlearning --out runs/unlearning\n"
               "  privtangent audit unlearning --sharded-model runs/shards --out runs/unlearning-check\n"
               "exit status: 0 all checks passed, 1 a check failed, 2 bad input",
    )
    a = p.add_argument_group("what is audited")
    a.add_argument("--model", "--sharded-model", dest="sharded_model", type=Path, metavar="DIR",
                   help="audit this existing sharded model directory (privtangent shards train --out DIR)")
    a.add_argument("--mode", choices=["remove", "retrain"], default="remove",
                   help="how the scenario's forget request is served (default remove)")
    z = p.add_argument_group("scenario size")
    z.add_argument("--shards", type=int, default=2, metavar="S", help="shards (default 2)")
    z.add_argument("--data-size", type=int, default=320, metavar="N", help="training samples (default 320)")
    z.add_argument("--forget", type=int, default=32, metavar="N", help="canaries planted in shard 0 and forgotten (default 32)")
    z.add_argument("--never-seen", type=int, default=64, metavar="N", help="never-seen canaries (default 64)")
    z.add_argument("--shadows", type=int, default=4, metavar="M", help="sharded shadow models (default 4)")
    z.add_argument("--epochs", type=int, default=None, metavar="E", help="epochs of each shard's TAFT (default 10)")
    _common(p)
    p.set_defaults(func=run_unlearning)


# --------------------------------------------------------------------------------------
# utility
# --------------------------------------------------------------------------------------
def run_utility(args: argparse.Namespace) -> int:
    from audits.privacy.blackbox import default_dp_config
    from audits.utility import run_utility_audit

    regimes = _names(args.regimes, "--regimes", tuple(REGIMES))
    epsilons = _floats(args.epsilons, "--epsilons")
    seeds = _ints(args.seeds, "--seeds")
    _positive(args.train_size, "--train-size", 2)
    _positive(args.test_size, "--test-size", 2)
    if not 0 < args.delta < 1:
        raise ConfigError(f"--delta: must lie in (0, 1), got {args.delta}")
    if args.dp_epochs is not None and not args.dp_epochs > 0:
        raise ConfigError(f"--dp-epochs: must be > 0, got {args.dp_epochs}")
    s = _setup(args)
    dp = default_dp_config(**({"epochs": args.dp_epochs} if args.dp_epochs is not None else {}))
    result = run_utility_audit(s["base"], train=s["train"], test=s["test"], regimes=regimes, epsilons=epsilons,
                               seeds=seeds, delta=args.delta, train_size=args.train_size, test_size=args.test_size,
                               dp_config=dp, include_nonprivate=args.nonprivate, cache=_cache(),
                               progress=s["progress"], threads=args.threads)
    return _finish(result, s["out"], args.quiet, {"base_model": s["base_record"], "data": s["data_record"],
                                                  "command": _command(args)})


def _add_utility(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "utility",
        help="utility audit: DP test accuracy per regime and ε, tangent (Ours) vs non-linear (Reg)",
        description=(
            "DP fine-tuning (full-batch DP-GD, the paper's setting) of each regime (full = the last block,\n"
            "bitfit, layernorm, fc = the head) on the tangent model (Ours) and on the original network\n"
            "(Reg), at each ε: the shape of Table 3 of the paper, on this data. Test accuracy is a\n"
            "fraction, the mean (and standard deviation) over --seeds. A check FAILS when a DP model is no\n"
            "better than chance (a broken calibration or training)."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="writes DIR/utility.json, DIR/utility.csv\n"
               "example:\n  privtangent audit utility --regimes full,bitfit,layernorm,fc --seeds 0,1,2 --out runs/utility\n"
               "exit status: 0 all checks passed, 1 a check failed, 2 bad input",
    )
    a = p.add_argument_group("what is compared")
    a.add_argument("--regimes", default="full,fc", metavar="LIST", help="regimes, comma-separated (default full,fc)")
    a.add_argument("--epsilons", default="1,3,8", metavar="LIST", help="ε values (default 1,3,8)")
    a.add_argument("--delta", type=float, default=1e-5, help="δ (default 1e-5)")
    a.add_argument("--seeds", default="0", metavar="LIST", help="seeds, comma-separated (default 0)")
    a.add_argument("--train-size", type=int, default=128, metavar="N", help="training samples (default 128)")
    a.add_argument("--test-size", type=int, default=500, metavar="N", help="test samples (default 500)")
    a.add_argument("--dp-epochs", type=float, default=None, metavar="E", help="DP epochs (default 50)")
    a.add_argument("--nonprivate", action="store_true", help="add non-private rows (ε = none)")
    _common(p)
    p.set_defaults(func=run_utility)


# --------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------
def _command(args: argparse.Namespace) -> str:
    argv = getattr(args, "_argv", None)
    return " ".join(["privtangent", *sys.argv[1:]]) if argv is None else " ".join(["privtangent", "audit", *argv])


def add_audit_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``privacy``, ``unlearning`` and ``utility`` to the ``audit`` command's subparsers.

    Each sets ``func(args) -> int`` (0: all checks passed, 1: a check failed); bad input
    raises ``privtangent.errors.PrivtangentError`` (the caller maps it to exit status 2).
    """
    _add_privacy(subparsers)
    _add_unlearning(subparsers)
    _add_utility(subparsers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="privtangent audit", description="privacy, unlearning and utility audits")
    add_audit_subcommands(parser.add_subparsers(dest="audit", metavar="AUDIT", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one audit from ``argv``; exit status 0 / 1 / 2 (bad input) like ``privtangent``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args._argv = argv
    try:
        return int(args.func(args))
    except PrivtangentError as err:
        print(f"privtangent audit: error: {err}", file=sys.stderr)
        return ExitStatus.BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
