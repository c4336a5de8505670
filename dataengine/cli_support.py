"""What every command line shares: one way to fail, one command shape, one way to load its config.

Every command is ``CMD [CONFIG] [--set key=value ...]``. Its pydantic model owns every setting and every
default; a command's flags (``--input``, ``--vocab-size``, ...) are sugar that append ``--set`` overrides
and default to None (= not given), so a default lives in one place. ``config_epilog`` lists the model's
keys with their defaults and descriptions for ``--help``, so help and defaults cannot disagree.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar, Union, get_args, get_origin

import typer
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticUndefined, to_jsonable_python

from dataengine.configio import ConfigError, apply_overrides, load_config, read_yaml, validate

M = TypeVar("M", bound=BaseModel)

CONFIG_ARGUMENT_HELP = "YAML config (keys below); omitted = the defaults below"
SET_HELP = "override a config key: key.sub=value, the value in YAML (repeatable; applied before the flags)"


class InputsKey(BaseModel):
    """``inputs``: the documents a command reads (``--input`` sets it)."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[str] = Field(
        ..., min_length=1, description="input files, folders, globs or URIs (--input, repeatable)"
    )


class OutputKey(BaseModel):
    """``output``: what a command writes (``--output`` sets it)."""

    model_config = ConfigDict(extra="forbid")

    output: str = Field(..., description="where to write (--output)")


def fail(message: str) -> NoReturn:
    """Print the error in red on stderr and exit with status 2 (a usage or config error)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def load_config_or_exit(model: type[M], path: str | Path | None, overrides: list[str] | None) -> M:
    try:
        return load_config(model, path, overrides)
    except ConfigError as exc:
        fail(str(exc))


def flag_overrides(flags: Mapping[str, Any]) -> list[str]:
    """``key=value`` overrides for the flags that were given (None or an empty list = not given).

    Values are written as JSON, which YAML reads back unchanged (paths, lists, numbers, Chinese text)."""
    return [
        f"{key}={json.dumps(to_jsonable_python(value), ensure_ascii=False)}"
        for key, value in flags.items()
        if value is not None and value != [] and value != ()
    ]


def load_command_config(
    model: type[M],
    config: str | Path | None,
    sets: list[str] | None,
    flags: Mapping[str, Any] | None = None,
    section: str | None = None,
) -> M:
    """CONFIG (or the defaults), then ``--set`` overrides, then the given flags; validated before any work.

    ``section``: a YAML holding that top-level section (e.g. ``dedup:`` in configs/pipeline.yaml) is read
    from it. A bad config exits with status 2 naming the file, the key and what is expected."""
    overrides = [*(sets or []), *flag_overrides(flags or {})]
    origin = str(config) if config is not None else "(defaults)"
    if overrides:
        origin += " with --set " + " ".join(overrides)
    try:
        data = read_yaml(config) if config is not None else {}
        if section is not None and isinstance(data.get(section), dict):
            data = data[section]
        apply_overrides(data, overrides)
        return validate(model, data, origin)
    except ConfigError as exc:
        fail(str(exc))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (also inside ``Model | None``), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        models = [m for m in map(_model_of, get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


def config_keys(
    model: type[BaseModel], prefix: str = "", values: BaseModel | None = None
) -> Iterator[tuple[str, str, str]]:
    """(dotted key, default as JSON or "required", description) of every leaf key, sections walked."""
    for name, field in model.model_fields.items():
        key = prefix + name
        description = " ".join((field.description or "").split())
        sub = _model_of(field.annotation)
        if values is not None:
            default = getattr(values, name)
        elif field.is_required() and sub is not None:  # a required section: its keys and their defaults
            yield key + ".*", "section (required)", description
            yield from config_keys(sub, key + ".")
            continue
        elif field.is_required():
            yield key, "required", description
            continue
        else:
            default = field.get_default(call_default_factory=True)
        if sub is not None and isinstance(default, BaseModel):
            if description:
                yield key + ".*", "section", description
            yield from config_keys(sub, key + ".", default)
            continue
        if sub is not None and default is None:
            yield key, "null", description or f"a section ({sub.__name__}); null = off"
            continue
        shown = (
            "required"
            if default is PydanticUndefined
            else json.dumps(to_jsonable_python(default), ensure_ascii=False)
        )
        yield key, shown, description


def config_epilog(model: type[BaseModel]) -> str:
    """The --help text that lists every config key of ``model`` with its default and description."""
    from rich.markup import escape

    rows = sorted(config_keys(model), key=lambda row: "." in row[0])  # sections after the top-level keys
    lines = ["Config keys = defaults (YAML or --set key=value; each flag above sets the key it names):"]
    for key, default, description in rows:
        lines.append(escape(f"  {key} = {default}"))
        if description:
            lines.append(escape(f"      {description}"))
    return "\n".join(lines)
