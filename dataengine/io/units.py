"""Work units: the pieces of input that one task reads, planned before any document is read.

A unit is a whole file, a line-aligned byte range of a large uncompressed JSONL/text file, a range of
whole records of a large uncompressed WARC file, or a run of row groups of a large Parquet file.
Compressed files are one unit each: a gzip or zstd stream cannot be entered in the middle. Its `unit_id` hashes (path, start, end), so output
file names derived from it are the same on every run: a resumed run can tell which units are done.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from dataengine.io.config import InputConfig
from dataengine.io.paths import file_size, open_random_access

log = logging.getLogger(__name__)

_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".txt": "text",
    ".md": "text",
    ".warc": "warc",
    ".arc": "arc",
}
# Which compression suffixes each format accepts (WARC: gzip or zstd, detected by fastwarc).
_COMPRESSIONS = {
    "jsonl": (".gz", ".zst", ".zstd"),
    "text": (".gz", ".zst", ".zstd"),
    "warc": (".gz", ".zst"),
    "arc": (".gz",),
    "parquet": (),
}


def compression_of(path: str) -> str | None:
    """'.gz', '.zst', '.zstd' or None, from the file name."""
    for suffix in (".gz", ".zst", ".zstd"):
        if path.lower().endswith(suffix):
            return suffix
    return None


def infer_format(path: str) -> str:
    """The format named by a file's extension (compression suffix ignored); ValueError if none fits."""
    name = path.lower()
    compression = compression_of(name)
    if compression:
        name = name[: -len(compression)]
    fmt = _EXTENSIONS.get("." + name.rsplit(".", 1)[-1]) if "." in name.rsplit("/", 1)[-1] else None
    if fmt is None or (compression and compression not in _COMPRESSIONS[fmt]):
        known = ", ".join(sorted(_EXTENSIONS))
        raise ValueError(
            f"cannot tell the format of {path!r} from its extension (known: {known}, "
            f"optionally .gz/.zst); set input.format to one of jsonl, parquet, text, warc, arc"
        )
    return fmt


def set_aside_unknown(
    files: Sequence[str], named: Sequence[str], cfg: InputConfig
) -> tuple[list[str], list[str]]:
    """(files to read, files set aside). With input.format auto, a file found in a folder or by a glob
    whose extension names no format (a LICENSE, a data.csv) is set aside with a warning, so a stray file does not stop
    a run; a file named by itself must have a known format (infer_format says why not)."""
    if cfg.format != "auto":
        return list(files), []
    explicit = {p if "://" in p else os.path.abspath(p) for p in named}
    keep, aside = [], []
    for path in files:
        try:
            infer_format(path)
        except ValueError:
            if path in explicit:
                raise
            log.warning(
                "input %s: no known format from its extension; skipped (set input.format to read it)", path
            )
            aside.append(path)
            continue
        keep.append(path)
    return keep, aside


@dataclass(frozen=True)
class Unit:
    """One piece of work: `path` read as `format` from `start` to `end`.

    For line formats and WARC, start/end are byte offsets (end None = to the end of the file) and every
    boundary falls at the start of a line (of a paragraph in paragraphs mode, of a record); for Parquet they
    are row-group indices, end exclusive.
    """

    path: str
    format: str
    start: int = 0
    end: int | None = None
    unit_id: str = ""  # derived; accepted back so that Unit(**asdict(unit)) == unit

    def __post_init__(self) -> None:
        key = f"{self.path}\x00{self.start}\x00{self.end}".encode()
        derived = hashlib.blake2b(key, digest_size=8).hexdigest()
        if self.unit_id and self.unit_id != derived:
            raise ValueError(
                f"unit_id {self.unit_id!r} does not belong to {self.path!r} [{self.start}, {self.end})"
            )
        object.__setattr__(self, "unit_id", derived)


def _skip_line(f: io.BufferedReader) -> None:
    """Advance past the next newline (reading in bounded pieces: a line may be huge)."""
    while True:
        piece = f.readline(1 << 20)
        if not piece or piece.endswith(b"\n"):
            return


def _skip_to_blank_line(f: io.BufferedReader) -> None:
    """Advance past the next line that is empty or whitespace only."""
    while True:
        piece = f.readline(1 << 20)
        if not piece:
            return
        if not piece.strip():
            return
        if not piece.endswith(b"\n"):
            _skip_line(f)


