"""The compliance report as one self-contained HTML page (plots embedded as data URIs, no script).

Page 1 is the summary a reviewer outside ML reads (``reports.summary``); the evidence follows
on the next pages (``reports.evidence``), ending with the hashes in full. The print style sheet
lays it out on A4: the summary alone on page 1, no table or figure wider than the page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reports.cells import esc
from reports.evidence import evidence_html
from reports.summary import summary_html

A4_MARGIN_MM = (10, 12)  # print margins (top and bottom, sides); the text width is 210 − 2·12 = 186 mm

CSS = f"""
@page{{size:A4;margin:{A4_MARGIN_MM[0]}mm {A4_MARGIN_MM[1]}mm}}
*{{box-sizing:border-box}}
html{{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
body{{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;font-size:9pt;line-height:1.3;color:#1b1f24;margin:0}}
@media screen{{body{{max-width:62em;margin:24px auto;padding:0 16px}}}}
h1{{font-size:15pt;margin:0 0 2px}} h2{{font-size:11.5pt;margin:10px 0 3px}}
h3{{font-size:10.5pt;margin:10px 0 3px}}
h4,h5{{font-size:9.5pt;margin:8px 0 2px}} h2,h3,h4,h5{{break-after:avoid}}
p{{margin:4px 0;overflow-wrap:anywhere}} .sub{{color:#57606a;font-size:8.5pt}}
.intro,.note,.caption,.shared{{color:#57606a}}
.note,.caption,.shared{{font-size:8.5pt}}
.verdict{{font-size:12pt;padding:5px 10px;border-radius:5px;margin:6px 0 4px;font-weight:600}}
.verdict.pass{{background:#dafbe1;color:#116329;border:1px solid #4ac26b}}
.verdict.fail{{background:#ffebe9;color:#a40e26;border:1px solid #ff8182}}
.warning{{background:#fff8c5;border:1px solid #d4a72c;padding:4px 8px;border-radius:4px}}
table{{border-collapse:collapse;width:100%;margin:3px 0 6px;font-size:7.8pt;line-height:1.22}}
th,td{{border:1px solid #d0d7de;padding:1px 4px;text-align:left;vertical-align:top;overflow-wrap:anywhere}}
th{{background:#f6f8fa;font-weight:600;overflow-wrap:break-word}} .n,td.name{{white-space:nowrap}}
tr{{break-inside:avoid}}
table.kv1 th{{width:22%}} table.kv2 th{{width:22%}} table.kv2 td{{width:28%}}
table.kv3 th{{width:17%}} table.kv3 td{{width:16%}}
table.transposed tbody th{{width:26%}}
#summary h2{{font-size:11pt;margin:7px 0 2px}} #summary .note{{font-size:7.5pt}}
#summary table{{font-size:7.5pt;line-height:1.2;margin-bottom:3px}}
table.checks td.result{{width:1%;white-space:nowrap}} table.checks b{{font-weight:600}} .finding{{color:#57606a}}
table.checks tr.meaning td{{background:#f6f8fa;color:#3d444d;font-style:italic;font-size:7.2pt;
  border-top:2px solid #afb8c1}}
p.inline{{font-size:8.5pt}}
tr.fail td{{background:#ffebe9}}
.badge{{padding:0 6px;border-radius:8px;font-weight:600;font-size:7.5pt;white-space:nowrap}}
.badge.pass{{background:#1a7f37;color:white}} .badge.fail{{background:#cf222e;color:white}}
.badge.skip{{background:#8c959f;color:white}} .badge.inconclusive{{background:#9a6700;color:white}}
.hash,.fullhash{{font-family:"DejaVu Sans Mono",monospace;font-size:7.5pt}} table.hashes td:first-child{{width:38%}}
section{{margin-top:6px}} section+section{{border-top:2px solid #d0d7de;padding-top:2px}}
#summary{{break-after:page}}
figure{{float:right;width:52%;margin:2px 0 4px 12px;break-inside:avoid}} figure img{{width:100%}}
section{{display:flow-root}} table,h3,h4,h5,ul,p.shared,p.caption{{clear:both}}
ul{{margin:2px 0 6px;padding-left:18px}}
footer{{color:#57606a;font-size:8pt;margin-top:10px}}
"""


def render_html(report: Mapping[str, Any], figures: Mapping[str, Sequence[tuple[str, bytes]]] | None = None,
                model_cards: Mapping[str, str] | None = None) -> str:
    """The report page. ``figures`` maps a section key to [(caption, png bytes)]; ``model_cards`` maps a
    released model's path as report.json names it to the link of its model card."""
    return "".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{esc(report['title'])}</title><style>{CSS}</style></head><body>",
        summary_html(report, model_cards or {}),
        evidence_html(report, figures or {}),
        f"<footer>report schema {esc(report['schema'])} v{esc(report['schema_version'])}</footer></body></html>",
    ])


__all__ = ["A4_MARGIN_MM", "CSS", "render_html"]
