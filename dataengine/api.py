"""`import dataengine`: the phase-1 stages on an Arrow table or a list of dicts, without Ray."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice

import pyarrow as pa

from dataengine.config import PipelineConfig
from dataengine.io.config import InputConfig
from dataengine.io.readers.records import record_row
from dataengine.keep_top import resolve_keep_top
from dataengine.processor import DocumentProcessor
from dataengine.stats import RunStats


@dataclass
class ProcessResult:
    kept: pa.Table
    rejected: pa.Table
    stats: RunStats


def _rows(docs: pa.Table | Iterable[dict], cfg: InputConfig) -> Iterable[dict]:
    records = docs.to_pylist() if isinstance(docs, pa.Table) else docs
    for n, record in enumerate(records):
        yield record_row(record, record.get("source") or f"memory:row {n}", cfg)


def _batches(docs: pa.Table | Iterable[dict], cfg: PipelineConfig) -> Iterable[list[dict]]:
    rows = _rows(docs, cfg.input)
    while batch := list(islice(rows, cfg.ray.batch_size)):
        yield batch


def process(
    docs: pa.Table | Iterable[dict],
    config: PipelineConfig | dict | None = None,
    processor: DocumentProcessor | None = None,
) -> ProcessResult:
    """Run the configured per-document stages over `docs`; pass `processor` to reuse loaded models.

    A quality `keep_top` is resolved on `docs` themselves (`dataengine.keep_top`)."""
    if processor is None:
        if not isinstance(config, PipelineConfig):
            config = PipelineConfig.model_validate(config or {})
        if config.stages.quality is not None and config.stages.quality.uses_keep_top():
            docs = docs if isinstance(docs, pa.Table) else list(docs)
            config = resolve_keep_top(config, _batches(docs, config))
        processor = DocumentProcessor(config)
    # in batches of ray.batch_size, as the runner does: a batch's documents (and their splits) are
    # held together while the stages run over it
    kept, rejected = [], []
    for batch in _batches(docs, processor.cfg):
        batch_kept, batch_rejected = processor.process(batch)
        kept += batch_kept
        rejected += batch_rejected
    kept_t, rejected_t = processor.to_tables(kept, rejected)
    return ProcessResult(kept_t, rejected_t, processor.take_stats())
