"""One config layer for every command: sections, defaults, coercion, errors that name the field."""

from __future__ import annotations

import json

import pytest

from privtangent.cli.main import main
from privtangent.config.fields import parse_section
from privtangent.config.schema import RunConfig, load_config, parse_config
from privtangent.dp.config import DPConfig
from privtangent.errors import ConfigError
from privtangent.train import TrainConfig


@pytest.mark.parametrize("text", ["privacy: {delta: 1e-5}\n", "privacy:\n  delta: 1e-5\n", "privacy: {delta: '1e-5'}\n"])
def test_yaml_1e5_is_a_number_everywhere(tmp_path, text):
    """YAML 1.1 reads ``1e-5`` (no dot) as a string: every config reader must still take it as δ = 1e-5."""
    (tmp_path / "c.yaml").write_text(text + "training: {lr: 1e-3}\n")
    config = load_config(tmp_path / "c.yaml")
    assert config.privacy.mechanism.delta == 1e-5 and config.training.lr == 1e-3
    assert config.dp_config(3).delta == 1e-5
    assert DPConfig.from_dict({"delta": "1e-5"}).delta == 1e-5
    assert TrainConfig.from_dict({"lr": "1e-3"}).lr == 1e-3


def test_the_same_file_configures_train_and_audit(tmp_path):
    (tmp_path / "c.yaml").write_text("model: {}\ndata: {task: digits, train_limit: 64, test_limit: 32}\n"
                                     "training: {epochs: 1, seed: 2}\nprivacy: {epsilons: [3], delta: 1e-5}\n")
    from audits.pipeline import AUDIT_DEFAULTS

    audit = load_config(tmp_path / "c.yaml", AUDIT_DEFAULTS)
    train = load_config(tmp_path / "c.yaml")
    for config in (audit, train):
        assert config.data.task == "digits" and config.data.train_limit == 64 and config.training.epochs == 1
        assert config.privacy.epsilons == (3.0,)
    assert audit.training.reset and not train.training.reset  # the audit's own default, under the file
    dp = audit.dp_config()
    assert (dp.seed, dp.reset, dp.target_epsilon, dp.delta) == (2, True, 3.0, 1e-5)


@pytest.mark.parametrize("raw, message", [
    ({"privacy": {"epsilon": [1]}}, "privacy.epsilon: unknown field; did you mean 'epsilons'?"),
    ({"privacy": {"clip": 1.0}}, "privacy.clip: unknown field; did you mean 'max_grad_norm'?"),
    ({"privcy": {}}, "privcy: unknown field; did you mean 'privacy'?"),
    ({"training": {"epoch": 3}}, "training.epoch: unknown field; did you mean 'epochs'?"),
    ({"audit": {"shadow": 4}}, "audit.shadow: unknown field; did you mean 'shadows'?"),
    ({"data": {"trian": "x"}}, "data.trian: unknown field; did you mean 'train'?"),
    ({"privacy": {"delta": 2}}, "privacy.delta: must be in (0, 1), got 2"),
    ({"data": {"std": "abc"}}, "data.std: must be a number or a list of numbers, got 'abc'"),
    ({"model": {"name": "vit_tiny_patch16_224", "kwargs": {"checkpoint_path": "w.pt"}}}, "model.kwargs: 'checkpoint_path'"),
    ({"model": {"name": "vit_tiny_patch16_224", "kwargs": {"pretrained": True}}}, "model.kwargs: 'pretrained'"),
    ({"train": {"lr": -1}}, "train.lr: must be > 0"),
    ({"epochs": "two"}, "epochs: must be an integer"),
])
def test_errors_name_the_field_and_the_nearest_valid_name(raw, message):
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert str(err.value).startswith(message), str(err.value)


def test_parse_section_coerces_numbers_by_type_only():
    assert parse_section(DPConfig, {"max_grad_norm": "0.5", "sample_rate": "1e-2"}, "privacy").sample_rate == 0.01
    with pytest.raises(ConfigError, match="privacy.seed: must be an integer"):
        parse_section(DPConfig, {"seed": "3"}, "privacy")  # integers are not guessed from strings


def test_layers_defaults_file_flags(tmp_path):
    (tmp_path / "c.yaml").write_text("training: {lr: 0.05, epochs: 3}\nout: runs/x\n")
    config = load_config(tmp_path / "c.yaml", {"training": {"epochs": 6, "reset": True}},
                         {"training": {"epochs": 9}})
    assert (config.training.lr, config.training.epochs, config.training.reset) == (0.05, 9, True)
    assert config.out == str((tmp_path / "runs" / "x").resolve())  # relative to the file's folder
    assert isinstance(RunConfig(), RunConfig) and RunConfig().privacy.epsilons == (1.0, 3.0, 8.0)


def test_train_config_file_typo_exits_2_naming_the_nearest_field(tmp_path, capsys):
    (tmp_path / "run.yaml").write_text("training:\n  learning_rate: 0.1\n")
    assert main(["train", "--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "training.learning_rate: unknown field" in err and not (tmp_path / "out").exists()


def test_audit_config_accepts_the_train_sections(tmp_path, capsys):
    """`privtangent audit --config` refuses nothing that `train --config` accepts, and vice versa."""
    (tmp_path / "c.yaml").write_text("privacy: {delta: 1e-5, max_grad_norm: 2}\ntraining: {lr: 1e-2}\n")
    config = load_config(tmp_path / "c.yaml")
    assert json.loads(json.dumps(config.to_dict(), default=str))["privacy"]["max_grad_norm"] == 2


def test_the_example_config_lists_every_field_and_parses():
    """configs/example.yaml documents every field of every section (the README says so)."""
    import dataclasses
    from pathlib import Path

    import yaml

    from privtangent.config.schema import RunConfig
    from privtangent.dp.config import DPConfig

    path = Path(__file__).resolve().parents[1] / "configs" / "example.yaml"
    raw = yaml.safe_load(path.read_text())
    for f in dataclasses.fields(RunConfig):
        if f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            continue  # run settings (out, threads, device) are flags
        names = {g.name for g in dataclasses.fields(f.default_factory())}
        if f.name == "privacy":  # the claims, then the mechanism's DPConfig fields flattened into the section
            names = (names - {"mechanism"}) | ({g.name for g in dataclasses.fields(DPConfig)} & set(raw["privacy"]))
            assert {"delta", "max_grad_norm", "sample_rate", "accountant", "noise_seed"} <= set(raw["privacy"])
        assert names <= set(raw[f.name]), (f.name, sorted(names - set(raw[f.name])))
