"""Phase 2's writer: each input file split once into OUT/kept and OUT/rejected, on a local path or a URI.

Object stores have no directory rename (and `fs.move` there is copy + delete), so every output file is
written by its final name: `kept/part-NNNNN.parquet` and `rejected/part-NNNNN.parquet` per input file,
each atomic on its own (a temporary name renamed on a local disk; on a bucket an object appears only when
its upload completes). Files a previous run left beside them are deleted afterwards, and run.json is
written last: it is the commit marker, and it is removed when a run starts.
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dataengine.dedup import columns as C
from dataengine.dedup import files
from dataengine.io.writers import resolve


def join(base: str, *names: str) -> str:
    """`base`/`names` for a local path or a URI (URIs always use '/')."""
    return posixpath.join(str(base), *names)


def is_str(col: np.ndarray) -> np.ndarray:
    """Which entries hold a value. Internal string columns use "" for none: Ray turns an all-None block into
    floats, which then cannot merge with string blocks; a left join's misses still arrive as None or NaN."""
    return np.fromiter((isinstance(v, str) and v != "" for v in col), dtype=bool, count=len(col))


def str_col(col: np.ndarray) -> np.ndarray:
    return np.array([v if isinstance(v, str) else "" for v in col], dtype=object)


def write_parquet(uri: str, table: pa.Table) -> None:
    """One whole Parquet file at `uri` or none: a renamed temporary file locally, one upload on a bucket."""
    fs, path = resolve(uri)
    fs.create_dir(posixpath.dirname(path), recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        head, tail = posixpath.split(path)
        tmp = posixpath.join(head, f".{tail}.tmp")
        pq.write_table(table, tmp, filesystem=fs)
        fs.move(tmp, path)
    else:
        pq.write_table(table, path, filesystem=fs)


def write_json(uri: str, data: dict) -> None:
    """run.json and the like, whole or not at all (see write_parquet)."""
    fs, path = resolve(uri)
    fs.create_dir(posixpath.dirname(path), recursive=True)
    body = json.dumps(data, indent=2, sort_keys=False).encode()
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.tmp")
        with fs.open_output_stream(tmp) as fh:
            fh.write(body)
        fs.move(tmp, path)
    else:
        with fs.open_output_stream(path) as fh:
            fh.write(body)


def remove(uri: str) -> None:
    """Delete a file or a whole folder if it is there."""
    fs, path = resolve(uri)
    kind = fs.get_file_info(path).type
    if kind == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif kind == pafs.FileType.File:
        fs.delete_file(path)


def make_dir(uri: str) -> None:
    fs, path = resolve(uri)
    fs.create_dir(path, recursive=True)


def remove_stale(folder: str, keep: Iterable[str]) -> int:
    """Delete the files in `folder` (a previous run's parts) whose names are not in `keep`; returns how many."""
    fs, path = resolve(folder)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return 0
    keep = set(keep)
    stale = [
        i.path
        for i in fs.get_file_info(pafs.FileSelector(path, recursive=False))
        if i.type == pafs.FileType.File and posixpath.basename(i.path) not in keep
    ]
    for p in stale:
        fs.delete_file(p)
    return len(stale)


def part_name(f: int) -> str:
    return f"part-{f:05d}.parquet"


def write_file(
    group: dict[str, np.ndarray], paths: Sequence[str], out: str, semantic_on: bool
) -> dict[str, Any]:
    """Split one input file into OUT/kept and OUT/rejected by its decision rows; returns counts by reason."""
    f = int(group[C.FILE][0])
    order = np.argsort(group[C.UID])
    rows = files.row_of(group[C.UID][order])
    table = files.read_table(paths[f])
    if len(rows) != table.num_rows or not np.array_equal(rows, np.arange(table.num_rows)):
        raise RuntimeError(
            f"{paths[f]}: {table.num_rows} rows but {len(rows)} dedup decisions (conservation broken)"
        )
    d = {k: v[order] for k, v in group.items()}
    table = table.drop_columns([c for c in C.OUTPUT if c in table.column_names])
    cut = d[C.CUT_TEXT]
    was_cut = is_str(cut)
    if was_cut.any():
        texts = table.column("text").to_pylist()
        texts = [c if w else t for t, c, w in zip(texts, cut, was_cut, strict=True)]
        table = table.set_column(table.column_names.index("text"), "text", pa.array(texts, pa.string()))
        if (
            "minhash" in table.column_names
        ):  # a signature of the text before the cut would mislead a later run
            i = table.column_names.index("minhash")
            table = table.set_column(i, table.field(i), pc.if_else(pa.array(was_cut), None, table.column(i)))
    rejected = is_str(d[C.REJECT])
    kept = table.filter(pa.array(~rejected))
    kept = kept.append_column(C.DUP_CLUSTER, pa.array(d[C.DUP_CLUSTER][~rejected], pa.string()))
    kept = kept.append_column(C.DUP_CLUSTER_SIZE, pa.array(d[C.DUP_CLUSTER_SIZE][~rejected].astype(np.int32)))
    rej = table.filter(pa.array(rejected))
    rej = rej.append_column(C.REJECT, pa.array(d[C.REJECT][rejected], pa.string()))
    dup_of = d[C.DUPLICATE_OF][rejected]
    rej = rej.append_column(
        C.DUPLICATE_OF, pa.array(np.where(is_str(dup_of), dup_of, None).tolist(), pa.string())
    )
    if semantic_on:
        sem = d[C.SEMANTIC_CLUSTER].astype(np.float64)

        def cluster(mask: np.ndarray) -> pa.Array:
            return pa.array(sem[mask], pa.float64(), mask=np.isnan(sem[mask])).cast(pa.int32())

        kept = kept.append_column(C.SEMANTIC_CLUSTER, cluster(~rejected))
        rej = rej.append_column(C.SEMANTIC_CLUSTER, cluster(rejected))
    write_parquet(join(out, "kept", part_name(f)), kept)
    write_parquet(join(out, "rejected", part_name(f)), rej)
    counts = Counter(d[C.REJECT][rejected].tolist())
    return {"file": [f], "kept": [int(kept.num_rows)], "counts": [json.dumps(counts, sort_keys=True)]}
