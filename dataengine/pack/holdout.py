"""Deterministic held-out selection by document-id hash.

The same rule decides which documents the tokenizer never trains on and which documents go to
the packed ``heldout`` split, so held-out compression and held-out loss are measured on text
the tokenizer has not seen. A hash of the id (not a random draw) makes the choice independent
of order, batching and the number of workers.
"""

from __future__ import annotations

import hashlib

_SCALE = float(1 << 64)


def id_fraction(doc_id: str, seed: int = 0) -> float:
    """A stable, uniform number in [0, 1) for a document id."""
    digest = hashlib.blake2b(f"{seed}\x00{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def is_heldout(doc_id: str, fraction: float, seed: int = 0) -> bool:
    return fraction > 0 and id_fraction(doc_id, seed) < fraction
