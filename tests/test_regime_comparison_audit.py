"""The utility audit's answer: the quick regime comparison as a report section."""

from __future__ import annotations

import pytest
import torch

from audits.regime_comparison import run_regime_comparison_audit
from reports.summary import regime_answer_html


def test_the_section_answers_per_epsilon_with_intervals_and_a_check(tiny_vit, near_small):
    train, test = near_small
    section = run_regime_comparison_audit(tiny_vit, train.subset(torch.arange(120), "toy"), test.limit(60),
                                          regimes=("full", "fc"), epsilons=(3.0, 8.0), seeds=(0, 1),
                                          budget_seconds=5.0)
    body = section.body
    assert section.key == "utility" and [c.id for c in section.checks] == ["utility-dp-above-chance"]
    rows = body["rows"]
    assert {(r["regime"], r["epsilon"]) for r in rows} == {(g, e) for g in ("full", "fc") for e in (3.0, 8.0)}
    for r in rows:  # Ours − Reg with its paired interval, in the rows' unit (fractions)
        assert r["ours_minus_reg"] == pytest.approx(r["ours"] - r["reg"], abs=1e-9)
        assert r["ours_minus_reg_low"] <= r["ours_minus_reg"] <= r["ours_minus_reg_high"]
        assert r["verdict"] in ("Ours better", "Reg better", "no clear difference")
    for best in body["best"]:  # the best cell per ε is the highest mean of that ε's rows
        candidates = [(r[k], f"{k.capitalize()} {r['regime']}") for r in rows if r["epsilon"] == best["epsilon"]
                      for k in ("ours", "reg")]
        top = max(acc for acc, _ in candidates)
        assert best["accuracy"] == pytest.approx(top, abs=1e-6)
        assert best["best"] in {name for acc, name in candidates if acc >= top - 1e-6}  # ties: either is best
        assert best["accuracy_low"] <= best["accuracy"] <= best["accuracy_high"]
    assert body["answer"].startswith("On toy") and "not accounted for in ε" in body["setup"]["tuning"]
    assert body["setup"]["runs"] == 2 * 2 * 2 * 2 and body["setup"]["budget_cpu_seconds"] == 5.0
    assert "no clear difference in" in section.checks[0].reason  # the check counts the verdicts
    assert body["answer"] in regime_answer_html({"utility": body})
    assert regime_answer_html({}) == ""
