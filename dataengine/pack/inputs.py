"""Reading documents for tokenizer training, the compression report and packing: the readers and the
id rule of ``dataengine run``.

Inputs are found by ``dataengine.io.paths.expand_inputs`` (files, folders, globs, URIs; sorted), cut
into the same work units (``plan_units``) and read by the same readers (``read_unit``): JSONL (plain,
.gz, .zst), Parquet, text, WARC/ARC, with the same ``input`` settings (``text_field``, ``text_mode``, ...).
A record without an id gets the id ``dataengine run`` gives it: a hash of its source (``path@offset``,
``path#row N``). Phase-1 output keeps its own values: the readers carry ``lang``, ``category`` and
``source`` from the record (``input.carry_fields``), so a kept row is packed under its channel and
attributed to its original location.

A record ``dataengine run`` would reject while reading (``io:invalid_json``, ``io:missing_text``,
``io:empty``, ...) is skipped and counted by reason; the commands report the counts (the tokenizer's
meta, the shard manifest). Rows are read in batches, so memory is bounded by the batch, not the file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from dataengine.io.config import InputConfig
from dataengine.io.paths import expand_inputs as expand_paths
from dataengine.io.readers import read_unit
from dataengine.io.units import Unit, plan_units, set_aside_unknown

DOCUMENT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("lang", pa.string()),
        ("category", pa.string()),
        ("reject", pa.string()),
    ]
)
CARRIED_FIELDS = ("lang", "category", "source")


def reader_config() -> InputConfig:
    """The ``input`` default of the phase-3 commands: run's reader settings, carrying phase-1 columns."""
    return InputConfig(carry_fields=CARRIED_FIELDS)


def plan(inputs: Sequence[str | Path], config: InputConfig) -> list[Unit]:
    """The work units of ``inputs``, as ``dataengine run`` plans them; FileNotFoundError names a missing one."""
    if not inputs:
        raise ValueError("no inputs: give --input PATH (or inputs: in the config)")
    named = [str(p) for p in inputs]
    files, _ = set_aside_unknown(expand_paths(named), named, config)
    return plan_units(files, config)


def _string(value: object) -> str | None:
    return None if value is None else value if isinstance(value, str) else str(value)


def _table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    columns = {name: [_string(row.get(name)) for row in rows] for name in schema.names}
    return pa.Table.from_pydict(columns, schema=schema)


def unit_tables(
    unit: Unit, config: InputConfig, batch_size: int = 1024, schema: pa.Schema = DOCUMENT_SCHEMA
) -> Iterator[pa.Table]:
    """The rows of one unit as ``schema`` tables (string columns, ``reject`` among them) of at most
    ``batch_size`` rows; rejected rows are included, with ``reject`` set (see ``documents_only``)."""
    rows: list[dict] = []
    for row in read_unit(unit, config):
        rows.append(row)
        if len(rows) == batch_size:
            yield _table(rows, schema)
            rows = []
    if rows:
        yield _table(rows, schema)


def documents_only(table: pa.Table, rejected: Counter) -> pa.Table:
    """The table without its rejected rows, which are counted by reason into ``rejected``."""
    reject = table["reject"]
    if reject.null_count == len(reject):
        return table
    rejected.update(reject.drop_null().to_pylist())
    return table.filter(pc.is_null(reject))


def unit_documents(unit: Unit, config: InputConfig, rejected: Counter) -> Iterator[dict]:
    """The documents of one unit in input order (rejected records counted into ``rejected``)."""
    for table in unit_tables(unit, config):
        yield from documents_only(table, rejected).to_pylist()


def document_tables(
    inputs: Sequence[str | Path], config: InputConfig, rejected: Counter, batch_size: int = 1024
) -> Iterator[pa.Table]:
    """All documents of all inputs, unit by unit in plan order, as tables without rejected rows."""
    for unit in plan(inputs, config):
        for table in unit_tables(unit, config, batch_size):
            yield documents_only(table, rejected)
