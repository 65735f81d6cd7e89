"""``privtangent audit`` (the main job, and the per-audit subcommands) and ``privtangent report``.

``privtangent audit [--config FILE] --out DIR`` trains, attacks, forgets and audits, then
renders the compliance report into DIR. ``privtangent audit privacy|unlearning|utility`` run
one audit each (``audits.cli``). ``privtangent report RUN_DIR`` re-renders a run's report
without retraining. Both register through the ``privtangent.commands`` entry points, so the
core never imports this layer. Exit status: 0 all checks pass, 1 a check failed, 2 bad input
(nothing is written), 3 internal error.
"""

from __future__ import annotations

import argparse
import json
import sys

from audits.cli import add_audit_subcommands
from privtangent.cli.options import add_device_option
from privtangent.errors import ConfigError, ExitStatus
from privtangent.io.outdir import check_output_dir

AUDIT_DESCRIPTION = """\
Run the pre-release audit and write the compliance report.

With no --config it audits the embedded default end to end (a small ViT pretrained on
Fashion-MNIST 0-4, fine-tuned as a tangent model on Fashion-MNIST 5-9): DP training at
eps in {1, 3, 8}, the regime comparison, shard composition and a forget request, the
black-box membership audit, the white-box canary audit, the unlearning audit, and the
report (report.html, report.pdf, report.json, CSV tables, plots) in --out.

A config file (YAML, TOML or JSON) audits your own model: see configs/example.yaml.

exit status: 0 all checks pass, 1 a check failed, 2 bad input (nothing written), 3 internal error"""


def register_audit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="run the pre-release audit and write the compliance report",
                       description=AUDIT_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="YAML/TOML/JSON config (default: the embedded default)")
    p.add_argument("--model", metavar="DIR",
                   help="audit this released model directory (privtangent train --out DIR): its DP statement, "
                        "re-derived; its accuracy; replicas of its training recipe attacked")
    p.add_argument("--out", metavar="DIR", help="output directory (created; required)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or stage log")
    p.add_argument("--json", action="store_true", help="print the verdict and checks as JSON on stdout")
    p.add_argument("--no-pdf", action="store_true", help="skip report.pdf")
    add_device_option(p)
    p.set_defaults(func=run_audit_command)
    add_audit_subcommands(p.add_subparsers(dest="audit_command", metavar="AUDIT", required=False))


def run_audit_command(args: argparse.Namespace) -> int:
    from audits.pipeline import AUDIT_DEFAULTS, run_audit
    from privtangent.config.schema import load_config
    from reports.render import render_run

    if args.out is None:
        raise ConfigError("--out DIR is required: the directory the report is written to")
    config = load_config(args.config, AUDIT_DEFAULTS)  # validated before anything is written
    out = check_output_dir(args.out, refuse_if_holds=("report.json", "models", "unlearning"))
    quiet = args.quiet or args.json
    log = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.model is not None:
        from privtangent.release import read_manifest

        read_manifest(args.model)  # a missing or corrupt model directory is bad input, before anything is written
    report = run_audit(config, out, progress=not quiet, log=log, command="privtangent " + " ".join(sys.argv[1:]),
                       model_dir=args.model)
    paths = render_run(out, pdf=not args.no_pdf)
    failed = sum(c["status"] == "FAIL" for c in report["checks"])
    if args.json:
        print(json.dumps({"verdict": report["verdict"], "checks": report["checks"], "out": str(out)}, indent=2))
    elif not args.quiet:
        print(f"verdict: {report['verdict']}  ({failed} failed of {len(report['checks'])} checks)\n"
              f"report: {paths['html']}")
    return ExitStatus.CHECK_FAILED if failed else ExitStatus.OK


def register_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="re-render a run directory's compliance report (HTML, PDF, CSV, plots)",
        description="Render RUN_DIR/report.json (written by `privtangent audit`) into report.html "
        "(self-contained), report.pdf, CSV tables and PNG plots, without retraining anything. "
        "Exit status: 0 rendered and every check passed, 1 rendered and a check failed (the verdict is "
        "recomputed from the checks), 2 the run directory is missing or corrupt.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by `privtangent audit --out`")
    p.add_argument("--no-pdf", action="store_true", help="skip the PDF")
    p.set_defaults(func=run_report_command)


def run_report_command(args: argparse.Namespace) -> int:
    from audits.report_file import read_report_json, report_verdict
    from reports.render import render_run

    paths = render_run(args.run_dir, pdf=not args.no_pdf)
    verdict = report_verdict(read_report_json(args.run_dir))
    print(f"wrote {paths['html']}" + (f" and {paths['pdf']}" if "pdf" in paths else "") + f"; verdict {verdict.value}")
    return ExitStatus.CHECK_FAILED if verdict.value == "FAIL" else ExitStatus.OK


__all__ = ["register_audit", "register_report", "run_audit_command", "run_report_command"]
