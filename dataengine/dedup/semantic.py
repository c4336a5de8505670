"""Semantic deduplication (SemDeDup): near-identical meaning, different words.

Documents are embedded (any `Embedder`; by default the packaged offline
all-MiniLM-L6-v2 through sentence-transformers), faiss k-means is trained on
a bounded sample and assigns every document a cluster, and inside each
cluster a document is dropped when its cosine similarity to a better-ranked
kept document reaches the threshold. Cluster ids stay on the rows so later
ordering can group similar documents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dataengine.dedup import columns as C
from dataengine.dedup.config import SemanticConfig

if TYPE_CHECKING:
    from dataengine.embed.sentence import SentenceTransformerEmbedder


def train_centroids(sample: np.ndarray, cfg: SemanticConfig) -> np.ndarray:
    """faiss spherical k-means on a sample; k shrinks to the sample size when the corpus is small."""
    import faiss

    k = max(1, min(cfg.num_clusters, len(sample)))
    km = faiss.Kmeans(
        sample.shape[1], k, niter=cfg.kmeans_iters, seed=cfg.seed, spherical=True, verbose=False
    )
    km.train(np.ascontiguousarray(sample, dtype=np.float32))
    return km.centroids


def assign_clusters(emb: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return np.argmax(emb @ centroids.T, axis=1).astype(np.int32)


def dedup_cluster(part: dict[str, np.ndarray], threshold: float) -> dict[str, np.ndarray]:
    """Greedy SemDeDup inside each cluster: walk from best to worst, drop what is too close to a kept one.

    Columns in: _uid, id, _prio, _emb, _sem_cluster, dup_cluster_size. Out: one
    row per document with its decision; a survivor's dup_cluster_size absorbs
    the sizes of the documents dropped for it.
    """
    order = np.lexsort((part[C.UID], part[C.PRIO], part[C.SEM_CLUSTER]))
    uid, ids = part[C.UID][order], part[C.ID][order]
    cl, size = part[C.SEM_CLUSTER][order], part[C.DUP_CLUSTER_SIZE][order].astype(np.int64)
    emb = np.stack(part[C.EMB][order]).astype(np.float32) if len(order) else np.zeros((0, 1), np.float32)
    dup_of = np.full(len(uid), -1, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], cl[1:] != cl[:-1]])) if len(cl) else np.zeros(0, int)
    for s, e in zip(starts, np.concatenate([starts[1:], [len(cl)]]), strict=True):
        kept: list[int] = []
        for i in range(s, e):
            if kept:
                sims = emb[kept] @ emb[i]
                j = int(np.argmax(sims))
                if sims[j] >= threshold:
                    dup_of[i] = kept[j]
                    size[kept[j]] += size[i]
                    continue
            kept.append(i)
    dropped = dup_of >= 0
    return {
        C.UID: uid,
        C.SEM_CLUSTER: cl,
        C.SEM_REJECT: np.where(dropped, "dedup:semantic", "").astype(object),
        C.SEM_DUP_OF: np.where(dropped, ids[np.maximum(dup_of, 0)], "").astype(object),
        C.SEM_SIZE: size.astype(np.int32),
    }


def semantic_embedder(cfg: SemanticConfig) -> SentenceTransformerEmbedder:
    """The configured embedder; imported here, since torch costs seconds a job without semantic dedup skips."""
    from dataengine.embed.sentence import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(
        cfg.embedder, cfg.max_chars, cfg.batch_size, cfg.device, cfg.cpu_linear
    )
