"""Streaming lines out of a (possibly compressed) file range, with bounded memory.

Shared by the JSONL and plain-text readers. A line longer than the limit is never held whole: its
first bytes are kept and the rest is skipped, so a 50 MB line costs at most `limit` bytes of memory.
Broken input (a truncated or corrupt .gz/.zst, a binary file) comes out as a `Line` with `reject`
set, at the offset where it was found, after every good line before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from dataengine.io.readers.streams import CHUNK, DECOMPRESS_ERRORS, broken_reason, open_decompressed
from dataengine.io.units import Unit

_KEEP = 4096  # bytes kept of an over-long line: enough for the 1000 characters a rejected row shows
_SNIFF = 8192
_BOM = b"\xef\xbb\xbf"
# Control bytes that do not occur in text (tab, LF, VT, FF, CR and ESC excluded).
_CONTROL = bytes([*range(0, 9), 14, 15, *range(16, 27), *range(28, 32), 127])


@dataclass(frozen=True, slots=True)
class Line:
    """One line: its offset in the decompressed stream, its bytes (without line ending), its full size.

    `data` is cut to the first few KB when the line exceeded the limit (`reject="io:too_large"`).
    """

    offset: int
    data: bytes
    size: int
    reject: str | None = None


def control_fraction(data: bytes) -> float:
    """Share of bytes that are control characters never found in text."""
    return (len(data) - len(data.translate(None, _CONTROL))) / len(data) if data else 0.0


def looks_binary(data: bytes) -> bool:
    """A record that is binary, not text: a NUL byte or over 10% control bytes in its first 8 KB."""
    head = data[:_SNIFF]
    return b"\x00" in head or control_fraction(head) > 0.1


def head_looks_binary(head: bytes) -> bool:
    """A file (or unit) whose first KBs are over 5% control bytes is binary (random bytes: ~10%)."""
    return control_fraction(head) > 0.05


def _read_line(stream: BinaryIO, limit: int) -> tuple[bytes, int, int]:
    """(kept bytes, size without the newline, bytes consumed) of the next line; consumed 0 at the end.

    Read in pieces: once a line passes `limit`, only its first piece is kept while the rest is skipped.
    """
    piece = stream.readline(CHUNK)
    if piece.endswith(b"\n") or len(piece) < CHUNK:  # nearly every line: one piece
        data = piece[:-1] if piece.endswith(b"\n") else piece
        return data, len(data), len(piece)
    first, pieces, consumed = piece, [piece], len(piece)
    while piece and not piece.endswith(b"\n"):
        piece = stream.readline(CHUNK)
        consumed += len(piece)
        if pieces and consumed > limit + 1:
            pieces = []  # over the limit: stop holding it
        elif pieces:
            pieces.append(piece)
    ended = piece.endswith(b"\n")
    size = consumed - 1 if ended else consumed
    if not pieces:
        return first[:_KEEP], size, consumed
    line = b"".join(pieces)
    return (line[:-1] if ended else line), size, consumed


def iter_lines(unit: Unit, limit: int) -> Iterator[Line]:
    """The lines starting in [unit.start, unit.end), each at most `limit` bytes or marked io:too_large.

    A unit whose first bytes look binary is one `io:binary` line (its head) instead of many.
    """
    pos = unit.start
    with open_decompressed(unit.path, unit.start) as stream:
        try:
            head = stream.peek(_SNIFF)[:_SNIFF]
            if head_looks_binary(head):
                yield Line(pos, head, len(head), "io:binary")
                return
            while unit.end is None or pos < unit.end:
                data, size, consumed = _read_line(stream, limit)
                if not consumed:
                    return
                if pos == 0 and data.startswith(_BOM):
                    data, size = data[len(_BOM) :], size - len(_BOM)
                if data.endswith(b"\r"):
                    data, size = data[:-1], size - 1
                yield Line(pos, data, size, "io:too_large" if size > limit else None)
                pos += consumed
        except DECOMPRESS_ERRORS as exc:
            reason = broken_reason(exc, unit.path)
            if reason is None:
                raise
            yield Line(pos, b"", 0, reason)
