"""JSONL reader (plain, .gz, .zst): one JSON object per line; text, or raw HTML, from configured fields."""

from __future__ import annotations

import json
from collections.abc import Iterator

from dataengine.io.config import InputConfig
from dataengine.io.readers.html import html_document
from dataengine.io.readers.lines import iter_lines, looks_binary
from dataengine.io.readers.rows import document, rejected
from dataengine.io.units import Unit


def _record_row(obj: dict, source: str, cfg: InputConfig) -> dict:
    """The row for one parsed JSON object: HTML extracted when configured and present, else the text field."""
    meta = {"id": obj.get(cfg.id_field), "url": obj.get(cfg.url_field), "title": obj.get(cfg.title_field)}
    if cfg.html_field is not None and obj.get(cfg.html_field) is not None:
        html = obj[cfg.html_field]
        if not isinstance(html, str):
            return rejected(source, "io:non_string_text", json.dumps(html)[:1000], **meta)
        return html_document(html, source, cfg, **meta)
    if cfg.text_field not in obj:
        return rejected(source, "io:missing_text", json.dumps(obj, ensure_ascii=False)[:1000], **meta)
    text = obj[cfg.text_field]
    if not isinstance(text, str):
        return rejected(source, "io:non_string_text", json.dumps(text)[:1000], **meta)
    return document(text, source, cfg, **meta)


def read_jsonl(unit: Unit, cfg: InputConfig) -> Iterator[dict]:
    """Rows for the JSON lines of `unit`; a line that is blank or whitespace only is no record and yields none."""
    for line in iter_lines(unit, cfg.max_doc_bytes * cfg.json_line_factor):
        source = f"{unit.path}@{line.offset}"
        if line.reject is not None:
            yield rejected(source, line.reject, line.data)
            continue
        if looks_binary(line.data):
            yield rejected(source, "io:binary", line.data)
            continue
        try:
            s = line.data.decode("utf-8")
        except UnicodeDecodeError:
            yield rejected(source, "io:invalid_utf8", line.data)
            continue
        if not s or s.isspace():
            continue
        try:
            obj = json.loads(s)
        except ValueError:
            yield rejected(source, "io:invalid_json", s)
            continue
        if not isinstance(obj, dict):
            yield rejected(source, "io:invalid_json", s)
            continue
        yield _record_row(obj, source, cfg)
