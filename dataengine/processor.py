"""All per-document stages fused into one object: rows in, kept and rejected rows out.

The Ray runner holds one of these per actor (models load once per actor); the Python
API (`dataengine.process`) uses the same object without Ray.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from dataengine.classifiers.features import document_tokens
from dataengine.config import PipelineConfig
from dataengine.dedup.minhash import SIGNATURE_TYPE, minhash_signatures, signature_column, signature_metadata
from dataengine.io.split import split_rows
from dataengine.stages import PROSE_ONLY, Document, Stage, build_stages
from dataengine.stages.code import CODE_LANG
from dataengine.stats import RunStats, length_bin

BASE_FIELDS = [
    pa.field("id", pa.string()),
    pa.field("text", pa.string()),
    pa.field("source", pa.string()),
    pa.field("url", pa.string()),
    pa.field("title", pa.string()),
    pa.field("category", pa.string()),
    pa.field("category_score", pa.float32()),
    pa.field("lang", pa.string()),
    pa.field("lang_score", pa.float32()),
    pa.field("quality", pa.float32()),
    pa.field("quality_bin", pa.int8()),
]
# Written from the Document's attributes of the same name when a stage set them (an input's own
# `category` stays when the category stage is off).
_DOCUMENT_FIELDS = ("category", "category_score", "quality", "quality_bin")
REJECT_FIELD = pa.field("reject", pa.string())

# Documents that exercise every rule family (prose, CJK, code, empty) so that the signal
# columns are known before the first real batch: every output file shares one schema.
_PROBES = [
    "The quick brown fox jumps over the lazy dog. It was the best of times.\n"
    "Contact jane@example.com or 192.168.0.1.\n- a bullet\n...",
    "北京是中华人民共和国的首都，也是全国的政治、文化中心。这座城市有三千多年的历史。\n联系电话13812345678。",
    "東京は日本の首都です。人口は約千四百万人です。",
    "def f(x):\n    return {x: 1}\n",
    "",
]


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


class _InFlight:
    """A document between stages: its output row, its state, and its size when last measured."""

    __slots__ = ("out", "doc", "reject", "measured_text", "n_bytes")

    def __init__(self, out: dict, doc: Document, n_bytes: int):
        self.out = out
        self.doc = doc
        self.reject: str | None = None
        self.measured_text = doc.text
        self.n_bytes = n_bytes


class DocumentProcessor:
    """Runs the configured stage chain over rows and keeps the statistics of what it did."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.stages = build_stages(cfg.stages)
        self.early_exit = cfg.decide.early_exit
        self.signal_fields = self._discover_signal_fields()
        self.minhash = cfg.signature_config()
        self._row_schema = pa.schema(BASE_FIELDS + self.signal_fields)
        if self.minhash is None:
            self.schema = self._row_schema
        else:  # signatures on kept rows only (rejected rows never reach dedup): null on rejected rows
            self.schema = self._row_schema.append(pa.field("minhash", SIGNATURE_TYPE)).with_metadata(
                signature_metadata(self.minhash)
            )
        self.rejected_schema = self.schema.append(REJECT_FIELD)
        self.stats = RunStats()

    def _discover_signal_fields(self) -> list[pa.Field]:
        kinds: dict[str, pa.DataType] = {}
        for text in _PROBES:
            doc = Document(text)
            for stage in build_stages(self.cfg.stages):
                stage.process(doc)
            for key, value in doc.signals.items():
                kind = pa.string() if isinstance(value, str) else pa.float64()
                if kinds.get(key) != pa.string():
                    kinds[key] = kind
        return [pa.field(k, kinds[k]) for k in sorted(kinds)]

    def take_stats(self) -> RunStats:
        """Statistics since the last call (stage timings included), then start afresh."""
        stats, self.stats = self.stats, RunStats()
        for stage in self.stages:
            stats.stage_seconds[stage.name] += stage.seconds
            stage.seconds = 0.0
            for key, n in stage.stats.items():
                stats.stage_counters[f"{stage.name}.{key}"] += n
            stage.stats.clear()
        return stats

    def process(self, rows: Iterable[dict]) -> tuple[list[dict], list[dict]]:
        """Stage by stage over the whole batch (a model is called once per batch), then kept and
        rejected rows in input order."""
        results: list[dict | _InFlight] = []
        # a document over input.split_words becomes several rows here, so every count below (input
        # included) is of the rows the stages judge; run.json's split_documents/split_parts say how many
        for row in split_rows(rows, self.cfg.input, self.stats.stage_counters):
            out, n_bytes = self._admit(row)
            if out.get("reject"):  # rejected by the reader (io:*): nothing to annotate
                results.append(self._count(out, row.get("text") or ""))
            else:
                results.append(_InFlight(out, Document(row.get("text") or ""), n_bytes))
        return self._through_stages(results, replay=False)

    def replay(self, rows: Iterable[dict]) -> tuple[list[dict], list[dict]]:
        """Decide again over rows a run stored (its kept and rejected rows, in input order): each stage's
        rules over the stored signals, language, category and score, with no model and no text split.
        Reader rejections (io:*) stay; a kept row's stored MinHash signature is kept."""
        results: list[dict | _InFlight] = []
        signal_names = [f.name for f in self.signal_fields]
        for row in rows:
            reject = row.get("reject") or ""
            out, n_bytes = self._admit({**row, "reject": reject if reject.startswith("io:") else None})
            if out.get("reject"):
                results.append(self._count(out, row.get("text") or ""))
                continue
            doc = Document(row.get("text") or "", row.get("lang"), row.get("lang_score"))
            for name in _DOCUMENT_FIELDS:
                setattr(doc, name, row.get(name))
            doc.signals = {k: row[k] for k in signal_names if row.get(k) is not None}
            if row.get("minhash") is not None:
                out["minhash"] = row["minhash"]
            results.append(_InFlight(out, doc, n_bytes))
        return self._through_stages(results, replay=True)

    def _through_stages(self, results: list[dict | _InFlight], replay: bool) -> tuple[list[dict], list[dict]]:
        in_flight = [r for r in results if isinstance(r, _InFlight)]
        for stage in self.stages:
            self._run_stage(stage, in_flight, replay)
        rows_out = [self._finish(r) if isinstance(r, _InFlight) else r for r in results]
        kept = [r for r in rows_out if not r.get("reject")]
        rejected = [r for r in rows_out if r.get("reject")]
        for row in rejected:  # signatures on kept rows only
            row.pop("minhash", None)
        if self.minhash is not None and kept:
            self._add_signatures([r for r in kept if r.get("minhash") is None])
        return kept, rejected

    def _add_signatures(self, rows: list[dict]) -> None:
        """One vectorized MinHash pass over kept rows, shingled by their detected language."""
        if not rows:
            return
        start = time.perf_counter()
        sig = minhash_signatures([r["text"] for r in rows], [r["lang"] for r in rows], self.minhash)
        for row, s in zip(rows, sig, strict=True):
            row["minhash"] = s
        self.stats.stage_seconds["minhash"] += time.perf_counter() - start

    def _admit(self, row: dict) -> tuple[dict, int]:
        """The output row's base fields and the text's size; counts the input and what the reader
        let through."""
        stats = self.stats
        n_bytes = _utf8_len(row.get("text") or "")
        stats.input += 1
        stats.input_bytes += n_bytes
        stats.funnel_docs["read"] += 1
        stats.funnel_bytes["read"] += n_bytes
        out = {f.name: row.get(f.name) for f in BASE_FIELDS}
        if row.get("reject"):
            out["reject"] = row["reject"]
        else:
            stats.funnel_docs["io"] += 1
            stats.funnel_bytes["io"] += n_bytes
        return out, n_bytes

    def _run_stage(self, stage: Stage, in_flight: list[_InFlight], replay: bool) -> None:
        """One stage over the documents that meet it (annotating, or only its rules when replaying); the
        funnel counts those still kept after it."""
        prose_only = stage.name in PROSE_ONLY
        todo = [
            f
            for f in in_flight
            if not (self.early_exit and f.reject) and not (prose_only and f.doc.lang == CODE_LANG)
        ]
        run = stage.replay if replay else stage.run
        for f, rule in zip(todo, run([f.doc for f in todo]), strict=True):
            if f.reject is None and rule is not None:
                f.reject = f"{stage.name}:{rule}"
        stats = self.stats
        for f in in_flight:
            if f.reject is None:
                if f.doc.text is not f.measured_text:
                    f.measured_text = f.doc.text
                    f.n_bytes = _utf8_len(f.doc.text)
                stats.funnel_docs[stage.name] += 1
                stats.funnel_bytes[stage.name] += f.n_bytes

    def _finish(self, f: _InFlight) -> dict:
        doc, out = f.doc, f.out
        out["text"] = doc.text
        if doc.lang is not None:
            out["lang"] = doc.lang
            out["lang_score"] = doc.lang_score
        for name in _DOCUMENT_FIELDS:
            value = getattr(doc, name)
            if value is not None:
                out[name] = value
        for field in self.signal_fields:
            out[field.name] = doc.signals.get(field.name)
        unknown = doc.signals.keys() - out.keys()
        for key in unknown:
            self.stats.stage_counters[f"signal_without_column:{key}"] += 1
        if f.reject is not None:
            out["reject"] = f.reject
        else:
            self.stats.kept_bytes += f.n_bytes
        return self._count(out, doc.text)

    def _count(self, out: dict, text: str) -> dict:
        stats = self.stats
        stats.count_row(out, 0 if out.get("reject") else document_tokens(text))
        if out.get("reject"):
            stats.rejected_by_reason[out["reject"]] += 1
            stats.length_hist_rejected[length_bin(len(text))] += 1
        else:
            stats.kept += 1
            stats.length_hist_kept[length_bin(len(text))] += 1
        return out

    def to_tables(self, kept: list[dict], rejected: list[dict]) -> tuple[pa.Table, pa.Table]:
        kept_t = pa.Table.from_pylist(kept, schema=self._row_schema)
        if self.minhash is not None:
            sig = np.stack([r["minhash"] for r in kept]) if kept else np.zeros((0, self.minhash.num_perm))
            kept_t = kept_t.append_column("minhash", signature_column(sig.astype(np.uint32, copy=False)))
            kept_t = kept_t.replace_schema_metadata(self.schema.metadata)
        return kept_t, pa.Table.from_pylist(rejected, schema=self.rejected_schema)
