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

# The shipped configs: the project's configs/ folder, reached through the dataengine/configs link in a
# checkout and packaged as dataengine/configs/ in the wheel.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


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


def resolve_config_path(path: str | Path) -> Path:
    """A config file as given; else, for a relative path, the shipped config of that name.

    `configs/pipeline.yaml`, `pipeline.yaml` and `pipeline` all name the shipped pipeline config when no
    such file exists under the current directory, so the README's commands work from any directory and
    after a wheel install.
    """
    path = Path(path)
    if path.is_file() or path.is_absolute():
        return path
    parts = path.parts[1:] if path.parts[:1] == ("configs",) else path.parts
    shipped = CONFIG_DIR.joinpath(*parts) if parts else CONFIG_DIR
    for candidate in (shipped, shipped.with_name(shipped.name + ".yaml")):
        if candidate.is_file():
            return candidate
    return path


def copy_shipped_configs(destination: str | Path, overwrite: bool = False) -> list[Path]:
    """Copy the shipped configs into ``destination`` (same sub-folders) to edit them; returns the files written.

    An existing file is left alone unless ``overwrite``; a user's edits are never lost by accident."""
    destination = Path(destination)
    written = []
    for source in sorted(CONFIG_DIR.rglob("*.yaml")):
        target = destination / source.relative_to(CONFIG_DIR)
        if target.exists() and not overwrite:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        written.append(target)
    return written


def deep_merge(base: dict, top: dict) -> dict:
    """``base`` with ``top``'s keys over it; sections (dicts) merge key by key, any other value replaces."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _include_path(name: Any, including: Path) -> Path:
    """An ``include:`` entry: a path relative to the including file, else a shipped config name."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{including}: include: each entry must be a file name, got {name!r}")
    relative = including.parent / name
    if relative.is_file():
        return relative
    found = resolve_config_path(name)
    if not found.is_file():
        raise ConfigError(
            f"{including}: include: {name!r} not found (neither next to {including.name} "
            f"nor a shipped config of that name under {CONFIG_DIR})"
        )
    return found


def read_yaml(path: str | Path, _including: tuple[Path, ...] = ()) -> dict:
    """A YAML config as a dict. ``include: [file.yaml, ...]`` merges those files (paths relative to this
    file, or shipped config names) deep, in order, before this file's own keys; ``--set`` comes after."""
    given = path
    path = resolve_config_path(path)
    if not path.is_file():
        raise ConfigError(
            f"{given}: config file not found (nor a shipped config of that name under {CONFIG_DIR})"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    if "include" not in data:
        return data
    includes = data.pop("include")
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list):
        raise ConfigError(f"{path}: include: expected a list of files, got {type(includes).__name__}")
    merged: dict = {}
    for name in includes:
        included = _include_path(name, path)
        if included.resolve() in _including + (path.resolve(),):
            raise ConfigError(f"{path}: include: {name!r} includes itself (a cycle)")
        merged = deep_merge(merged, read_yaml(included, _including + (path.resolve(),)))
    return deep_merge(merged, data)


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
