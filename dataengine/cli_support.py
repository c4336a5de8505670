"""What every command line shares: one way to fail and one way to load a config before any work."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn, TypeVar

import typer
from pydantic import BaseModel

from dataengine.configio import ConfigError, load_config

M = TypeVar("M", bound=BaseModel)


def fail(message: str) -> NoReturn:
    """Print the error in red on stderr and exit with status 2 (a usage or config error)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def load_config_or_exit(model: type[M], path: str | Path | None, overrides: list[str] | None) -> M:
    try:
        return load_config(model, path, overrides)
    except ConfigError as exc:
        fail(str(exc))
