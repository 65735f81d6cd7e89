"""``privtangent audit``: the main job, and the per-audit subcommands.

``privtangent audit [--config FILE] --out DIR`` trains, attacks, forgets and audits, then
renders the compliance report into DIR. ``privtangent audit privacy|unlearning|utility``
run one audit each (``audits.cli``). Exit status: 0 all checks pass, 1 a check failed,
2 bad input (nothing is written).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from privtangent.errors import ConfigError

DESCRIPTION = """\
Run the pre-release audit and write the compliance report.

With no --config it audits the embedded default end to end (a small ViT pretrained on
Fashion-MNIST 0-4, fine-tuned as a tangent model on Fashion-MNIST 5-9): DP training at
eps in {1, 3, 8}, the regime comparison, shard composition and a forget request, the
black-box membership audit, the white-box canary audit, the unlearning audit, and the
report (report.html, report.pdf, report.json, CSV tables, plots) in --out.

A config file (YAML or TOML) audits your own model: see configs/example.yaml.

exit status: 0 all checks pass, 1 a check failed, 2 bad input (nothing written)"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="run the pre-release audit and write the compliance report",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="YAML/TOML config (default: the embedded default)")
    p.add_argument("--out", metavar="DIR", help="output directory (created; required)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or stage log")
    p.add_argument("--json", action="store_true", help="print the verdict and checks as JSON on stdout")
    p.add_argument("--no-pdf", action="store_true", help="skip report.pdf")
    p.set_defaults(func=run)
    try:
        from audits.cli import add_audit_subcommands
    except ImportError:  # the per-audit subcommands are optional
        return
    add_audit_subcommands(p.add_subparsers(dest="audit_command", metavar="AUDIT", required=False))


def run(args: argparse.Namespace) -> int:
    from audits.config import load_config
    from audits.pipeline import run_audit
    from reports.render import render_run

    if args.out is None:
        raise ConfigError("--out DIR is required: the directory the report is written to")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    config = load_config(args.config)  # validated before anything is written
    log = (lambda msg: None) if args.quiet or args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    report = run_audit(config, out, progress=not (args.quiet or args.json), log=log,
                       command="privtangent " + " ".join(sys.argv[1:]))
    paths = render_run(out, pdf=not args.no_pdf)
    if args.json:
        print(json.dumps({"verdict": report["verdict"], "checks": report["checks"], "out": str(out)}, indent=2))
    elif not args.quiet:
        print(f"verdict: {report['verdict']}  ({sum(c['status'] == 'FAIL' for c in report['checks'])} failed of "
              f"{len(report['checks'])} checks)\nreport: {paths['html']}")
    return 0 if report["verdict"] == "PASS" else 1
