"""Reading kept documents (§3.1 rows) for tokenizer training and packing.

One reader for Parquet and JSONL (plain, .gz, .zst) so that training, the compression report
and packing see the same documents with the same ids, in the same order. Files are read in
batches, so memory stays bounded by the batch size, not the file size.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

DOCUMENT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("lang", pa.string()),
        ("category", pa.string()),
    ]
)
PARQUET_SUFFIXES = (".parquet",)
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".json.gz", ".json.zst")


def _is_input(path: Path) -> bool:
    return path.name.endswith(PARQUET_SUFFIXES + JSONL_SUFFIXES)


def expand_inputs(paths: Sequence[str | Path]) -> list[Path]:
    """Files named directly, plus the Parquet/JSONL files under named folders (sorted, recursive)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _is_input(p))
            if not found:
                raise FileNotFoundError(f"{path}: folder holds no .parquet or .jsonl[.gz|.zst] files")
            files.extend(found)
        elif path.is_file():
            if not _is_input(path):
                raise ValueError(f"{path}: not a .parquet or .jsonl[.gz|.zst] file")
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return files


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    if path.name.endswith(".zst"):
        import zstandard

        return io.TextIOWrapper(
            zstandard.ZstdDecompressor().stream_reader(open(path, "rb")), encoding="utf-8"
        )
    return open(path, encoding="utf-8")


def _normalize(rows: dict[str, list], path: Path, first_record: int) -> pa.Table:
    """Check the required keys and give every batch the same columns (missing optional = null)."""
    n = len(rows.get("text", rows.get("id", [])))
    for key in ("id", "text"):
        values = rows.get(key)
        if values is None:
            raise ValueError(f"{path}: records lack the required key {key!r}")
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise ValueError(
                    f"{path} record {first_record + i}: {key!r} is {type(value).__name__}, expected str"
                )
    source = rows.get("source") or [f"{path}:{first_record + i}" for i in range(n)]
    columns = {
        "id": rows["id"],
        "text": rows["text"],
        "source": source,
        "lang": rows.get("lang") or [None] * n,
        "category": rows.get("category") or [None] * n,
    }
    return pa.Table.from_pydict(columns, schema=DOCUMENT_SCHEMA)


def read_batches(path: str | Path, batch_size: int = 1024) -> Iterator[pa.Table]:
    """Documents of one file as tables with the DOCUMENT_SCHEMA columns."""
    path = Path(path)
    if path.name.endswith(PARQUET_SUFFIXES):
        parquet = pq.ParquetFile(path)
        wanted = [c for c in DOCUMENT_SCHEMA.names if c in parquet.schema_arrow.names]
        first = 0
        for batch in parquet.iter_batches(batch_size=batch_size, columns=wanted):
            yield _normalize(batch.to_pydict(), path, first)
            first += batch.num_rows
        return
    keys = DOCUMENT_SCHEMA.names
    rows: dict[str, list] = {k: [] for k in keys}
    first = 0
    with _open_text(path) as f:
        for line_no, line in enumerate(f):
            if not line.strip():
                raise ValueError(f"{path} line {line_no + 1}: empty line")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} line {line_no + 1}: invalid JSON ({err})") from err
            for k in keys:
                rows[k].append(record.get(k))
            if len(rows["id"]) == batch_size:
                yield _normalize(_drop_all_null(rows), path, first)
                first += batch_size
                rows = {k: [] for k in keys}
    if rows["id"]:
        yield _normalize(_drop_all_null(rows), path, first)


def _drop_all_null(rows: dict[str, list]) -> dict[str, list]:
    return {k: v for k, v in rows.items() if any(x is not None for x in v)}


def iter_documents(paths: Sequence[str | Path], batch_size: int = 1024) -> Iterator[dict]:
    """All documents of all inputs, file by file, in input order."""
    for path in expand_inputs(paths):
        for table in read_batches(path, batch_size):
            yield from table.to_pylist()


def document_channel(category: str | None, lang: str | None) -> str:
    """The channel a document is trained and evaluated under: its category, else its language."""
    return category or lang or "unknown"
