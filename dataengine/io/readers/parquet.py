"""Parquet reader: documents from a text (or raw-HTML) column, row groups [start, end) of a unit.

A file that cannot be read, or breaks part-way, yields one `io:parquet_error` row at the first row
not read (with the error message as text), after every row read before it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from dataengine.io.config import InputConfig
from dataengine.io.paths import open_random_access
from dataengine.io.readers.records import record_row
from dataengine.io.readers.rows import rejected
from dataengine.io.units import Unit

_BATCH_ROWS = 256  # small batches: one Parquet row may hold a multi-megabyte document


def _rows_of_batch(batch: pa.RecordBatch, first_row: int, unit: Unit, cfg: InputConfig) -> Iterator[dict]:
    names = batch.schema.names
    columns = [batch.column(name).to_pylist() for name in names]
    for i in range(batch.num_rows):
        record = {name: column[i] for name, column in zip(names, columns, strict=True)}
        yield record_row(record, f"{unit.path}#row {first_row + i}", cfg)


def read_parquet(unit: Unit, cfg: InputConfig) -> Iterator[dict]:
    """Rows of the unit's row groups; the row numbers in `source` count from the start of the file."""
    next_row = 0
    try:
        with open_random_access(unit.path) as raw:
            pf = pq.ParquetFile(raw)
            meta = pf.metadata
            end = meta.num_row_groups if unit.end is None else unit.end
            groups = list(range(unit.start, end))
            next_row = sum(meta.row_group(g).num_rows for g in range(unit.start))
            wanted = {cfg.text_field, cfg.id_field, cfg.url_field, cfg.title_field, cfg.html_field}
            wanted.update(cfg.carry_fields)
            columns = [name for name in pf.schema_arrow.names if name in wanted]
            if not groups:
                return
            if not columns:  # nothing to read but the row count: every row lacks its text
                for g in groups:
                    for _ in range(meta.row_group(g).num_rows):
                        yield rejected(f"{unit.path}#row {next_row}", "io:missing_text")
                        next_row += 1
                return
            for batch in pf.iter_batches(batch_size=_BATCH_ROWS, row_groups=groups, columns=columns):
                yield from _rows_of_batch(batch, next_row, unit, cfg)
                next_row += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        yield rejected(f"{unit.path}#row {next_row}", "io:parquet_error", f"{type(exc).__name__}: {exc}")
