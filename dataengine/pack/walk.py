"""In-Context Pretraining's traversal of one partition: faiss kNN, then a greedy walk into chains.

The walk starts from a random unused document (seeded), goes to the first unused neighbour in
rank order, and restarts when no neighbour is left or the chain is full; every document lands in
exactly one chain. A neighbour is passed over when it is a near-duplicate of the current document
(it stays unused and starts or joins another chain) or would lengthen a run of one category past the
cap. Chains shorter than ``min_docs`` are merged in walk order, as ICP merges its short paths.
"""

from __future__ import annotations

import math

import numpy as np

from dataengine.pack.config import KnnConfig, SimilarOrderConfig


def nearest_neighbours(emb: np.ndarray, cfg: KnnConfig) -> np.ndarray:
    """[n, k] indices of each row's nearest other rows by inner product (-1 where fewer exist)."""
    import faiss

    n, dim = emb.shape
    k = min(cfg.k, n - 1)
    if k <= 0:
        return np.full((n, 0), -1, dtype=np.int64)
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    if n <= cfg.exact_max:
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = cfg.nlist or max(1, int(math.sqrt(n)))
        quantizer = faiss.IndexFlatIP(dim)
        if cfg.pq_m:
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, cfg.pq_m, 8, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = 1234
        index.cp.max_points_per_centroid = 64  # the coarse k-means trains on a sample, not the partition
        index.train(emb)
        index.nprobe = cfg.nprobe
    index.add(emb)
    _, found = index.search(emb, k + 1)
    # drop each row's own index (usually first; absent when the approximate search missed it)
    own = found == np.arange(n)[:, None]
    keep = ~own
    keep[own.sum(axis=1) == 0, -1] = False
    return found[keep].reshape(n, k)


def greedy_chains(
    emb: np.ndarray,
    neighbours: np.ndarray,
    cfg: SimilarOrderConfig,
    rng: np.random.Generator,
    categories: list[str | None] | None = None,
) -> list[list[int]]:
    """The partition's documents as chains of row indices, each row in exactly one chain."""
    n = len(emb)
    used = np.zeros(n, dtype=bool)
    cap = cfg.category_run if categories is not None else None
    chains: list[list[int]] = []
    for start in rng.permutation(n).tolist():
        if used[start]:
            continue
        chain, current, run = [start], start, 1
        used[start] = True
        while len(chain) < cfg.max_chain_docs:
            step = None
            for candidate in neighbours[current].tolist():
                if candidate < 0 or used[candidate]:
                    continue
                if float(emb[current] @ emb[candidate]) >= cfg.near_duplicate:
                    continue
                same = cap is not None and categories[candidate] == categories[current]
                if same and run >= cap:
                    continue
                step = candidate
                run = run + 1 if same else 1
                break
            if step is None:
                break
            used[step] = True
            chain.append(step)
            current = step
        chains.append(chain)
    return merge_short(chains, cfg.min_chain_docs, cfg.max_chain_docs, emb, cfg.near_duplicate)


def merge_short(
    chains: list[list[int]], min_docs: int, max_docs: int, emb: np.ndarray, near_duplicate: float
) -> list[list[int]]:
    """Chains of fewer than ``min_docs`` joined in order into chains of at most ``max_docs``; a short
    chain that would start next to a near-duplicate is joined reversed, or starts a new chain."""
    out: list[list[int]] = []
    pending: list[int] = []
    for chain in chains:
        if len(chain) >= min_docs:
            out.append(chain)
            continue
        if pending and float(emb[pending[-1]] @ emb[chain[0]]) >= near_duplicate:
            chain = chain[::-1]
        joins = not pending or float(emb[pending[-1]] @ emb[chain[0]]) < near_duplicate
        if pending and (len(pending) + len(chain) > max_docs or not joins):
            out.append(pending)
            pending = []
        pending = pending + chain
    if pending:
        out.append(pending)
    return out
