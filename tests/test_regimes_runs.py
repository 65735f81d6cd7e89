"""Running a regime comparison on tiny ViTs: paired, resumable runs; the public-data search; the typed
answer; the budgeted comparison of the main job; the ``compare-regimes`` command."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from privtangent.data.dataset import LabeledData
from privtangent.dp.training import resolve_noise
from privtangent.errors import ConfigError
from privtangent.experiments.regimes import (
    RegimeGrid,
    RunStore,
    TaskSplit,
    TuningGrid,
    compare,
    run_grid,
    run_quick_comparison,
    tune,
)
from privtangent.experiments.regimes.runner import base_identity
from privtangent.features import FeatureCache


def _rows(table):
    """Runs of a synthetic comparison: {(regime, kind, ε): [accuracy per seed]} → run_grid-like rows."""
    return [{"data": "toy", "regime": r, "kind": k, "target_epsilon": e, "seed": s, "test_accuracy": v / 100,
             "num_train": 1000, "num_test": 500, "delta": 1e-5, "sample_rate": 0.1, "expected_batch_size": 100,
             "steps": 50, "optimizer": "adam", "accountant": "prv", "noise_multiplier": 1.0 / e, "cpu_seconds": 1.0}
            for (r, k, e), values in table.items() for s, v in enumerate(values)]


def test_compare_finds_the_best_cell_per_epsilon_and_says_where_tangent_loses():
    table = {("full", "Ours", 1.0): [60, 61, 62], ("full", "Reg", 1.0): [55, 56, 57],
             ("fc", "Ours", 1.0): [66, 67, 68], ("fc", "Reg", 1.0): [64, 66, 65],
             ("full", "Ours", 8.0): [80, 81, 82], ("full", "Reg", 8.0): [85, 86, 87],
             ("fc", "Ours", 8.0): [75, 75, 76], ("fc", "Reg", 8.0): [76, 74, 76]}
    grid = RegimeGrid(regimes=("full", "fc"), epsilons=(1.0, 8.0), data=("toy",))
    c = compare(_rows(table), grid, "toy", base="tiny", hyperparameters="fixed")
    assert [(b.epsilon, b.regime, b.kind) for b in c.best] == [(1.0, "fc", "Ours"), (8.0, "full", "Reg")]
    assert c.best[1].runner_up == ("full", "Ours") and c.best[1].margin.mean == pytest.approx(5.0)
    assert c.difference("full", 8.0).verdict == "Reg better"
    assert c.difference("full", 1.0).verdict == "Ours better"
    assert c.difference("fc", 8.0).verdict == "no clear difference"
    assert c.cell("full", "Reg", 8.0).accuracy.mean == pytest.approx(86.0)
    assert "Full at ε = 8: -5.0 points" in c.sentence and "Ours FC at ε = 1" in c.sentence
    assert "Reg Full at ε = 8" in c.sentence
    assert json.loads(json.dumps(c.to_dict()))["best"][0]["kind"] == "Ours"
    row = next(r for r in c.utility_rows() if (r["regime"], r["epsilon"]) == ("full", 8.0))
    assert (row["ours"], row["reg"], row["ours_std"], row["seeds"]) == pytest.approx((0.81, 0.86, 0.01, 3))
    assert row["ours_minus_reg"] == pytest.approx(-0.05) and row["ours_minus_reg_high"] < 0
    assert row["verdict"] == "Reg better"


@pytest.fixture
def toy(near_small):
    train, test = near_small
    part = lambda a, b, name: train.subset(torch.arange(a, b), name)  # noqa: E731
    return TaskSplit("toy", part(0, 100, "toy/train"), test.limit(80), part(100, 200, "toy/public-train"),
                     part(200, 300, "toy/public-val"), "rows 100–300 of the training slice")


def test_run_grid_pairs_both_kinds_and_a_rerun_resumes_every_run(tiny_vit, toy, tmp_path):
    grid = RegimeGrid(regimes=("full", "fc"), epsilons=(3.0,), data=("toy",), batch_size=32, steps=3, seeds=(0, 1),
                      noise_seed=0, delta=None)
    store, cache = RunStore(tmp_path / "runs"), FeatureCache()
    first = run_grid(grid, base=tiny_vit, progress=False, splits={"toy": (toy.train, toy.test)}, store=store,
                     cache=cache, manifest_dir=tmp_path / "manifests")
    assert len(first.rows) == 8 and first.info["runs_resumed"] == 0
    manifests = {p.name: json.loads(p.read_text()) for p in (tmp_path / "manifests").glob("*.json")}
    assert len(manifests) == 8
    for regime in ("full", "fc"):
        for seed in (0, 1):
            ours, reg = (manifests[f"toy_n100_{regime}_{k}_eps3_seed{seed}.json"] for k in ("ours", "reg"))
            assert ours["noise_seed"] == reg["noise_seed"]  # paired: same batches, same noise draws
            assert ours["sample_rate"] == pytest.approx(0.32) and ours["steps"] == 3
            assert ours["delta"] == 1e-5 and ours["epsilon"] <= 3.0
    again = run_grid(grid, base=tiny_vit, progress=False, splits={"toy": (toy.train, toy.test)}, store=store,
                     cache=cache)
    assert again.info["runs_resumed"] == 8
    assert [r["test_accuracy"] for r in again.rows] == [r["test_accuracy"] for r in first.rows]


def test_tuning_spends_the_same_runs_per_cell_picks_the_best_and_replays_the_private_noise(tiny_vit, toy, tmp_path):
    grid = RegimeGrid(regimes=("full", "fc"), epsilons=(3.0,), data=("toy",), batch_size=32, steps=3, noise_seed=0,
                      delta=None)
    search = TuningGrid(lrs=(0.01, 0.1, 1.0), clips=(1.0, 10.0), epsilon=3.0)
    store = RunStore(tmp_path / "runs")
    result = tune(tiny_vit, toy, grid, search, cache=FeatureCache(), store=store, base_id=base_identity(tiny_vit))
    assert set(result.trials_per_cell().values()) == {6} and len(result.trials_per_cell()) == 4
    for regime, kind, lr, clip in result.chosen:
        own = [t for t in result.trials if (t.regime, t.kind) == (regime, kind)]
        assert max(own, key=lambda t: t.val_accuracy) == next(t for t in own if (t.lr, t.clip) == (lr, clip))
    sigma, _ = resolve_noise(grid.dp_config(True, "full", 3.0, 0, n=len(toy.train)), len(toy.train))
    specs = [json.loads(p.read_text())["spec"]["config"] for p in (tmp_path / "runs").glob("*.json")]
    assert len(specs) == 24
    for config in specs:  # σ of the private run, its T, and its expected batch (32 of 100 public images)
        assert config["noise_multiplier"] == pytest.approx(sigma) and config["target_epsilon"] is None
        assert config["sample_rate"] == pytest.approx(0.32) and round(config["epochs"] / config["sample_rate"]) == 3
    assert f"σ = {sigma:.4g}" in result.setting and "public" in result.setting


def test_quick_comparison_fits_its_budget_and_answers_per_epsilon(tiny_vit, toy):
    hp = tuple((r, k, 0.05, 1.0) for r in ("full", "fc") for k in ("Ours", "Reg"))
    quick = run_quick_comparison(tiny_vit, toy.train, toy.test, epsilons=(3.0, 8.0), regimes=("full", "fc"),
                                 seeds=(0, 1, 2), budget_seconds=6.0, hyperparameters=hp,
                                 hyperparameter_source="fixed for the test")
    c, plan = quick.comparison, quick.plan
    assert [b.epsilon for b in c.best] == [3.0, 8.0] and all(b.accuracy.n == 3 for b in c.best)
    assert plan.runs == 2 * 2 * 2 * 3 and 20 <= plan.steps <= 100 and 8 <= plan.batch_size <= len(toy.train)
    assert c.steps == plan.steps and c.num_train == len(toy.train) and "fixed for the test" in c.hyperparameters
    assert "not accounted for in ε" in c.hyperparameters and c.sentence.startswith("On toy/train")
    assert quick.cpu_seconds < 3 * 6.0  # planned from measured CPU costs (loose: probes are short)
    with pytest.raises(ConfigError, match="no \\(lr, C\\) for fc/Ours"):
        run_quick_comparison(tiny_vit, toy.train, toy.test, regimes=("fc",), hyperparameters=(), budget_seconds=1.0)


def _compare_regimes(argv: list[str]) -> int:
    """The subcommand alone (its own parser), as ``privtangent compare-regimes`` runs it."""
    from privtangent.cli import cmd_compare_regimes

    parser = argparse.ArgumentParser(prog="privtangent")
    cmd_compare_regimes.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_compare_regimes_command_tunes_answers_and_resumes(tmp_path, base_model, capsys):
    out = tmp_path / "t3"
    argv = ["compare-regimes", "--out", str(out), "--data", "digits", "--data-limit", "40", "--test-limit", "60",
            "--steps", "2", "--batch-size", "16", "--seeds", "0,1", "--epsilons", "3,8", "--regimes", "fc",
            "--lrs", "0.01,0.1", "--clips", "1", "--threads", "1", "--quiet"]
    assert _compare_regimes(argv) == 0
    printed = capsys.readouterr().out
    assert "| 3 | " in printed and "the most accurate choice was" in printed and "not accounted for in ε" in printed
    for name in ("table3.md", "table3.csv", "table3_runs.csv", "table3_differences.csv", "table3_tuning.csv",
                 "table3.json", "table3.png"):
        assert (out / name).stat().st_size > 0
    report = json.loads((out / "table3.json").read_text())["comparisons"][0]
    assert report["num_train"] == 40 and report["tuning"]["chosen"] and len(report["best"]) == 2
    assert "privtangent compare-regimes" in (out / "table3.md").read_text()
    assert _compare_regimes(argv) == 0
    assert "8 runs (8 resumed)" in capsys.readouterr().out


def test_compare_regimes_sizes_plot_difference_against_n(tmp_path, base_model):
    out = tmp_path / "n"
    assert _compare_regimes(["compare-regimes", "--out", str(out), "--data", "digits", "--sizes", "20,40",
                             "--test-limit", "40", "--steps", "2", "--batch-size", "16", "--seeds", "0,1",
                             "--epsilons", "3", "--regimes", "fc", "--no-tune", "--threads", "1", "--quiet"]) == 0
    report = json.loads((out / "table3.json").read_text())
    assert [c["num_train"] for c in report["comparisons"]] == [20, 40]
    assert (out / "table3_vs_n.png").stat().st_size > 0
    assert "fixed in advance" in report["comparisons"][0]["hyperparameters"]


@pytest.mark.parametrize("argv", [["--sizes", "10,20", "--data-limit", "5"], ["--steps", "3", "--epochs", "2"],
                                  ["--data", "fashion-pretrain"]])
def test_compare_regimes_refuses_bad_input(tmp_path, argv, base_model):
    with pytest.raises(ConfigError):
        _compare_regimes(["compare-regimes", "--out", str(tmp_path / "x"), "--quiet", "--threads", "1", *argv])


def test_labeled_data_of_the_toy_split_is_what_the_fixture_says(toy):
    assert isinstance(toy.train, LabeledData) and len(toy.public_val) == 100


def test_a_shared_noise_seed_gives_both_kinds_the_same_batches_and_noise(tiny_vit, toy):
    """The pairing the intervals rely on. With σ huge the privatized gradient is the noise: its
    clipped-sum part is at most (records · C) / (σ · C) = 32 / 1e6 of it in norm."""
    from privtangent.dp.training import fit_dp

    grid = RegimeGrid(regimes=("full",), data=("toy",), batch_size=32, steps=4, noise_seed=0)
    seen = {}
    for kind in ("Ours", "Reg"):
        config = grid.dp_config(kind == "Ours", "full", 3.0, 0, noise_multiplier=1e6,
                                noise_seed=grid.cell_noise_seed("toy", "full", 3.0, 0), n=len(toy.train))
        steps = []
        fit_dp(tiny_vit, toy.train, config.replace(target_epsilon=None, lr=1e-12), cache=FeatureCache(),
               progress=False, on_step=lambda s: steps.append((s.batch_size, {n: g / s.noise_std for n, g in
                                                                                 s.grad.items()})))
        seen[kind] = steps
    assert len(seen["Ours"]) == len(seen["Reg"]) == 4
    for (b_ours, g_ours), (b_reg, g_reg) in zip(seen["Ours"], seen["Reg"]):
        assert b_ours == b_reg and list(g_ours) == list(g_reg)
        assert all(torch.allclose(g_ours[n], g_reg[n], atol=1e-3 / 32) for n in g_ours)
