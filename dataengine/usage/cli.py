"""`dataengine usage ...`: what training runs consumed, per run, channel and document (DESIGN §3.4)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dataengine.cli_support import fail

usage_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Inspect the usage ledger.")


def _open(path: Path, hint: str):
    from dataengine.usage.ledger import UsageLedger, ledger_path

    if not ledger_path(path).is_file():
        fail(f"{ledger_path(path)}: no usage ledger ({hint})")
    return UsageLedger(path)


def _print(rows: list[dict], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in rows[0] if rows else []:
        table.add_column(column)
    for row in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()))
    Console().print(table)


@usage_app.command()
def runs(
    ledger: Path = typer.Argument(..., help="usage.sqlite, or a run (or shards) directory holding one"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Runs recorded in the ledger: dataset, sequences consumed, last recorded step."""
    db = _open(ledger, "a file, or a run directory")
    try:
        _print(db.runs(), as_json, "runs")
    finally:
        db.close()


@usage_app.command()
def channels(
    shards: Path = typer.Argument(..., help="token shards directory (DESIGN §3.3)"),
    ledger: Path = typer.Option(None, help="ledger file or run directory (default SHARDS/usage.sqlite)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Tokens consumed per channel, over all runs on these shards."""
    from dataengine.pack.shards import ShardReader
    from dataengine.usage.counts import usage_by

    db = _open(
        ledger or shards,
        f"pass --ledger RUN (each run keeps RUN/usage.sqlite) or train with usage.ledger={shards}/usage.sqlite",
    )
    try:
        _print(usage_by(db, ShardReader(shards), "channel"), as_json, "usage per channel")
    finally:
        db.close()


@usage_app.command()
def documents(
    shards: Path = typer.Argument(..., help="token shards directory (DESIGN §3.3)"),
    ledger: Path = typer.Option(None, help="ledger file or run directory (default SHARDS/usage.sqlite)"),
    top: int = typer.Option(20, help="most used documents to show (0 = all)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Documents by how often they were consumed (epochs = tokens used / document tokens)."""
    from dataengine.pack.shards import ShardReader
    from dataengine.usage.counts import usage_by

    db = _open(
        ledger or shards,
        f"pass --ledger RUN (each run keeps RUN/usage.sqlite) or train with usage.ledger={shards}/usage.sqlite",
    )
    try:
        rows = usage_by(db, ShardReader(shards), "doc_id")
        _print(rows[:top] if top else rows, as_json, "usage per document")
    finally:
        db.close()
