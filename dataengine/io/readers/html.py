"""HTML to text: charset decoding and trafilatura main-text extraction, shared by WARC/ARC and HTML fields.

A page whose extraction yields nothing becomes a rejected row `io:no_text_extracted` (its HTML head
as text), so every archived page is accounted for.
"""

from __future__ import annotations

import codecs
import html as html_entities
import logging
import re
from typing import Any

from dataengine.io.config import InputConfig
from dataengine.io.readers.rows import document, rejected

# trafilatura logs a warning for every page it finds empty; those pages are rejected rows already.
logging.getLogger("trafilatura").setLevel(logging.ERROR)

_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.I | re.S)
# WHATWG: these labels mean windows-1252 in a browser, which is what page authors tested with.
_WINDOWS_1252_LABELS = {"iso-8859-1", "iso8859-1", "latin-1", "latin1", "us-ascii", "ascii", "l1"}


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    if label in _WINDOWS_1252_LABELS:
        return "cp1252"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_html(body: bytes, declared_charset: str | None = None) -> str:
    """Text of an HTML payload: valid UTF-8 as is, else the HTTP charset, else <meta charset>, else a guess.

    Valid UTF-8 wins over a declared single-byte charset because non-ASCII bytes that happen to form
    valid UTF-8 are almost never meant as Latin-1; the other way round gives mojibake.
    """
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    meta = _META_CHARSET.search(body[:4096])
    for label in (declared_charset, meta.group(1).decode("ascii") if meta else None):
        codec = _codec(label)
        if codec and codec != "utf-8":
            return body.decode(codec, errors="replace")
    import charset_normalizer  # here: JSONL and Parquet runs never pay its import

    best = charset_normalizer.from_bytes(body[:65536]).best()
    codec = _codec(best.encoding) if best is not None else None
    return body.decode(codec or "cp1252", errors="replace")


def page_title(html: str) -> str | None:
    """The <title> of a page, unescaped and on one line (trafilatura's metadata pass would also look
    for a date with dateparser, which costs several times the extraction itself)."""
    match = _TITLE.search(html, 0, 200_000)
    if match is None:
        return None
    title = " ".join(html_entities.unescape(match.group(1)).split())
    return title or None


def extract(html: str, url: str | None, cfg: InputConfig) -> tuple[str, str | None]:
    """(main text, title) of a page by trafilatura; text '' when it finds no main content."""
    import trafilatura  # here: 0.1-0.2 s of imports that only HTML inputs need

    doc = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=False,
        include_comments=cfg.include_comments,
        include_tables=cfg.include_tables,
        favor_precision=cfg.favor_precision,
        favor_recall=cfg.favor_recall,
        deduplicate=False,
    )
    text = (doc.text or "") if doc is not None else ""
    return text, page_title(html)


def html_document(
    html: str, source: str, cfg: InputConfig, *, id: Any = None, url: Any = None, title: Any = None
) -> dict:
    """The row for one HTML page: its extracted text and title, or io:no_text_extracted."""
    from lxml import etree  # loaded with trafilatura by the first page

    url = url if isinstance(url, str) else None
    try:
        text, extracted_title = extract(html, url, cfg)
    except (ValueError, TypeError, RecursionError, etree.LxmlError) as exc:  # pathological markup
        return rejected(source, "io:extraction_failed", f"{type(exc).__name__}: {exc}", id=id, url=url)
    title = extracted_title or title
    if not text.strip():
        return rejected(source, "io:no_text_extracted", html, id=id, url=url, title=title)
    return document(text, source, cfg, id=id, url=url, title=title)
