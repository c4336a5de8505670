"""Token shards on disk (DESIGN.md §3.3): the one format the engine writes and the trainer reads.

Layout::

    SHARDS/manifest.json
    SHARDS/{split}/shard-NNNNN.npy           uint16|uint32 [n_seqs, seq_len + 1]
    SHARDS/{split}/shard-NNNNN.docs.parquet  one row per document span

Span convention (the trainer's per-channel loss depends on it):

* ``seq`` is the row inside the shard; ``start``/``end`` are positions within that row of
  length ``seq_len + 1``, ``end`` exclusive.
* The EOS that ends a document belongs to that document's span.
* A document split across rows (or shards) has one span per piece, in order.
* Positions covered by no span are padding (the pad id); their channel id is ``-1`` and the
  trainer ignores them in the loss.

A sequence id is ``(shard, row)``. Files are written under a temporary name and renamed when
complete, and the manifest is written last, so a reader never sees half a shard.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dataengine.io.paths import (
    is_file,
    is_uri,
    join,
    open_random_access,
    read_bytes,
    resolve,
    write_bytes_atomic,
)

FORMAT_NAME = "dataengine.token_shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DTYPES = {"uint16": np.uint16, "uint32": np.uint32}
SHARD_TARGET_BYTES = 64 << 20

SPAN_SCHEMA = pa.schema(
    [
        ("seq", pa.int32()),
        ("start", pa.int32()),
        ("end", pa.int32()),
        ("doc_id", pa.string()),
        ("channel", pa.string()),
        ("lang", pa.string()),
        ("source", pa.string()),
    ]
)
SPAN_KEYS = ("start", "end", "doc_id", "channel", "lang", "source")


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def dtype_for_vocab(vocab_size: int) -> str:
    """Smallest §3.3 dtype that holds every token id."""
    return "uint16" if vocab_size <= np.iinfo(np.uint16).max + 1 else "uint32"


def _root(root: str | Path) -> Path | str:
    """A local root as a Path, a URI (s3://...) as it is: ``Path`` would mangle ``s3://`` to ``s3:/``."""
    return os.fspath(root) if is_uri(root) else Path(root)


def read_manifest(root: str | Path) -> dict[str, Any]:
    path = join(root, MANIFEST)
    if not is_file(path):
        raise FileNotFoundError(f"{path}: no shard manifest (is {root} a `dataengine pack` output?)")
    manifest = json.loads(read_bytes(path))
    if manifest.get("format") != FORMAT_NAME or manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format {manifest.get('format')!r} version {manifest.get('format_version')!r}, "
            f"expected {FORMAT_NAME!r} version {FORMAT_VERSION}"
        )
    return manifest


