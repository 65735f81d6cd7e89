"""Reading a config file (YAML, TOML or JSON) into a plain mapping, with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tomllib
import yaml

from privtangent.errors import ConfigError

FORMATS = {".yaml": "YAML", ".yml": "YAML", ".toml": "TOML", ".json": "JSON"}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The file's top-level mapping (an empty file is an empty mapping)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"config file {path}: unknown format {path.suffix!r}; use .yaml, .yml, .toml or .json")
    try:
        text = path.read_text()
        if kind == "TOML":
            data = tomllib.loads(text)
        elif kind == "JSON":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"config file {path} is not valid {kind}: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping, got {type(data).__name__}")
    return data


__all__ = ["FORMATS", "read_config_file"]
