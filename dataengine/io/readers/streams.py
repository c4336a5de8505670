"""Opening an input as a buffered, decompressed byte stream, and naming how compressed input breaks.

gzip comes from Python's gzip (multi-member aware; a truncated file raises EOFError). For zstd,
zstandard's own stream reader ends silently when a frame is cut off, which would drop data without
a trace, so `_ZstdReader` drives a decompression object and raises EOFError like gzip does.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import zstandard

from dataengine.io.paths import open_random_access
from dataengine.io.units import compression_of

CHUNK = 1 << 20
_ZSTD_INPUT = 1 << 16  # compressed bytes fed at a time: bounds what one step can expand to
# Exceptions that mean the compressed data is broken (not that the filesystem failed).
DECOMPRESS_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, zstandard.ZstdError)


class _ZstdReader(io.RawIOBase):
    """Decompressed bytes of a stream of zstd frames; EOFError when the input ends inside a frame."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._frame = self._dctx.decompressobj()
        self._in_frame = False
        self._out = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def _decompress(self, data: bytes) -> bytes:
        out = []
        while data:
            self._in_frame = True
            out.append(self._frame.decompress(data))
            data = b""
            if self._frame.eof:
                data = self._frame.unused_data
                self._frame = self._dctx.decompressobj()
                self._in_frame = False
        return b"".join(out)

    def readinto(self, buffer) -> int:
        while self._pos >= len(self._out):
            data = self._raw.read(_ZSTD_INPUT)
            if not data:
                if self._in_frame:
                    raise EOFError("zstd stream ended inside a frame")
                return 0
            self._out, self._pos = self._decompress(data), 0
        n = min(len(buffer), len(self._out) - self._pos)
        buffer[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n


@contextmanager
def open_decompressed(path: str, start: int = 0) -> Iterator[BinaryIO]:
    """A buffered stream of `path`, decompressed by extension; uncompressed files start at `start`."""
    with open_random_access(path) as raw:
        compression = compression_of(path)
        if compression == ".gz":
            stream: BinaryIO = gzip.GzipFile(fileobj=io.BufferedReader(raw, CHUNK), mode="rb")
        elif compression in (".zst", ".zstd"):
            stream = io.BufferedReader(_ZstdReader(raw), CHUNK)
        else:
            stream = io.BufferedReader(raw, CHUNK)
            stream.seek(start)
        with stream:
            yield stream


def broken_reason(exc: BaseException, path: str) -> str | None:
    """The io:* reason for an exception raised while decompressing `path`, or None if it is not one."""
    if isinstance(exc, EOFError):
        return "io:truncated_gzip" if compression_of(path) == ".gz" else "io:truncated_zstd"
    if isinstance(exc, gzip.BadGzipFile | zlib.error):
        return "io:corrupt_gzip"
    if isinstance(exc, zstandard.ZstdError):
        return "io:corrupt_zstd"
    return None
