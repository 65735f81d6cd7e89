"""``--device``: resolved once, refused when unavailable, honoured by training and evaluation."""

from __future__ import annotations

import pytest
import torch

from privtangent.cli.main import main
from privtangent.device import current_device, on_device, resolve_device
from privtangent.errors import ConfigError
from privtangent.train import TrainConfig, fit
from tests.conftest import make_tiny_vit


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="not a device"):
        resolve_device("abacus")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


def test_on_device_is_scoped_and_models_follow_it(near_small):
    train, test = near_small
    assert current_device() == torch.device("cpu")
    with on_device("cpu") as device:
        assert current_device() == device
        result = fit(make_tiny_vit(), train.limit(32), TrainConfig(epochs=1), test=test.limit(16), progress=False)
        assert next(result.model.parameters()).device == device
    assert current_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_an_unavailable_device_exits_2_before_anything_is_written(tmp_path, capsys):
    status = main(["train", "--data", "digits", "--data-limit", "32", "--epochs", "1", "--device", "cuda",
                   "--out", str(tmp_path / "out"), "--quiet"])
    assert status == 2 and "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
