"""Use counts per channel and per document, derived from the ledger and the shards' span tables.

A sequence used n times contributes n x (tokens of each span in it) to that span's document and
channel; `epochs` is tokens consumed / tokens the document (or channel) has in the split.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from dataengine.pack.shards import ShardReader
from dataengine.usage.ledger import UsageLedger, dataset_fingerprint


def _span_totals(reader: ShardReader, key: str) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for shard in range(reader.num_shards):
        table = reader.shard_spans(shard)
        lengths = (table.column("end").to_numpy() - table.column("start").to_numpy()).tolist()
        for name, n in zip(table.column(key).to_pylist(), lengths, strict=True):
            totals[name] += n
    return totals


def usage_by(ledger: UsageLedger, reader: ShardReader, key: str) -> list[dict[str, Any]]:
    """Rows {key, tokens, tokens_used, epochs, sequences_used} for key 'channel' or 'doc_id',
    most used first."""
    dataset = dataset_fingerprint(reader.root)
    used_tokens: dict[str, int] = defaultdict(int)
    used_sequences: dict[str, int] = defaultdict(int)
    for shard, row, uses in ledger.sequence_uses(dataset):
        for span in reader.spans(shard, row):
            used_tokens[span[key]] += uses * (span["end"] - span["start"])
            used_sequences[span[key]] += uses
    totals = _span_totals(reader, key)
    rows = [
        {
            key: name,
            "tokens": total,
            "tokens_used": used_tokens.get(name, 0),
            "epochs": float(np.round(used_tokens.get(name, 0) / total, 4)) if total else 0.0,
            "sequences_used": used_sequences.get(name, 0),
        }
        for name, total in totals.items()
    ]
    return sorted(rows, key=lambda r: (-r["epochs"], str(r[key])))
