"""`import dataengine`: the phase-1 stages on an Arrow table or a list of dicts, without Ray."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa

from dataengine.config import PipelineConfig
from dataengine.processor import DocumentProcessor
from dataengine.stats import RunStats


@dataclass
class ProcessResult:
    kept: pa.Table
    rejected: pa.Table
    stats: RunStats


def _rows(docs: pa.Table | Iterable[dict], text_field: str, id_field: str) -> Iterable[dict]:
    records = docs.to_pylist() if isinstance(docs, pa.Table) else docs
    for n, record in enumerate(records):
        source = record.get("source") or f"memory:row {n}"
        text = record.get(text_field)
        row = dict(record, source=source)
        if record.get(id_field) is not None:
            row["id"] = str(record[id_field])
        else:
            row["id"] = hashlib.sha1(source.encode()).hexdigest()[:16]
        if text is None:
            row.update(text="", reject="io:missing_text")
        elif not isinstance(text, str):
            row.update(text="", reject="io:non_string_text")
        elif not text.strip():
            row.update(text=text, reject="io:empty")
        else:
            row["text"] = text
        yield row


def process(
    docs: pa.Table | Iterable[dict],
    config: PipelineConfig | dict | None = None,
    processor: DocumentProcessor | None = None,
) -> ProcessResult:
    """Run the configured per-document stages over `docs`; pass `processor` to reuse loaded models."""
    if processor is None:
        if not isinstance(config, PipelineConfig):
            config = PipelineConfig.model_validate(config or {})
        processor = DocumentProcessor(config)
    icfg = processor.cfg.input
    kept, rejected = processor.process(_rows(docs, icfg.text_field, icfg.id_field))
    kept_t, rejected_t = processor.to_tables(kept, rejected)
    return ProcessResult(kept_t, rejected_t, processor.take_stats())
