"""Inputs of phase 2 in every format ``dataengine run`` reads.

Dedup fetches rows by (file, row) in several passes, so it works on Parquet files with string ``id``
and ``text`` columns. Inputs that already are such files (phase-1 output such as OUT/kept, the common
case, local or behind a pyarrow.fs URI such as s3://) are used as they are: no copy (see ``used_as_is``).
Every other input (JSONL plain/.gz/.zst with or without ids, text, WARC/ARC, Parquet without an id
column) is read once before dedup starts, by the planner and readers of ``dataengine run`` with the
same ``input`` settings and id rule (``dataengine.pack.inputs``), and written in batches (bounded
memory), unit by unit in plan order, to ``OUT/_staged/part-<position>-<unit id>.parquet`` (atomically;
one file per unit, possibly empty; OUT may be a URI). The staged files are removed when the run
completes, since their rows then live in OUT/kept and OUT/rejected; a failed run leaves them and the
next run stages again. Staging runs on the driver, one unit after the other.

Records ``dataengine run`` would reject while reading (``io:invalid_json``, ``io:empty``, ...) are not
lost: they go to ``OUT/rejected/io-<position>-<unit id>.parquet`` with their ``reject`` reason and
``source`` and are counted, so run.json's ``input`` = ``kept`` + ``rejected`` still holds exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from dataengine.dedup.files import read_schema
from dataengine.dedup.writer import join, remove
from dataengine.io.config import InputConfig
from dataengine.io.paths import expand_inputs
from dataengine.io.units import Unit, infer_format, plan_units
from dataengine.io.writers import AtomicParquetWriter, resolve
from dataengine.pack.inputs import DOCUMENT_SCHEMA, documents_only, unit_tables

# What the readers give, as strings: the document columns plus url and title (for exact.url).
_URL, _TITLE = pa.field("url", pa.string()), pa.field("title", pa.string())
READ_SCHEMA = DOCUMENT_SCHEMA.insert(3, _URL).insert(4, _TITLE)
STAGED_SCHEMA = READ_SCHEMA.remove(READ_SCHEMA.get_field_index("reject"))
REJECTED_SCHEMA = READ_SCHEMA.append(pa.field("duplicate_of", pa.string()))
_REQUIRED = ("id", "text")


class InputError(ValueError):
    """An input that cannot be planned (e.g. a file whose format cannot be told); raised before any work."""


@dataclass(frozen=True)
class Source:
    """One input file: used as it is (no units) or staged unit by unit."""

    path: str
    units: tuple[Unit, ...] = ()


@dataclass
class Staged:
    """Dedup's input files in plan order, and what reading the staged ones rejected."""

    paths: list[str] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)
    rejected_files: list[str] = field(default_factory=list)  # names written in the rejected folder
    units: int = 0
    documents: int = 0


def used_as_is(path: str, reader: InputConfig) -> bool:
    """A Parquet file (local or a pyarrow.fs URI) of document rows (string ``id`` and ``text`` columns) that does not also hold
    another field ``input`` names for the text, id or HTML (``input.text_field=content`` and a
    ``content`` column: staged, read as told; phase-1 files in the same call stay as they are)."""
    fmt = infer_format(path) if reader.format == "auto" else reader.format
    if fmt != "parquet":
        return False
    try:
        schema = read_schema(path)
    except (pa.ArrowException, OSError):
        return False  # staging reports it as io:parquet_error
    told = {reader.text_field, reader.id_field, reader.html_field} - {*_REQUIRED, None}
    if told & set(schema.names):
        return False
    return all(
        name in schema.names
        and (pa.types.is_string(schema.field(name).type) or pa.types.is_large_string(schema.field(name).type))
        for name in _REQUIRED
    )


def plan_inputs(inputs: Sequence[str | Path], reader: InputConfig) -> list[Source]:
    """Every input file, sorted, with the units of those to stage; raises before any document is read:
    FileNotFoundError names a missing input, InputError a file whose format cannot be told."""
    if not inputs:
        raise InputError("no dedup inputs: give --input PATH (or inputs: in the config)")
    sources = []
    try:
        for path in expand_inputs([str(p) for p in inputs]):
            units = () if used_as_is(path, reader) else tuple(plan_units([path], reader))
            sources.append(Source(path, units))
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    return sources


def stage(
    sources: Sequence[Source],
    staged_dir: str,
    rejected_dir: str,
    reader: InputConfig,
    batch_size: int = 1024,
) -> Staged:
    """Write every unit of ``sources`` to ``staged_dir`` (documents) and ``rejected_dir`` (io:* rows);
    both are local paths or pyarrow.fs URIs."""
    remove(staged_dir)
    staged = Staged()
    position = 0
    for source in sources:
        if not source.units:
            staged.paths.append(source.path)
            position += 1
            continue
        for unit in source.units:
            name = f"{position:05d}-{unit.unit_id}.parquet"
            path = join(staged_dir, f"part-{name}")
            before = staged.rejected.total()
            staged.documents += _stage_unit(
                unit, reader, path, join(rejected_dir, f"io-{name}"), staged.rejected, batch_size
            )
            if staged.rejected.total() > before:
                staged.rejected_files.append(f"io-{name}")
            staged.paths.append(path)
            staged.units += 1
            position += 1
    return staged


def _stage_unit(
    unit: Unit, reader: InputConfig, path: str, rejected_path: str, rejected: Counter, batch_size: int
) -> int:
    """One unit's documents into ``path`` (always written, maybe empty), its rejected rows into
    ``rejected_path`` (only when there are some); returns the number of documents."""
    docs = AtomicParquetWriter(*resolve(path), STAGED_SCHEMA)
    rejects: AtomicParquetWriter | None = None
    try:
        for table in unit_tables(unit, reader, batch_size, READ_SCHEMA):
            bad = table.filter(pc.is_valid(table["reject"]))
            if bad.num_rows:
                if rejects is None:
                    rejects = AtomicParquetWriter(*resolve(rejected_path), REJECTED_SCHEMA)
                rejects.write(bad.append_column("duplicate_of", pa.nulls(bad.num_rows, pa.string())))
            docs.write(documents_only(table, rejected).drop_columns(["reject"]))
    except BaseException:
        docs.abort()
        if rejects is not None:
            rejects.abort()
        raise
    docs.close()
    if rejects is not None:
        rejects.close()
    return docs.rows
