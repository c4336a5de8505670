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
import pyarrow.parquet as pq

ROW_BITS = 32
ROW_MASK = (1 << ROW_BITS) - 1


@dataclass(frozen=True)
class InputFile:
    index: int
    path: str
    num_rows: int


def list_inputs(inputs: Sequence[str | Path]) -> list[InputFile]:
    """Parquet files under the given files/folders, sorted, with row counts from their footers."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths.extend(sorted(x for x in p.rglob("*.parquet") if x.is_file()))
        elif p.is_file():
            paths.append(p)
        else:
            raise FileNotFoundError(f"dedup input not found: {p}")
    if not paths:
        raise FileNotFoundError(f"no .parquet files under {', '.join(map(str, inputs))}")
    out = []
    for i, p in enumerate(paths):
        schema = pq.read_schema(p)
        for col in ("id", "text"):
            if col not in schema.names:
                raise ValueError(f"{p}: missing required column {col!r} (DESIGN §3.1 rows)")
        out.append(InputFile(i, str(p), pq.ParquetFile(p).metadata.num_rows))
    return out


def uids(file_index: int, num_rows: int) -> np.ndarray:
    return (np.int64(file_index) << ROW_BITS) | np.arange(num_rows, dtype=np.int64)


def file_of(uid: np.ndarray) -> np.ndarray:
    return np.asarray(uid, dtype=np.int64) >> ROW_BITS


def row_of(uid: np.ndarray) -> np.ndarray:
    return np.asarray(uid, dtype=np.int64) & ROW_MASK


def read_columns(path: str, columns: Sequence[str]) -> pa.Table:
    """The named columns of one input file; absent optional columns come back as nulls."""
    names = pq.read_schema(path).names
    present = [c for c in columns if c in names]
    table = pq.read_table(path, columns=present)
    for c in columns:
        if c not in names:
            table = table.append_column(
                c, pa.nulls(table.num_rows, pa.string() if c != "quality" else pa.float32())
            )
    return table.select(list(columns))
