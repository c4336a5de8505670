"""Batches from token shards (DESIGN §3.3) for the trainer: sequence index -> tensors, and the channel
of each sequence that the sampler (train/sampler.py) pools by."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dataengine.pack.shards import ShardReader


def sequence_channels(reader: ShardReader) -> np.ndarray:
    """Channel index per sequence (global order of `reader.sequence_ids()`): the channel holding most
    of its tokens. Used only to weight sampling; losses are attributed per token."""
    out = []
    index = {name: i for i, name in enumerate(reader.channels)}
    for shard, n_rows in enumerate(reader.shard_sequences):
        table = reader.shard_spans(shard)
        tokens = np.zeros((n_rows, max(1, len(reader.channels))), dtype=np.int64)
        seqs = table.column("seq").to_numpy()
        lengths = table.column("end").to_numpy() - table.column("start").to_numpy()
        channels = np.array([index[c] for c in table.column("channel").to_pylist()], dtype=np.int64)
        np.add.at(tokens, (seqs, channels), lengths)
        out.append(tokens.argmax(axis=1))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


@dataclass
class Batch:
    inputs: torch.Tensor  # [B, T] int64
    targets: torch.Tensor  # [B, T] int64
    target_channels: torch.Tensor  # [B, T] int64, channel of each target token, -1 = ignore
    doc_ids: torch.Tensor  # [B, T] int64, span index per input position (-1 = padding)

    def to(self, device: torch.device) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in vars(self).values()))


class SequenceSource:
    """Sequence index -> (shard, row) -> tensors, reading through the one ShardReader."""

    def __init__(self, reader: ShardReader):
        self.reader = reader
        ids = reader.sequence_ids()
        self.shards = np.array([s for s, _ in ids], dtype=np.int64)
        self.rows = np.array([r for _, r in ids], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def sequence_id(self, index: int) -> tuple[int, int]:
        return int(self.shards[index]), int(self.rows[index])

    def batch(self, indices: np.ndarray) -> Batch:
        tokens, channels, docs = [], [], []
        for i in indices:
            shard, row = self.sequence_id(int(i))
            tokens.append(np.asarray(self.reader.sequence(shard, row), dtype=np.int64))
            channels.append(self.reader.channel_ids(shard, row).astype(np.int64))
            doc = np.full(self.reader.seq_len + 1, -1, dtype=np.int64)
            for k, span in enumerate(self.reader.spans(shard, row)):
                doc[span["start"] : span["end"]] = k
            docs.append(doc)
        tok, chan, doc = (torch.from_numpy(np.stack(a)) for a in (tokens, channels, docs))
        return Batch(inputs=tok[:, :-1], targets=tok[:, 1:], target_channels=chan[:, 1:], doc_ids=doc[:, :-1])

    def describe(self, indices: np.ndarray) -> list[dict]:
        """Sequence and document ids of a batch, for the spike log."""
        out = []
        for i in indices:
            shard, row = self.sequence_id(int(i))
            docs = sorted({s["doc_id"] for s in self.reader.spans(shard, row)})
            out.append({"shard": shard, "row": row, "doc_ids": docs})
        return out
