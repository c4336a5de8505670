"""Plain-text reader (.txt, .md, optionally .gz/.zst): one document per file, per paragraph, or per line.

Paragraphs are runs of non-blank lines separated by blank (empty or whitespace-only) lines; blank
lines are separators, not documents, in both paragraph and line mode.
"""

from __future__ import annotations

from collections.abc import Iterator

from dataengine.io.config import InputConfig
from dataengine.io.readers.lines import Line, iter_lines, looks_binary
from dataengine.io.readers.rows import document, rejected
from dataengine.io.readers.streams import DECOMPRESS_ERRORS, broken_reason, open_decompressed
from dataengine.io.units import Unit

_CHUNK = 1 << 20
_KEEP = 4096  # bytes of an over-large document kept for its rejected row


def _text_row(data: bytes, source: str, cfg: InputConfig) -> dict:
    """A document from raw bytes: binary and invalid UTF-8 rejected, then the shared text checks."""
    if looks_binary(data):
        return rejected(source, "io:binary", data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return rejected(source, "io:invalid_utf8", data)
    return document(text, source, cfg)


def _read_file(unit: Unit, cfg: InputConfig) -> Iterator[dict]:
    """The whole file as one document, read in chunks and never more than max_doc_bytes of it."""
    source = unit.path
    parts: list[bytes] = []
    size = 0
    with open_decompressed(unit.path) as stream:
        try:
            while size <= cfg.max_doc_bytes:
                # read1 returns what one step decompressed, so a break loses nothing read before it
                chunk = stream.read1(min(_CHUNK, cfg.max_doc_bytes + 1 - size))
                if not chunk:
                    break
                parts.append(chunk)
                size += len(chunk)
        except DECOMPRESS_ERRORS as exc:
            reason = broken_reason(exc, unit.path)
            if reason is None:
                raise
            yield rejected(f"{source}@{size}", reason, b"".join(parts)[:_KEEP])
            return
    data = b"".join(parts)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if size > cfg.max_doc_bytes:
        yield rejected(source, "io:too_large", data[:_KEEP])
    else:
        yield _text_row(data, source, cfg)


def _read_lines(unit: Unit, cfg: InputConfig) -> Iterator[dict]:
    for line in iter_lines(unit, cfg.max_doc_bytes):
        source = f"{unit.path}@{line.offset}"
        if line.reject is not None:
            yield rejected(source, line.reject, line.data)
        elif line.data.strip():
            yield _text_row(line.data, source, cfg)


class _Paragraph:
    """A paragraph being read: its lines' bytes while under the size limit, only its size beyond."""

    def __init__(self, offset: int):
        self.offset = offset
        self.parts: list[bytes] = []
        self.held = 0
        self.size = -1  # no separator before the first line
        self.too_large = False

    def add(self, line: Line, limit: int) -> None:
        self.size += line.size + 1
        self.too_large = self.too_large or line.reject == "io:too_large" or self.size > limit
        if not self.too_large or self.held < _KEEP:
            self.parts.append(line.data)
            self.held += len(line.data)

    def row(self, path: str, cfg: InputConfig) -> dict:
        source = f"{path}@{self.offset}"
        data = b"\n".join(self.parts)
        if self.too_large:
            return rejected(source, "io:too_large", data[:_KEEP])
        return _text_row(data, source, cfg)


def _read_paragraphs(unit: Unit, cfg: InputConfig) -> Iterator[dict]:
    """Paragraphs of the unit; one over max_doc_bytes is rejected keeping only its first bytes."""
    paragraph: _Paragraph | None = None
    for line in iter_lines(unit, cfg.max_doc_bytes):
        blank = line.reject is None and not line.data.strip()
        broken = line.reject is not None and line.reject != "io:too_large"
        if paragraph is not None and (blank or broken):
            yield paragraph.row(unit.path, cfg)
            paragraph = None
        if broken:
            yield rejected(f"{unit.path}@{line.offset}", line.reject, line.data)
        elif not blank:
            paragraph = paragraph or _Paragraph(line.offset)
            paragraph.add(line, cfg.max_doc_bytes)
    if paragraph is not None:
        yield paragraph.row(unit.path, cfg)


def read_text(unit: Unit, cfg: InputConfig) -> Iterator[dict]:
    """Rows for a plain-text unit according to `cfg.text_mode`."""
    if cfg.text_mode == "file":
        yield from _read_file(unit, cfg)
    elif cfg.text_mode == "lines":
        yield from _read_lines(unit, cfg)
    else:
        yield from _read_paragraphs(unit, cfg)
