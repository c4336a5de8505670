"""Greedy packing for tests that build their own shards: an oracle independent of dataengine.pack."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dataengine.pack.shards import ShardWriter


def write_greedy(writer: ShardWriter, docs: Iterable[tuple[list[int], dict]], pad: int) -> None:
    """Each document's ids (EOS included) fill rows of seq_len + 1 in order; the last row is padded."""
    row_len = writer.seq_len + 1
    row: list[int] = []
    spans: list[dict] = []
    for ids, meta in docs:
        while ids:
            take = ids[: row_len - len(row)]
            ids = ids[len(take) :]
            spans.append({"start": len(row), "end": len(row) + len(take), **meta})
            row += take
            if len(row) == row_len:
                writer.write_row(np.array(row), spans)
                row, spans = [], []
    if row:
        writer.write_row(np.array(row + [pad] * (row_len - len(row))), spans)
