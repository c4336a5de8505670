"""Repeated n-grams over integer unit ids, for one document or a whole batch at once.

An n-gram can repeat only if both (n-1)-grams inside it repeat, so level n is built from the
candidates of level n-1 and, once repeats die out, longer n-grams cost nothing. Equal n-grams
get equal ids exactly (integer pairs densified by `np.unique`, no hashing).

A batch is one array: every document's ids shifted past the previous documents' ids, with a
never-repeating sentinel between documents, so no n-gram matches across documents and the
numpy calls are paid once per batch instead of once per document.
"""

from __future__ import annotations

import numpy as np

Level = tuple[np.ndarray, np.ndarray]  # start positions of repeating n-grams (ascending), their ids
_EMPTY: Level = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))


def first_level(units: np.ndarray) -> Level:
    """Positions and ids of the units that occur twice or more."""
    if len(units) == 0:
        return _EMPTY
    positions = np.flatnonzero(np.bincount(units)[units] > 1)
    return positions, units[positions]


def next_level(units: np.ndarray, previous: Level, n: int) -> Level:
    """Level n (n >= 2) from level n-1."""
    prev_positions, prev_ids = previous
    if prev_positions.size == 0 or len(units) < n:
        return _EMPTY
    id_at = np.full(len(units) + 1, -1, dtype=np.int64)
    id_at[prev_positions] = prev_ids
    starts = prev_positions[prev_positions <= len(units) - n]
    starts = starts[id_at[starts + 1] >= 0]
    pairs = id_at[starts] * (len(units) + 1) + units[starts + n - 1]
    _, ids, counts = np.unique(pairs, return_inverse=True, return_counts=True)
    keep = counts[ids] > 1
    return starts[keep], ids[keep]


class BatchRepeats:
    """Repeated n-grams of a batch of documents (their `unit_ids` and `unit_length_cumsum`), with
    the two Gopher measures computed for every document at once."""

    def __init__(self, unit_ids: list[np.ndarray], length_cumsums: list[np.ndarray]):
        sizes = np.array([len(u) for u in unit_ids], dtype=np.int64)
        vocab = np.array([int(u.max()) + 1 if len(u) else 0 for u in unit_ids], dtype=np.int64)
        id_offset = np.cumsum(vocab) - vocab
        sentinels = int(vocab.sum()) + np.arange(len(unit_ids))
        parts, lengths = [], []
        for ids, offset, sentinel, cumsum in zip(unit_ids, id_offset, sentinels, length_cumsums, strict=True):
            parts += [ids + offset, [sentinel]]
            lengths += [np.diff(cumsum), [0]]
        self.units = np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)
        self.cumsum = (
            np.concatenate(([0], np.cumsum(np.concatenate(lengths)))) if lengths else np.zeros(1, np.int64)
        )
        self.sizes = sizes
        self.starts = np.cumsum(sizes + 1) - (sizes + 1)
        self._levels: dict[int, Level] = {1: first_level(self.units)}

    def level(self, n: int) -> Level:
        for k in range(max(self._levels) + 1, n + 1):
            self._levels[k] = next_level(self.units, self._levels[k - 1], k)
        return self._levels[n]

    def _chars(self, positions: np.ndarray, n: int) -> np.ndarray:
        return self.cumsum[positions + n] - self.cumsum[positions]

    def _in_docs(self, n: int, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Level n restricted to the documents flagged in `docs`, with each position's document."""
        positions, ids = self.level(n)
        doc_of = np.searchsorted(self.starts, positions, side="right") - 1
        chosen = docs[doc_of]
        return positions[chosen], ids[chosen], doc_of[chosen]

    def top_ngram_chars(self, n: int, docs: np.ndarray, separators: np.ndarray) -> np.ndarray:
        """Per document: characters covered by its most frequent n-gram (first seen wins a tie), its
        length (units joined by `separators[doc]` characters) times its count; with no repeat, the
        first n-gram once. 0 for documents not flagged or shorter than n."""
        top = np.zeros(len(self.sizes), dtype=np.int64)
        first = docs & (self.sizes >= n)
        top[first] = self._chars(self.starts[first], n) + separators[first] * (n - 1)
        positions, ids, doc_of = self._in_docs(n, docs)
        if positions.size:
            counts = np.bincount(ids)[ids]
            order = np.lexsort((positions, -counts, doc_of))  # per document: highest count, then first
            leaders = order[np.r_[True, doc_of[order][1:] != doc_of[order][:-1]]]
            d = doc_of[leaders]
            top[d] = (self._chars(positions[leaders], n) + separators[d] * (n - 1)) * counts[leaders]
        return top

    def duplicated_ngram_chars(self, n: int, docs: np.ndarray) -> np.ndarray:
        """Per document: characters of n-grams that repeat an earlier, non-overlapping n-gram.

        Gopher's scan (after a repeat, jump n units ahead; n-grams jumped over are not
        remembered), visiting only positions whose n-gram occurs twice or more. Ids never
        match across documents and a jump never passes a sentinel, so one scan serves the batch.
        """
        totals = [0] * len(self.sizes)
        positions, ids, doc_of = self._in_docs(n, docs)
        seen: set[int] = set()
        next_free = 0
        for i, key, d, chars in zip(
            positions.tolist(), ids.tolist(), doc_of.tolist(), self._chars(positions, n).tolist(), strict=True
        ):
            if i < next_free:
                continue
            if key in seen:
                totals[d] += chars
                next_free = i + n
            else:
                seen.add(key)
        return np.array(totals, dtype=np.int64)
