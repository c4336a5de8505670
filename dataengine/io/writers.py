"""Atomic Parquet and JSON writers on local paths or pyarrow.fs URIs.

Files are written under a temporary name and renamed when complete, so a crashed run
leaves either a whole file or none, and a re-run overwrites the same names.
"""

from __future__ import annotations

import json
import posixpath

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dataengine.io.paths import resolve

__all__ = ["AtomicParquetWriter", "exists", "read_json", "resolve", "write_json_atomic"]


def _tmp_name(path: str) -> str:
    head, tail = posixpath.split(path)
    return posixpath.join(head, f".{tail}.tmp")


class AtomicParquetWriter:
    """Streams record batches into one Parquet file that appears only on `close`."""

    def __init__(self, fs: pafs.FileSystem, path: str, schema: pa.Schema, compression: str = "zstd"):
        self.fs, self.path, self.tmp = fs, path, _tmp_name(path)
        fs.create_dir(posixpath.dirname(path), recursive=True)
        self._writer = pq.ParquetWriter(
            self.tmp, schema, filesystem=fs, compression=None if compression == "none" else compression
        )
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table)
            self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()
        self.fs.move(self.tmp, self.path)

    def abort(self) -> None:
        self._writer.close()
        self.fs.delete_file(self.tmp)


def write_json_atomic(fs: pafs.FileSystem, path: str, data: dict) -> None:
    fs.create_dir(posixpath.dirname(path), recursive=True)
    tmp = _tmp_name(path)
    with fs.open_output_stream(tmp, compression=None) as fh:
        fh.write(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False).encode())
    fs.move(tmp, path)


def read_json(fs: pafs.FileSystem, path: str) -> dict:
    with fs.open_input_stream(path, compression=None) as fh:
        return json.loads(fh.read().decode())


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound
