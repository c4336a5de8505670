"""Sampling and batching of token shards (DESIGN §3.3) for the trainer.

The global sample order is a pure function of (seed, step, use counts): every process draws the same
global batch and takes its own slice, so the order does not depend on the number of processes and a
resume with another world size continues it. Per-channel mixing weights and the usage ledger's counts
(decay per use, a maximum number of repeats) shape the sampling weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dataengine.pack.shards import ShardReader


class DataExhaustedError(RuntimeError):
    """Fewer drawable sequences than a global batch needs (every other one hit usage.max_repeats)."""


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


class Sampler:
    """Weighted sampling without replacement within a step (Gumbel top-k), seeded by (seed, step).

    Weight of sequence i: channel_weight[c_i] / n_sequences(c_i) * decay ** uses_i, and 0 once
    uses_i >= max_repeats. `counts` holds the uses (from the ledger at the start of a run, then
    updated as steps commit); it is the sampler state a checkpoint saves.
    """

    def __init__(
        self,
        channels: np.ndarray,
        channel_names: list[str],
        *,
        seed: int,
        channel_weights: dict[str, float] | None = None,
        decay: float = 1.0,
        max_repeats: int | None = None,
        counts: np.ndarray | None = None,
    ):
        self.seed, self.decay, self.max_repeats = seed, decay, max_repeats
        self.counts = np.zeros(len(channels), dtype=np.int64) if counts is None else counts.astype(np.int64)
        self.base = self._base_weights(channels, channel_names, channel_weights or {})

    @staticmethod
    def _base_weights(channels: np.ndarray, names: list[str], weights: dict[str, float]) -> np.ndarray:
        if not weights:
            return np.ones(len(channels), dtype=np.float64)
        present = {names[c] for c in np.unique(channels)}
        unknown, missing = sorted(set(weights) - set(names)), sorted(present - set(weights))
        if unknown or missing:
            raise ValueError(
                f"data.channel_weights: unknown channels {unknown}, unnamed channels {missing} "
                f"(the shards have {names}; give every channel a weight, 0 to exclude it)"
            )
        sizes = np.bincount(channels, minlength=len(names)).astype(np.float64)
        per_channel = np.array([weights.get(n, 0.0) for n in names]) / np.maximum(sizes, 1.0)
        return per_channel[channels]

    def weights(self) -> np.ndarray:
        w = self.base * np.power(self.decay, self.counts, dtype=np.float64)
        if self.max_repeats is not None:
            w[self.counts >= self.max_repeats] = 0.0
        return w

    def draw(self, step: int, size: int) -> np.ndarray:
        """Global batch (sequence indices, in sample order) for 0-based `step`."""
        w = self.weights()
        drawable = int(np.count_nonzero(w))
        if drawable < size:
            raise DataExhaustedError(
                f"step {step}: only {drawable} sequences are still drawable, a batch needs {size} "
                f"(raise usage.max_repeats or add data)"
            )
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, step])))
        with np.errstate(divide="ignore"):
            keys = np.log(w) + rng.gumbel(size=len(w))
        top = np.argpartition(-keys, size - 1)[:size]
        return top[np.lexsort((top, -keys[top]))]

    def commit(self, indices: np.ndarray) -> None:
        np.add.at(self.counts, indices, 1)

    def uncommit(self, indices: np.ndarray) -> None:
        """Take back a commit (the trainer commits before it knows whether a step is accepted)."""
        np.subtract.at(self.counts, indices, 1)


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
