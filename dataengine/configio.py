"""Load a YAML config into a pydantic model, with `--set key=value` overrides, validated once at the edge.

Shared by every command line (pipeline, dedup, trainer, eval) so errors read the same everywhere:
they name the file, the dotted key and what was expected, before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """An unusable config: raised before any work starts."""


def parse_overrides(overrides: list[str] | None) -> list[tuple[list[str], Any]]:
    parsed = []
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set stages.langid.threshold=0.5")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from exc
        parsed.append((key.strip().split("."), value))
    return parsed


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    for path, value in parse_overrides(overrides):
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {'.'.join(path)}: '{part}' holds a value, not a section")
            node = child
        node[path[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def validate(model: type[M], data: dict, origin: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            if err["type"] == "extra_forbidden":
                problems.append(f"  {key}: unknown key")
            else:
                problems.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError(f"{origin}: invalid config\n" + "\n".join(problems)) from None


def load_config(model: type[M], path: str | Path | None, overrides: list[str] | None = None) -> M:
    """Read `path` (or the model's defaults when None), apply overrides, validate."""
    data = read_yaml(path) if path is not None else {}
    apply_overrides(data, overrides)
    origin = str(path) if path is not None else "(defaults)"
    if overrides:
        origin += " with --set " + " ".join(overrides)
    return validate(model, data, origin)