def _byte_ranges(path: str, size: int, step: int, paragraphs: bool) -> list[tuple[int, int | None]]:
    """Cut [0, size) about every `step` bytes, each cut moved forward to the next line (paragraph) start."""
    cuts = [0]
    with open_random_access(path) as raw:
        f = io.BufferedReader(raw, 1 << 16)
        while cuts[-1] + step < size:
            f.seek(cuts[-1] + step - 1)
            _skip_line(f)  # the byte before the nominal cut may itself be the newline
            if paragraphs:
                _skip_to_blank_line(f)
            cut = f.tell()
            if cut >= size:
                break
            cuts.append(cut)
    ends: list[int | None] = [*cuts[1:], None]
    return list(zip(cuts, ends, strict=True))


_WARC_VERSION = re.compile(rb"^WARC/\d+\.\d+\r?\n$")


def _warc_record_ranges(path: str, size: int, step: int) -> list[tuple[int, int | None]]:
    """Cut an uncompressed WARC about every `step` bytes, at record starts found by walking the records'
    Content-Length (not by searching for "WARC/1.0", which an archived page may contain). Where a header
    does not parse, the rest of the file stays in the last unit, whose reader reports what is wrong."""
    cuts = [0]
    with open_random_access(path) as raw:
        f = io.BufferedReader(raw, 1 << 16)
        pos = 0
        while pos < size:
            if pos - cuts[-1] >= step:
                cuts.append(pos)
            f.seek(pos)
            if not _WARC_VERSION.match(f.readline(64)):
                break
            length = None
            while (line := f.readline(1 << 16)).strip():
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length" and value.strip().isdigit():
                    length = int(value)
            if length is None:
                break
            f.seek(f.tell() + length)
            while (line := f.readline(1 << 16)) and not line.strip():
                pass  # the blank lines that end a record
            if not line:
                break
            pos = f.tell() - len(line)
    ends: list[int | None] = [*cuts[1:], None]
    return list(zip(cuts, ends, strict=True))


def _row_group_ranges(path: str, step: int) -> list[tuple[int, int | None]]:
    """Runs of consecutive row groups of about `step` uncompressed bytes each."""
    try:
        with open_random_access(path) as raw:
            meta = pq.ParquetFile(raw).metadata
    except (pa.ArrowException, OSError):
        return [(0, None)]  # unreadable: one unit, whose reader reports io:parquet_error
    ranges, start, acc = [], 0, 0
    for i in range(meta.num_row_groups):
        acc += meta.row_group(i).total_byte_size
        if acc >= step and i + 1 < meta.num_row_groups:
            ranges.append((start, i + 1))
            start, acc = i + 1, 0
    ranges.append((start, None))
    return ranges


MIN_AUTO_UNIT_BYTES = 1 << 20
MAX_AUTO_UNIT_BYTES = 64 << 20
AUTO_UNITS = 64  # `unit_bytes: auto` aims at this many units over all the inputs


def unit_bytes_for(total_bytes: int, cfg: InputConfig) -> int:
    """The split size: `input.unit_bytes`, or with `auto` the inputs' total size over AUTO_UNITS, clamped,
    so that one 100 MB file becomes ~64 units (every worker gets some, progress moves) and a corpus of
    large files keeps 64 MiB units. A function of the file sizes alone: re-runs plan the same units."""
    if cfg.unit_bytes != "auto":
        return cfg.unit_bytes
    return min(MAX_AUTO_UNIT_BYTES, max(MIN_AUTO_UNIT_BYTES, total_bytes // AUTO_UNITS))


def plan_units(files: Sequence[str], cfg: InputConfig, sizes: Mapping[str, int] | None = None) -> list[Unit]:
    """Units covering every file exactly once, in file order; large splittable files get several.
    `sizes` (bytes per path) saves a look-up per file when the caller has them."""
    sizes = dict(sizes) if sizes is not None else {path: file_size(path) for path in files}
    step = unit_bytes_for(sum(sizes.values()), cfg)
    units: list[Unit] = []
    for path in files:
        fmt = infer_format(path) if cfg.format == "auto" else cfg.format
        splittable_lines = fmt == "jsonl" or (fmt == "text" and cfg.text_mode != "file")
        ranges: list[tuple[int, int | None]] = [(0, None)]
        size = sizes[path]
        if compression_of(path) is None and size > step:
            if fmt == "parquet":
                ranges = _row_group_ranges(path, step)
            elif fmt == "warc":
                ranges = _warc_record_ranges(path, size, step)
            elif splittable_lines:
                ranges = _byte_ranges(path, size, step, cfg.text_mode == "paragraphs")
        units += [Unit(path, fmt, start, end) for start, end in ranges]
    return units
