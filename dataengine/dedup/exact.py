"""Exact duplicates: documents whose (normalized) text hashes to the same 64 bits.

Grouping happens in a Ray Data groupby on the hash, so no process ever holds
a set of all hashes; each group marks its best member by the survivor rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from dataengine.dedup import survivors


def normalize_exact(text: str) -> str:
    """Case and spacing do not make a different document."""
    return " ".join(text.lower().split())


def text_hashes(texts: Sequence[str | None], normalize: bool = True) -> np.ndarray:
    """Signed 64-bit BLAKE2b of each text (missing text hashes like the empty string)."""
    out = np.empty(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        t = t or ""
        key = normalize_exact(t) if normalize else t
        out[i] = int.from_bytes(
            hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little", signed=True
        )
    return out


def mark_group(group: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """For one hash group: the best member's uid and the group size, on every row."""
    n = len(group["_uid"])
    i = survivors.best(group["_prio"], group["_uid"])
    group["_exact_best"] = np.full(n, group["_uid"][i], dtype=np.int64)
    group["_exact_size"] = np.full(n, n, dtype=np.int32)
    return group
