"""``privtangent``: one entry point, one subcommand per module.

Core subcommands are the ``privtangent/cli/cmd_*.py`` modules; subcommands that live above the
core (``audit``, ``report``) come from the ``privtangent.commands`` entry-point group, so the
core never imports the layers built on it. Registering a subcommand imports nothing heavy
(torch, timm, scipy): each command imports what it needs when it runs, so ``--help`` is fast.

Exit status (``privtangent.errors.ExitStatus``): 0 success, 1 a check failed (audits), 2 bad
input (the message names it; nothing written), 3 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from collections.abc import Callable
from importlib.metadata import entry_points

import privtangent
from privtangent.errors import ExitStatus, PrivtangentError

Register = Callable[[argparse._SubParsersAction], None]


def _core_commands() -> list[Register]:
    package = importlib.import_module("privtangent.cli")
    names = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("cmd_"))
    return [importlib.import_module(f"privtangent.cli.{name}").register for name in names]


def _plugin_commands() -> list[Register]:
    return [ep.load() for ep in sorted(entry_points(group="privtangent.commands"), key=lambda e: e.name)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="privtangent",
        description="Differential-privacy and unlearning audits for tangent vision transformers. "
        "Run `privtangent audit --out DIR` for the whole pre-release audit on the embedded default.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status: 0 ok, 1 a check failed, 2 bad input, 3 internal error",
    )
    parser.add_argument("--version", action="version", version=f"privtangent {privtangent.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _core_commands() + _plugin_commands():
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = _run(args)
    except PrivtangentError as err:
        print(f"privtangent: error: {err}", file=sys.stderr)
        return ExitStatus.BAD_INPUT
    except KeyboardInterrupt:
        print("privtangent: interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except Exception as err:  # noqa: BLE001 - a crash must never look like a failed check (status 1)
        traceback.print_exc(file=sys.stderr)
        print(f"privtangent: internal error: {type(err).__name__}: {err}", file=sys.stderr)
        return ExitStatus.INTERNAL_ERROR
    return ExitStatus.OK if status is None else int(status)


def _run(args: argparse.Namespace) -> int | None:
    """The command, on the device its ``--device`` names (commands without one run on the CPU)."""
    if getattr(args, "device", None) is None:
        return args.func(args)
    from privtangent.device import on_device  # torch loads here, never for --help

    with on_device(args.device):
        return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
