"""``privtangent pretrain``: build (or show) the embedded default base model."""

from __future__ import annotations

import argparse
import json

from privtangent.cli.options import add_device_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="build the embedded default base model (cached)",
        description="Pretrain the embedded default base model: a small timm ViT (28×28, one channel) "
        "on Fashion-MNIST classes 0–4, deterministic, cached under $PRIVTANGENT_CACHE "
        "(default ~/.cache/privtangent). Prints where it is and how good it is.",
    )
    p.add_argument("--rebuild", action="store_true", help="retrain even if a cached model exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_option(p)
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from privtangent.models.pretrain import describe, pretrained_base

    _, info = pretrained_base(progress=not args.quiet, rebuild=args.rebuild)
    print(json.dumps(info, indent=2, default=str) if args.json else f"{describe(info)}\n{info['path']}")
    return 0
