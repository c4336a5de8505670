"""One record (a JSON object, a Parquet row, a dict handed to `dataengine.process`) → one row.

The text comes from the configured text field, or from raw HTML in the configured HTML field;
a missing or non-string value is a rejected row, never an exception.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dataengine.io.config import InputConfig
from dataengine.io.readers.html import html_document
from dataengine.io.readers.rows import document, rejected


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)[:1000]


def record_row(record: Mapping[str, Any], source: str, cfg: InputConfig) -> dict:
    row = _record_row(record, source, cfg)
    for field in cfg.carry_fields:
        if record.get(field) is not None:
            row[field] = record[field]
    return row


def _record_row(record: Mapping[str, Any], source: str, cfg: InputConfig) -> dict:
    meta = {
        "id": record.get(cfg.id_field),
        "url": record.get(cfg.url_field),
        "title": record.get(cfg.title_field),
    }
    if cfg.html_field is not None and record.get(cfg.html_field) is not None:
        html = record[cfg.html_field]
        if not isinstance(html, str):
            return rejected(source, "io:non_string_text", _shown(html), **meta)
        return html_document(html, source, cfg, **meta)
    if cfg.text_field not in record:
        return rejected(source, "io:missing_text", _shown(dict(record)), **meta)
    text = record[cfg.text_field]
    if not isinstance(text, str):
        return rejected(source, "io:non_string_text", _shown(text), **meta)
    return document(text, source, cfg, **meta)
