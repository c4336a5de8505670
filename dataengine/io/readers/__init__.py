"""Readers: one work unit in, document rows out (streaming, bounded memory).

Each row is a dict with the keys id, text, source, url, title, reject. `source` locates the record:
"path@OFFSET" (byte offset of the line or archive record in the decompressed stream) for JSONL, text
lines/paragraphs, WARC and ARC; "path#row N" for Parquet; the bare path for a whole-file text
document. `reject` is None for a document, else the reason below; a rejected row's text holds at
most the first 1000 characters of what could be read.

Bad input never raises and never vanishes; it becomes a rejected row:

io:invalid_json          a JSONL line that is not a JSON object
io:invalid_utf8          bytes that are not UTF-8 (or JSON text with lone surrogate escapes)
io:missing_text          the text field (or configured HTML field) is absent; Parquet: no such column
io:non_string_text       the text (or HTML) field is not a string (number, list, object, null)
io:empty                 the text is empty or whitespace only
io:too_large             a record over max_doc_bytes (only its first bytes are read and kept)
io:binary                binary data (a NUL byte or >10% control bytes in a record's first 8 KB); a
                         unit whose first 8 KB are >5% control bytes is one such row, not one per line
io:truncated_gzip        a .gz that ends early: rows before the break, then this row at its offset
io:truncated_zstd        the same for .zst
io:corrupt_gzip          a .gz with bad headers, CRC or deflate data
io:corrupt_zstd          a .zst that does not decompress
io:truncated_record      a WARC/ARC record cut short (or an archive ending mid-record)
io:corrupt_archive       a WARC/ARC file in which no record can be parsed (or an ARC header line
                         that does not parse; reading stops there)
io:parquet_error         a Parquet file that cannot be read, or breaks part-way (at the first row lost)
io:no_text_extracted     an HTML page where trafilatura finds no main text
io:extraction_failed     an HTML page on which trafilatura raised

Not documents, so no rows: blank lines (JSONL, text lines/paragraphs), and WARC/ARC records that
are not HTML responses or resources (requests, metadata, warcinfo, DNS, images, PDFs...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from dataengine.io.config import InputConfig
from dataengine.io.readers.jsonl import read_jsonl
from dataengine.io.readers.parquet import read_parquet
from dataengine.io.readers.text import read_text
from dataengine.io.readers.warc import read_arc, read_warc
from dataengine.io.units import Unit

READERS: dict[str, Callable[[Unit, InputConfig], Iterator[dict]]] = {
    "jsonl": read_jsonl,
    "parquet": read_parquet,
    "text": read_text,
    "warc": read_warc,
    "arc": read_arc,
}


def read_unit(unit: Unit, cfg: InputConfig) -> Iterator[dict]:
    """The rows of one work unit, in input order."""
    try:
        reader = READERS[unit.format]
    except KeyError:
        raise ValueError(f"no reader for format {unit.format!r} of {unit.path!r}") from None
    return reader(unit, cfg)


__all__ = ["READERS", "read_unit"]