class ShardWriter:
    """Appends packed rows of one split and records them in the manifest on ``close()``.

    Rows are buffered until ``rows_per_shard`` and then written as one ``.npy`` + span table.
    ``close()`` merges this split's counts into ``manifest.json`` (other splits already there
    are kept, so a train writer and a heldout writer can share one root).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        seq_len: int,
        dtype: str,
        *,
        vocab_size: int,
        pad_id: int,
        eos_id: int,
        tokenizer_sha256: str,
        rows_per_shard: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r}: expected one of {sorted(DTYPES)}")
        if vocab_size > np.iinfo(DTYPES[dtype]).max + 1:
            raise ValueError(f"vocab_size {vocab_size} does not fit dtype {dtype}")
        if seq_len < 1:
            raise ValueError(f"seq_len {seq_len}: must be >= 1")
        self.root = _root(root)
        self.split = split
        self.seq_len = seq_len
        self.dtype = dtype
        self.vocab_size = vocab_size
        self.pad_id = pad_id
        self.eos_id = eos_id
        self.tokenizer_sha256 = tokenizer_sha256
        self.extra = dict(extra or {})
        row_bytes = (seq_len + 1) * np.dtype(DTYPES[dtype]).itemsize
        self.rows_per_shard = rows_per_shard or max(1, SHARD_TARGET_BYTES // row_bytes)
        self.dir = join(self.root, split)
        fs, inner = resolve(self.dir)
        fs.create_dir(inner, recursive=True)
        for stale in fs.get_file_info(pafs.FileSelector(inner, allow_not_found=True)):
            if os.path.basename(stale.path).startswith("shard-") and stale.type == pafs.FileType.File:
                fs.delete_file(stale.path)  # a rerun must not leave shards of a longer previous run behind
        self._rows: list[np.ndarray] = []
        self._spans: list[dict[str, Any]] = []
        self._shard_sequences: list[int] = []
        self._documents = 0
        self._last_doc_id: str | None = None
        self._channels: set[str] = set()
        self._tokens = 0
        self._closed = False

    def write_row(self, tokens: np.ndarray | Sequence[int], spans: Sequence[Mapping[str, Any]]) -> None:
        """Add one row of ``seq_len + 1`` token ids with its spans (keys: start, end, doc_id,
        channel, lang, source; sorted, non-overlapping)."""
        if self._closed:
            raise RuntimeError(f"ShardWriter({self.dir}) is closed")
        row = np.asarray(tokens)
        if row.shape != (self.seq_len + 1,):
            raise ValueError(f"row shape {row.shape}, expected ({self.seq_len + 1},)")
        if row.size and (row.min() < 0 or row.max() >= self.vocab_size):
            raise ValueError(f"token id out of range [0, {self.vocab_size}) in row")
        seq = len(self._rows)
        previous_end = 0
        for span in spans:
            missing = [k for k in SPAN_KEYS if k not in span]
            if missing:
                raise ValueError(f"span {dict(span)} lacks keys {missing}")
            start, end = int(span["start"]), int(span["end"])
            if not previous_end <= start < end <= self.seq_len + 1:
                raise ValueError(f"span [{start}, {end}) overlaps, is empty or leaves the row")
            previous_end = end
            self._tokens += end - start
            if span["doc_id"] != self._last_doc_id:  # pieces of one document are contiguous
                self._documents += 1
                self._last_doc_id = span["doc_id"]
            self._channels.add(str(span["channel"]))
            self._spans.append({"seq": seq, **{k: span[k] for k in SPAN_KEYS}})
        self._rows.append(row.astype(DTYPES[self.dtype], copy=False))
        if len(self._rows) >= self.rows_per_shard:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        # Each file is written whole or not at all (write_bytes_atomic), locally or on object storage.
        base = join(self.dir, shard_name(len(self._shard_sequences)))
        table = pa.Table.from_pylist(self._spans, schema=SPAN_SCHEMA)
        spans = pa.BufferOutputStream()
        pq.write_table(table, spans, compression="zstd")
        write_bytes_atomic(base + ".docs.parquet", spans.getvalue())
        array = io.BytesIO()
        np.save(array, np.stack(self._rows))
        write_bytes_atomic(base + ".npy", array.getbuffer())
        self._shard_sequences.append(len(self._rows))
        self._rows, self._spans = [], []

    def close(self, write_manifest: bool = True) -> dict[str, Any]:
        """Flush the last shard and (unless told not to) merge this split into the manifest;
        returns the split's counts. ``pack`` closes all splits first and writes the manifest once."""
        self._flush()
        self._closed = True
        counts = {
            "documents": self._documents,
            "tokens": self._tokens,
            "sequences": sum(self._shard_sequences),
            "shard_sequences": self._shard_sequences,
            "channels": sorted(self._channels),
        }
        if write_manifest:
            merge_manifest(self.root, self.manifest_fields(), {self.split: counts}, self.extra)
        return counts

    def manifest_fields(self) -> dict[str, Any]:
        """The fields every split of one shard set must agree on."""
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "tokenizer_sha256": self.tokenizer_sha256,
            "seq_len": self.seq_len,
            "dtype": self.dtype,
            "vocab_size": self.vocab_size,
            "pad_id": self.pad_id,
            "eos_id": self.eos_id,
        }

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


