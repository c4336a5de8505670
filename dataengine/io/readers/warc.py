"""WARC and ARC readers (plain, .gz): archived HTML pages become documents via trafilatura.

Documents are the response and resource records whose payload is HTML (by HTTP Content-Type, the
WARC Content-Type when the record holds no HTTP message, or a sniff of the first bytes when neither
says); requests, metadata, warcinfo, DNS entries, images and other non-HTML payloads are archive
bookkeeping and are not documents. The `id` of a WARC page is its WARC-Record-ID.

WARC records come from fastwarc. ARC v1/v2 files are framed here (one header line, then `length`
bytes): warcio expects a newline after each ARC record, which Common Crawl's ARC files lack, and
fastwarc reads no ARC. Offsets in `source` count bytes of the decompressed archive.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from typing import BinaryIO

from fastwarc.stream_io import BrotliReader, ChunkedReader, GzipReader
from fastwarc.warc import ArchiveIterator, WarcRecordType

from dataengine.io.config import InputConfig
from dataengine.io.readers.html import decode_html, html_document
from dataengine.io.readers.lines import head_looks_binary, looks_binary
from dataengine.io.readers.rows import rejected
from dataengine.io.readers.streams import DECOMPRESS_ERRORS, broken_reason, open_decompressed
from dataengine.io.units import Unit

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_KEEP = 4096  # bytes read of a payload before deciding whether it is HTML and whether it is too large
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)


@dataclass(frozen=True)
class _Page:
    """An archived HTTP payload as read: all of it, or only its first bytes when too large or truncated."""

    source: str
    record_id: str | None
    url: str | None
    content_type: str | None  # lower-case MIME type without parameters; None when the archive is silent
    charset: str | None
    transfer_encoding: str
    content_encoding: str
    body: bytes
    too_large: bool
    truncated: bool


def _content_type(value: str | None) -> tuple[str | None, str | None]:
    """(MIME type, charset) of a Content-Type header value."""
    if not value:
        return None, None
    msg = Message()
    msg["Content-Type"] = value
    return msg.get_content_type(), msg.get_content_charset()


def _is_html(page: _Page) -> bool:
    if page.content_type is not None:
        return page.content_type in _HTML_TYPES
    return _HTML_START.match(page.body[:_KEEP]) is not None


def _decoded_payload(page: _Page, limit: int) -> bytes:
    """The payload without transfer and content encodings, at most limit + 1 bytes.

    Crawlers often store the decoded payload but keep the original headers, so an encoding that does
    not parse leaves the bytes as they are.
    """
    data = page.body
    if "chunked" in page.transfer_encoding and re.match(rb"[0-9a-fA-F]+[ \t;]*[^\n]*\r?\n", data):
        try:
            data = ChunkedReader(io.BytesIO(data)).read(limit + 1)
        except OSError:
            data = page.body
    readers = {"gzip": GzipReader, "x-gzip": GzipReader, "br": BrotliReader}
    encoding = page.content_encoding
    if encoding in readers or encoding == "deflate":
        try:
            stream = io.BytesIO(data)
            reader = GzipReader(stream, zlib=True) if encoding == "deflate" else readers[encoding](stream)
            data = reader.read(limit + 1)
        except OSError:
            pass
    return data


def _page_row(page: _Page, cfg: InputConfig) -> dict | None:
    """The row for an archived payload, or None when it is not an HTML page (not a document)."""
    if not _is_html(page):
        return None
    meta = {"id": page.record_id, "url": page.url}
    if page.too_large:
        return rejected(page.source, "io:too_large", page.body, **meta)
    if page.truncated:
        return rejected(page.source, "io:truncated_record", page.body, **meta)
    payload = _decoded_payload(page, cfg.max_doc_bytes)
    if len(payload) > cfg.max_doc_bytes:
        return rejected(page.source, "io:too_large", payload[:_KEEP], **meta)
    return html_document(decode_html(payload, page.charset), page.source, cfg, **meta)


def _archive_reason(exc: BaseException, path: str) -> str | None:
    """Like `broken_reason`, but a compressed archive that ends early is a truncated record."""
    reason = broken_reason(exc, path)
    return "io:truncated_record" if reason and reason.startswith("io:truncated") else reason


class _EndTracker:
    """The decompressed archive as fastwarc reads it, remembering how it ended.

    fastwarc abandons its buffer when the stream raises, losing complete records already read; so a
    truncated or corrupt .gz ends here as plain end of data, with the reason kept in `broken`.
    """

    def __init__(self, stream: BinaryIO, path: str, limit: int | None = None):
        self._stream, self._path = stream, path
        self._limit = limit  # bytes of the unit (a range of whole records); None = to the end
        self.pos = 0
        self.tail = b""
        self.broken: str | None = None

    def read(self, size: int = -1) -> bytes:
        if self.broken:
            return b""
        if self._limit is not None:
            size = self._limit - self.pos if size < 0 else min(size, self._limit - self.pos)
            if size <= 0:
                return b""
        try:
            # read1: one decompression step at a time, so a break loses nothing decompressed before it
            data = self._stream.read1(size)
        except DECOMPRESS_ERRORS as exc:
            self.broken = _archive_reason(exc, self._path)
            if self.broken is None:
                raise
            return b""
        self.pos += len(data)
        self.tail = (self.tail + data[-4:])[-4:]
        return data

    def tell(self) -> int:
        return self.pos

    def ends_mid_record(self) -> bool:
        """Records end with a blank line (CRLF CRLF; LF LF in old WARC/0.18 files)."""
        return self.pos > 0 and not self.tail.endswith((b"\n\n", b"\n\r\n"))


def _warc_page(record, path: str, cfg: InputConfig, base: int = 0) -> _Page:
    headers = record.headers
    url = (headers.get("WARC-Target-URI") or "").strip().strip("<>") or None
    if record.is_http:
        http = record.http_headers
        ctype, charset = _content_type(http.get("Content-Type"))
        transfer, content = http.get("Transfer-Encoding") or "", http.get("Content-Encoding") or ""
    else:  # e.g. Wayback exports: the block is the page itself, typed by the WARC Content-Type
        ctype, charset = _content_type(headers.get("Content-Type"))
        transfer = content = ""
    declared = record.content_length
    too_large = declared > cfg.max_doc_bytes
    body = record.reader.read(_KEEP if too_large else declared)
    return _Page(
        source=f"{path}@{base + record.stream_pos}",
        record_id=headers.get("WARC-Record-ID"),
        url=url,
        content_type=ctype,
        charset=charset,
        transfer_encoding=transfer.lower(),
        content_encoding=content.strip().lower(),
        body=body,
        too_large=too_large,
        truncated=not too_large and len(body) < declared,
    )


def read_warc(unit: Unit, cfg: InputConfig) -> Iterator[dict]:
    """Rows for the HTML pages of a WARC file (or of the records in [unit.start, unit.end) of an
    uncompressed one); a truncated end or a file with no record is a rejected row."""
    n_records = 0
    last_short = False
    base = unit.start
    with open_decompressed(unit.path, base) as stream:
        limit = None if unit.end is None else unit.end - base
        tracker = _EndTracker(stream, unit.path, limit)
        head = stream.peek(_KEEP)[:_KEEP]
        records = ArchiveIterator(
            tracker,
            record_types=WarcRecordType.any_type,
            parse_http=True,
            quirks_mode=True,
            auto_decode="none",
            stream_detect=True,  # a gzipped file without .gz in its name still reads
            fsspec_args=False,
        )
        for record in records:
            n_records += 1
            source = f"{unit.path}@{base + record.stream_pos}"
            if record.headers.get("Content-Length") is None:  # the header itself was cut off
                yield rejected(
                    source, "io:truncated_record", f"WARC header without Content-Length at {source}"
                )
                last_short = True
                continue
            if record.record_type not in (WarcRecordType.response, WarcRecordType.resource):
                last_short = False
                continue
            page = _warc_page(record, unit.path, cfg, base)
            row = _page_row(page, cfg)
            last_short = page.truncated and row is not None  # already reported as truncated
            if row is not None:
                yield row
        if n_records == 0 and tracker.pos > 0:  # bytes, but not one record in them
            reason = tracker.broken or ("io:binary" if head_looks_binary(head) else "io:corrupt_archive")
            yield rejected(f"{unit.path}@{base}", reason, head)
        elif (tracker.broken or tracker.ends_mid_record()) and not last_short:
            end = f"{unit.path}@{base + tracker.pos}"
            yield rejected(
                end, "io:truncated_record", f"archive ends mid-record at byte {base + tracker.pos}"
            )


def _http_page(
    block: bytes, source: str, url: str, arc_type: str | None, too_large: bool, truncated: bool
) -> _Page:
    """Split an archived HTTP response (status line, headers, payload; maybe only its head) into a page."""
    ctype, charset, transfer, content, payload = arc_type, None, "", "", block
    if block.startswith(b"HTTP/"):
        ends = [i + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := block.find(sep)) >= 0]
        if ends:
            split = min(ends)
            status_end = block.find(b"\n") + 1
            msg = BytesHeaderParser().parsebytes(block[status_end:split])
            if msg.get("Content-Type"):
                ctype, charset = _content_type(msg.get("Content-Type"))
            transfer = (msg.get("Transfer-Encoding") or "").lower()
            content = (msg.get("Content-Encoding") or "").strip().lower()
            payload = block[split:]
    return _Page(source, None, url, ctype, charset, transfer, content, payload, too_large, truncated)


def _read_exactly(stream: BinaryIO, n: int, keep: int) -> tuple[bytes, int]:
    """(the first `keep` bytes of the next n, how many of the n could be read), in bounded pieces."""
    kept = stream.read(min(n, keep))
    got = len(kept)
    while got < n:
        piece = stream.read(min(n - got, 1 << 20))
        if not piece:
            break
        got += len(piece)
    return kept, got


def read_arc(unit: Unit, cfg: InputConfig) -> Iterator[dict]:
    """Rows for the HTML pages of an ARC file (header line `URL IP date type [...] length`, then the record)."""
    pos = start = 0
    n_records = 0
    with open_decompressed(unit.path) as stream:
        try:
            while True:
                line = stream.readline(_KEEP)
                if not line:
                    break
                start, pos = pos, pos + len(line)
                if not line.strip():
                    continue
                fields = line.split()
                source = f"{unit.path}@{start}"
                if len(fields) < 5 or not fields[-1].isdigit():
                    reason = "io:binary" if n_records == 0 and looks_binary(line) else "io:corrupt_archive"
                    yield rejected(source, reason, line)
                    return
                n_records += 1
                declared = int(fields[-1])
                too_large = declared > cfg.max_doc_bytes
                block, got = _read_exactly(stream, declared, _KEEP if too_large else declared)
                pos += got
                url = fields[0].decode("utf-8", "replace")
                if url.startswith(("filedesc:", "dns:")):
                    continue  # the archive's own header, DNS lookups: not pages
                arc_type = _content_type(fields[3].decode("ascii", "replace"))[0]
                page = _http_page(block, source, url, arc_type, too_large, got < declared)
                row = _page_row(page, cfg)
                if row is None and got < declared:  # the file ends inside a record that is not a page
                    row = rejected(source, "io:truncated_record", block)
                if row is not None:
                    yield row
        except DECOMPRESS_ERRORS as exc:
            reason = _archive_reason(exc, unit.path)
            if reason is None:
                raise
            yield rejected(f"{unit.path}@{start}", reason)
