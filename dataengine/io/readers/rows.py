"""Building document rows, and the checks every format shares (empty, too large, invalid Unicode).

Every row has the same keys, so batches from different readers stack into one Arrow schema:
id, text, source, url, title, reject (None for a document that may go on to the stages).
"""

from __future__ import annotations

import hashlib
from typing import Any

from dataengine.io.config import InputConfig

REJECT_TEXT_CHARS = 1000  # a rejected row keeps this much of what could be read, to show what it was


def stable_id(source: str) -> str:
    """An id for inputs without one: a hash of where the record lies, the same on every run."""
    return hashlib.blake2b(source.encode("utf-8", "replace"), digest_size=8).hexdigest()


def _clean(value: Any) -> str | None:
    """An optional field as a valid UTF-8 string (JSON may carry lone surrogates), or None."""
    if value is None:
        return None
    s = value if isinstance(value, str) else str(value)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-8", "replace").decode("utf-8")
    return s


def _row(text: str, source: str, reject: str | None, id: Any, url: Any, title: Any) -> dict:
    return {
        "id": _clean(id) or stable_id(source),
        "text": text,
        "source": source,
        "url": _clean(url),
        "title": _clean(title),
        "reject": reject,
    }


def rejected(
    source: str, reason: str, text: str | bytes = "", *, id: Any = None, url: Any = None, title: Any = None
) -> dict:
    """A rejected row: `reason` is "io:<rule>", `text` the start of what could be read."""
    if isinstance(text, bytes):
        text = text[: 4 * REJECT_TEXT_CHARS].decode("utf-8", "replace")
    return _row(_clean(text[:REJECT_TEXT_CHARS]) or "", source, reason, id, url, title)


def document(
    text: str, source: str, cfg: InputConfig, *, id: Any = None, url: Any = None, title: Any = None
) -> dict:
    """A document row, or a rejected one when the text is empty, too large or not encodable as UTF-8."""
    if not text or text.isspace():
        return rejected(source, "io:empty", text, id=id, url=url, title=title)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates, e.g. from a JSON "\ud800" escape
        return rejected(source, "io:invalid_utf8", text, id=id, url=url, title=title)
    if size > cfg.max_doc_bytes:
        return rejected(source, "io:too_large", text, id=id, url=url, title=title)
    return _row(text, source, None, id, url, title)
