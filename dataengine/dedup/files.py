"""Input files of phase 2 and the row ids that point back into them.

Every input row gets `_uid = file_index << 32 | row_in_file`. The id is
unique, orders rows as they were read ("earliest"), and lets any Ray task
fetch a row's text straight from its file, so shuffles carry small decision
rows instead of whole documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dataengine.io.paths import expand_inputs, open_random_access, resolve

ROW_BITS = 32
ROW_MASK = (1 << ROW_BITS) - 1


@dataclass(frozen=True)
class InputFile:
    index: int
    path: str
    num_rows: int


def list_inputs(inputs: Sequence[str | Path]) -> list[InputFile]:
    """Parquet files named by the inputs (local paths or pyarrow.fs URIs), in the order given (a folder's
    files sorted), with row counts from their footers. Listing is `dataengine.io.paths.expand_inputs`."""
    paths: list[str] = []
    for item in inputs:
        fs, inner = resolve(str(item))
        named_file = fs.get_file_info(inner).type == pafs.FileType.File
        paths.extend(p for p in expand_inputs([str(item)]) if named_file or p.endswith(".parquet"))
    if not paths:
        raise FileNotFoundError(f"no .parquet files under {', '.join(map(str, inputs))}")
    out = []
    for i, p in enumerate(paths):
        try:
            meta = read_metadata(p)
        except (pa.ArrowException, OSError) as exc:
            raise ValueError(f"{p}: not a readable Parquet file ({exc})") from exc
        for col in ("id", "text"):
            if col not in meta.schema.to_arrow_schema().names:
                raise ValueError(f"{p}: missing required column {col!r} (DESIGN §3.1 rows)")
        out.append(InputFile(i, p, meta.num_rows))
    return out


def read_metadata(path: str) -> pq.FileMetaData:
    """The footer of a local or remote Parquet file."""
    with open_random_access(path) as fh:
        return pq.ParquetFile(fh).metadata


def read_schema(path: str) -> pa.Schema:
    return read_metadata(path).schema.to_arrow_schema()


def read_table(path: str, columns: Sequence[str] | None = None) -> pa.Table:
    """A local or remote Parquet file (or its named columns), read through pyarrow.fs."""
    fs, inner = resolve(path)
    return pq.read_table(inner, columns=None if columns is None else list(columns), filesystem=fs)


def uids(file_index: int, num_rows: int) -> np.ndarray:
    return (np.int64(file_index) << ROW_BITS) | np.arange(num_rows, dtype=np.int64)


def file_of(uid: np.ndarray) -> np.ndarray:
    return np.asarray(uid, dtype=np.int64) >> ROW_BITS


def row_of(uid: np.ndarray) -> np.ndarray:
    return np.asarray(uid, dtype=np.int64) & ROW_MASK


def read_columns(path: str, columns: Sequence[str]) -> pa.Table:
    """The named columns of one input file; absent optional columns come back as nulls."""
    names = read_schema(path).names
    present = [c for c in columns if c in names]
    table = read_table(path, present)
    for c in columns:
        if c not in names:
            table = table.append_column(
                c, pa.nulls(table.num_rows, pa.string() if c != "quality" else pa.float32())
            )
    return table.select(list(columns))
