"""Which document of a duplicate group survives.

The rule becomes one float per document (lower is better) with the row id as
tie-break, so "best of a group" is a total order: the best of a union of
groups is the best of their bests, which lets exact groups, MinHash
components and semantic clusters pick survivors independently and agree.
"""

from __future__ import annotations

import numpy as np

from dataengine.dedup import columns as C
from dataengine.dedup.config import SurvivorRule


def priority(rule: SurvivorRule, quality: np.ndarray | None, length: np.ndarray) -> np.ndarray:
    """Lower is better: highest quality (missing quality ranks last), longest, or earliest (all equal)."""
    if rule == "quality":
        if quality is None:
            raise ValueError("survivor rule 'quality' needs the quality column")
        q = np.asarray(quality, dtype=np.float64)
        return np.where(np.isnan(q), np.inf, -q)
    if rule == "longest":
        return -np.asarray(length, dtype=np.float64)
    if rule == "earliest":
        return np.zeros(len(length), dtype=np.float64)
    raise ValueError(f"unknown survivor rule {rule!r}; expected quality, longest or earliest")


def decide_components(part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Members of duplicate components -> one survivor each; the rest are exact or MinHash duplicates of it.

    Columns in: _uid, _comp, id, _prio, _exact_best (a member whose exact group
    has a better member is an exact duplicate), optionally _url_best (likewise
    for its URL group; an exact duplicate is reported as exact). External members (negative
    uids: documents of earlier batches from the incremental index) rank first
    and are never written. "No value" is "" (see writer.is_str).
    """
    uid, idx = np.unique(part[C.UID], return_index=True)
    comp, ids = part[C.COMP][idx], part[C.ID][idx]
    prio, exact_best = part[C.PRIO][idx], part[C.EXACT_BEST][idx]
    url_best = part[C.URL_BEST][idx] if C.URL_BEST in part else uid
    order = np.lexsort((uid, prio, comp))
    uid, comp, ids, prio = uid[order], comp[order], ids[order], prio[order]
    exact_best, url_best = exact_best[order], url_best[order]
    starts = np.flatnonzero(np.concatenate([[True], comp[1:] != comp[:-1]]))
    sizes = np.diff(np.concatenate([starts, [len(comp)]]))
    head = np.repeat(starts, sizes)  # the best member of each component comes first
    survivor_id = ids[head]
    is_survivor = np.arange(len(uid)) == head
    reason = np.where(
        exact_best != uid, "dedup:exact", np.where(url_best != uid, "dedup:url", "dedup:minhash")
    )
    reject = np.where(is_survivor, "", reason)
    real = uid >= 0
    return {
        C.UID: uid[real],
        C.DECIDED_REJECT: reject[real].astype(object),
        C.DUPLICATE_OF: np.where(is_survivor, "", survivor_id)[real].astype(object),
        C.DUP_CLUSTER: survivor_id[real].astype(object),
        C.DUP_CLUSTER_SIZE: np.repeat(sizes - (uid[starts] < 0), sizes)[real].astype(np.int32),
    }