def merge_manifest(
    root: str | Path,
    fields: Mapping[str, Any],
    splits: Mapping[str, dict[str, Any]],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``manifest.json`` with ``splits`` added to the ones already there (atomically);
    ``channels`` is the sorted union of the splits' channels."""
    path = join(root, MANIFEST)
    manifest: dict[str, Any] = {**fields, "channels": [], "splits": {}}
    if is_file(path):
        old = json.loads(read_bytes(path))
        clash = {k: (old.get(k), v) for k, v in fields.items() if old.get(k) != v}
        if clash:
            raise ValueError(f"{path}: splits {sorted(splits)} disagree with the manifest on {clash}")
        manifest.update(old)
    manifest.update(extra or {})
    manifest["splits"] = {**manifest.get("splits", {}), **splits}
    manifest["channels"] = sorted(set().union(*(s.get("channels", []) for s in manifest["splits"].values())))
    write_bytes_atomic(
        path, (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    )
    return manifest


class ShardReader:
    """Memory-mapped view of one split: sequences by ``(shard, row)``, spans and channel per token.

    Shards on object storage (``s3://...``) are read in place, read-only: a sequence is one ranged read
    of its row (a random draw over many shards would otherwise fetch whole 64 MB shards per sequence),
    a span table one whole read, cached like local ones.
    """

    def __init__(self, root: str | Path, split: str = "train") -> None:
        self.root = _root(root)
        self.remote = is_uri(self.root)
        self.split = split
        self.manifest: dict[str, Any] = read_manifest(root)
        if split not in self.manifest["splits"]:
            raise KeyError(
                f"{join(self.root, MANIFEST)}: no split {split!r} (have {sorted(self.manifest['splits'])})"
            )
        self.seq_len: int = int(self.manifest["seq_len"])
        self.channels: list[str] = list(self.manifest["channels"])
        self.vocab_size: int = int(self.manifest["vocab_size"])
        self.pad_id: int = int(self.manifest["pad_id"])
        self.eos_id: int = int(self.manifest["eos_id"])
        self.counts: dict[str, Any] = self.manifest["splits"][split]
        self.shard_sequences: list[int] = [int(n) for n in self.counts["shard_sequences"]]
        self._channel_index = {name: i for i, name in enumerate(self.channels)}
        self._arrays: dict[int, np.ndarray] = {}
        self._rows: dict[int, tuple[pa.NativeFile, int, np.dtype]] = {}  # remote: file, data offset, dtype
        self._span_cache = lru_cache(maxsize=8)(self._load_spans)

    def __len__(self) -> int:
        return sum(self.shard_sequences)

    @property
    def num_shards(self) -> int:
        return len(self.shard_sequences)

    def sequence_ids(self) -> list[tuple[int, int]]:
        return [(s, r) for s, n in enumerate(self.shard_sequences) for r in range(n)]

    def shard_path(self, shard: int) -> Path | str:
        return join(self.root, self.split, f"{shard_name(shard)}.npy")

    def _spans_path(self, shard: int) -> Path | str:
        return join(self.root, self.split, f"{shard_name(shard)}.docs.parquet")

    def _check_shape(self, shard: int, shape: tuple[int, ...]) -> None:
        if shape != (self.shard_sequences[shard], self.seq_len + 1):
            raise ValueError(
                f"{self.shard_path(shard)}: shape {shape}, manifest says "
                f"({self.shard_sequences[shard]}, {self.seq_len + 1})"
            )

    def _check_shard(self, shard: int) -> None:
        if not 0 <= shard < self.num_shards:
            raise IndexError(
                f"shard {shard} out of range [0, {self.num_shards}) in {join(self.root, self.split)}"
            )

    def shard_array(self, shard: int) -> np.ndarray:
        """The whole shard ``[n_seqs, seq_len + 1]``, memory-mapped (opened once); read whole when
        remote, and then not kept (``sequence`` reads single rows)."""
        if shard in self._arrays:
            return self._arrays[shard]
        self._check_shard(shard)
        if self.remote:
            array = np.load(io.BytesIO(read_bytes(self.shard_path(shard))))
            self._check_shape(shard, array.shape)
            array.flags.writeable = False
            return array
        array = np.load(self.shard_path(shard), mmap_mode="r")
        self._check_shape(shard, array.shape)
        self._arrays[shard] = array
        return array

    def _remote_rows(self, shard: int) -> tuple[pa.NativeFile, int, np.dtype]:
        """The open remote shard, where its rows start and their dtype (the .npy header, read once)."""
        if shard not in self._rows:
            self._check_shard(shard)
            path = self.shard_path(shard)
            f = open_random_access(path)
            version = np.lib.format.read_magic(f)
            headers = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }
            if version not in headers:
                raise ValueError(f"{path}: .npy format version {version}, expected 1.0 or 2.0")
            shape, fortran, dtype = headers[version](f)
            if fortran:
                raise ValueError(f"{path}: Fortran-ordered array, expected C order")
            self._check_shape(shard, shape)
            self._rows[shard] = (f, f.tell(), dtype)
        return self._rows[shard]

    def _check(self, shard: int, row: int) -> None:
        if self.remote:
            self._remote_rows(shard)
        else:
            self.shard_array(shard)
        if not 0 <= row < self.shard_sequences[shard]:
            raise IndexError(f"row {row} out of range [0, {self.shard_sequences[shard]}) in shard {shard}")

    def sequence(self, shard: int, row: int) -> np.ndarray:
        """Token ids ``[seq_len + 1]`` (a read-only memory-mapped view, or one ranged read if remote)."""
        self._check(shard, row)
        if not self.remote:
            return self.shard_array(shard)[row]
        f, offset, dtype = self._remote_rows(shard)
        width = (self.seq_len + 1) * dtype.itemsize
        return np.frombuffer(f.read_at(width, offset + row * width), dtype=dtype)

    def _read_spans(self, shard: int) -> pa.Table:
        path = self._spans_path(shard)
        fs, inner = resolve(path)
        return pq.read_table(inner, filesystem=fs)

    def _load_spans(self, shard: int) -> dict[int, list[dict[str, Any]]]:
        by_seq: dict[int, list[dict[str, Any]]] = {}
        for span in self._read_spans(shard).to_pylist():
            by_seq.setdefault(span["seq"], []).append(span)
        return by_seq

    def spans(self, shard: int, row: int) -> list[dict[str, Any]]:
        """Spans of one row, in position order: seq, start, end, doc_id, channel, lang, source."""
        self._check(shard, row)
        return [dict(s) for s in self._span_cache(shard).get(row, [])]

    def shard_spans(self, shard: int) -> pa.Table:
        """The whole span table of a shard (for conservation checks and per-document scans)."""
        return self._read_spans(shard)

    def channel_ids(self, shard: int, row: int) -> np.ndarray:
        """int16 ``[seq_len + 1]``: index into ``channels`` per token, ``-1`` for padding."""
        self._check(shard, row)
        ids = np.full(self.seq_len + 1, -1, dtype=np.int16)
        for span in self._span_cache(shard).get(row, []):
            ids[span["start"] : span["end"]] = self._channel_index[span["channel"]]
        return ids
