"""``privtangent``: one entry point, one subcommand per module.

Core subcommands are the ``privtangent/cli/cmd_*.py`` modules; subcommands that live
above the core (``audit``, ``report``) come from the ``privtangent.commands`` entry-point
group, so the core never imports the layers built on it.

Exit status: 0 success, 1 a check failed (audits), 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from importlib.metadata import entry_points

import privtangent
from privtangent.errors import PrivtangentError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _core_commands() -> list:
    package = importlib.import_module("privtangent.cli")
    names = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("cmd_"))
    return [importlib.import_module(f"privtangent.cli.{name}").register for name in names]


def _plugin_commands() -> list:
    return [ep.load() for ep in sorted(entry_points(group="privtangent.commands"), key=lambda e: e.name)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="privtangent",
        description="Differential-privacy and unlearning audits for tangent vision transformers. "
        "Run `privtangent audit --out DIR` for the whole pre-release audit on the embedded default.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status: 0 ok, 1 a check failed, 2 bad input",
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
        status = args.func(args)
    except PrivtangentError as err:
        print(f"privtangent: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("privtangent: interrupted", file=sys.stderr)
        return 130
    return EXIT_OK if status is None else int(status)


if __name__ == "__main__":
    sys.exit(main())
