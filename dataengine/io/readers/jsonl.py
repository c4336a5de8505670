"""JSONL reader (plain, .gz, .zst): one JSON object per line; text, or raw HTML, from configured fields."""

from __future__ import annotations

import json
from collections.abc import Iterator

from dataengine.io.config import InputConfig
from dataengine.io.readers.lines import iter_lines, looks_binary
from dataengine.io.readers.records import record_row
from dataengine.io.readers.rows import rejected
from dataengine.io.units import Unit


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
        yield record_row(obj, source, cfg)
