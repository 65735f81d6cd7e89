"""Page 1 of the report: the verdict, the released model(s), the DP statement, and every check explained.

A reviewer outside ML should be able to stop after this page. The verdict is recomputed from
the checks (a file that says PASS next to a failed check is shown as FAIL, with a warning);
the released models are identified by sha256 and link to their model cards when the run
directory has them; each check carries one plain sentence on what it shows and what a PASS
does not show (``reports.checks``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reports.cells import badge, cell, esc
from reports.checks import explained_checks, groups, tally

DP_SUMMARY_KEYS = [  # (key of dp_statement, label on page 1)
    ("privacy_unit", "Unit of privacy"), ("accountant", "Accountant"),
    ("mechanism", "Mechanism"), ("covered", "What the guarantee covers"), ("tuning_note", "Hyperparameter tuning"),
    ("release_note", "Noise source"),
]


def verdict_html(report: Mapping[str, Any]) -> str:
    """The verdict banner, recomputed from the checks, naming the failed checks."""
    counts = tally(report)
    verdict = counts.verdict.value
    failed = [c.title for c, shown, _ in explained_checks(report) if shown == "FAIL"]
    text = f"Verdict: {verdict}. {counts.headline()}"
    if failed:
        text += " Failed: " + "; ".join(failed) + "."
    html = f"<div class='verdict {verdict.lower()}'>{esc(text)}</div>"
    if report.get("verdict") != verdict:
        html += (f"<p class='warning'>report.json records the verdict {esc(report.get('verdict'))}, but its checks "
                 f"give {verdict}; this page shows the verdict recomputed from the checks.</p>")
    if counts.inconclusive or counts.skipped:
        html += ("<p class='note'>INCONCLUSIVE or SKIP is neither a pass nor a failure: the evidence could not decide, "
                 "or the check was not run (the finding says why).</p>")
    return html


def released_models(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per released model: where it is, its guarantee, its sha256."""
    statement = report.get("dp_statement")
    runs = [r for r in statement.get("runs", []) if isinstance(r, Mapping)] if isinstance(statement, Mapping) else []
    released = report.get("released_model")
    if isinstance(released, Mapping):
        run = runs[0] if len(runs) == 1 else {}
        return [{"model": released.get("directory", released.get("method")),
                 "epsilon_target": run.get("epsilon_target"),
                 "epsilon": run.get("epsilon"), "delta": run.get("delta"),
                 "test_accuracy": released.get("test_accuracy_measured", run.get("test_accuracy")),
                 "sha256": released.get("sha256")}]
    return [{"model": r.get("model"), "epsilon_target": r.get("epsilon_target"), "epsilon": r.get("epsilon"),
             "delta": r.get("delta"), "test_accuracy": r.get("test_accuracy"), "sha256": r.get("model_sha256")}
            for r in runs]


def released_html(report: Mapping[str, Any], model_cards: Mapping[str, str]) -> str:
    rows = released_models(report)
    if not rows:
        return ""
    body = ""
    for r in rows:
        card = model_cards.get(str(r["model"]))
        link = f"<a href='{esc(card)}'>model card</a>" if card else "none in this directory"
        body += (f"<tr><td>{cell(r['model']) if r['model'] else 'not saved'}</td><td>{cell(r['epsilon_target'])}</td>"
                 f"<td>{cell(r['epsilon'])}</td><td>{cell(r['delta'])}</td><td>{cell(r['test_accuracy'])}</td>"
                 f"<td>{cell(r['sha256'])}</td><td>{link}</td></tr>")
    if any(r["sha256"] for r in rows):
        title = "Released model" + ("s" if len(rows) > 1 else "")
    else:
        title = "Models trained (no model file was saved)"
    return (f"<h2>{title}</h2><table class='released'><thead><tr>"
            "<th>model</th><th>promised ε</th><th>accounted ε</th><th>δ</th><th>test accuracy (fraction)</th>"
            f"<th>sha256</th><th>model card</th></tr></thead><tbody>{body}</tbody></table>")


def dp_statement_html(report: Mapping[str, Any]) -> str:
    statement = report.get("dp_statement")
    if not isinstance(statement, Mapping):
        return ""
    rows = "".join(f"<tr><th>{esc(name)}</th><td>{cell(statement[key])}</td></tr>"
                   for key, name in DP_SUMMARY_KEYS if key in statement)
    if "tuning_note" not in statement and statement.get("tuning_accounted") is False:
        rows += "<tr><th>Hyperparameter tuning</th><td>not accounted for in ε</td></tr>"
    if "release_note" not in statement and isinstance(statement.get("noise_seeded"), bool):
        source = "a fixed seed (whoever knows it can recompute the noise)" if statement["noise_seeded"] else \
            "not a fixed seed"
        rows += f"<tr><th>Noise source</th><td>{source}</td></tr>"
    return ("<h2>Differential-privacy statement</h2><p class='note'>(ε, δ)-DP: one unit of privacy changes the "
            "chance of any outcome at most e<sup>ε</sup>-fold, except with probability δ; smaller ε is stronger.</p>"
            f"<table class='kv kv1'>{rows}</table>")


def checks_html(report: Mapping[str, Any]) -> str:
    """Every check with its result and finding, under one line (per group of alike checks) on what it means."""
    body = ""
    for group in groups(explained_checks(report)):
        body += f"<tr class='meaning'><td colspan='2'>{esc(group[0][2])}</td></tr>"
        for check, shown, _ in group:
            body += (f'<tr class="{shown.lower()}"><td class="result">{badge(shown)}</td><td><b>{esc(check.title)}</b>'
                     f"<span class='finding'> — {esc(check.reason)}</span></td></tr>")
    return ("<h2>Checks</h2><table class='checks'><thead><tr><th>result</th><th>check — finding</th></tr>"
            f"</thead><tbody>{body}</tbody></table>")


def regime_answer_html(report: Mapping[str, Any]) -> str:
    """The regime comparison's one-sentence answer (which regime to train under DP), if it ran."""
    utility = report.get("utility")
    answer = utility.get("answer") if isinstance(utility, Mapping) else None
    return f"<p><b>Which regime to train under DP.</b> {esc(answer)}</p>" if answer else ""


def summary_html(report: Mapping[str, Any], model_cards: Mapping[str, str]) -> str:
    """Page 1: header, verdict, released models, DP statement, checks."""
    generated = (f"Generated {esc(report.get('created_at', ''))} by privtangent "
                 f"{esc(report.get('privtangent_version', ''))}.")
    parts = [f"<section id='summary'><h1>{esc(report['title'])}</h1>",
             f"<p class='sub'>{esc(report.get('subtitle', ''))} {generated}</p>", verdict_html(report)]
    if report.get("summary"):
        parts.append(f"<p>{esc(report['summary'])}</p>")
    parts += [released_html(report, model_cards), dp_statement_html(report), regime_answer_html(report),
              checks_html(report), "</section>"]
    return "".join(parts)


__all__ = ["DP_SUMMARY_KEYS", "checks_html", "dp_statement_html", "regime_answer_html", "released_html", "released_models",
           "summary_html", "verdict_html"]
