"""``privtangent report RUN_DIR``: re-render a run's compliance report without retraining."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="re-render a run directory's compliance report (HTML, PDF, CSV, plots)",
        description="Render RUN_DIR/report.json (written by `privtangent audit`) into report.html "
        "(self-contained), report.pdf, CSV tables and PNG plots, without retraining anything. "
        "Exit status: 0 rendered, 2 the run directory is missing or corrupt.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by `privtangent audit --out`")
    p.add_argument("--no-pdf", action="store_true", help="skip the PDF")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reports.render import render_run

    paths = render_run(args.run_dir, pdf=not args.no_pdf)
    print(f"wrote {paths['html']}" + (f" and {paths['pdf']}" if "pdf" in paths else ""))
    return 0
