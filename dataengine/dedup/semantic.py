"""Semantic deduplication: SemDeDup (Abbas et al. 2023, arXiv:2303.09540) on any `Embedder`.

1. Embed every document still alive after exact and MinHash dedup, once, with the shared embedder of
   ``dataengine.embed`` (``semantic.embed``; by default the multilingual hashed TF-IDF + LSA one, fitted
   on a seeded sample of the corpus; or a sentence-transformers model, on a GPU when there is one).
2. faiss spherical k-means on a bounded seeded sample of the embeddings; every document is assigned to
   its most similar centroid in a streaming pass over batches (`assign_clusters`).
3. In each cluster (one group, one task) the documents are ordered by the keep rule (`sort_keys`) and, in
   blocks of ``block_rows`` rows (never an n x n matrix), each document gets ``M`` = its highest cosine
   similarity to a document earlier in that order, and ``NN`` = to any other document of the cluster
   (`cluster_similarities`). As in the paper, a document is removed when ``M > 1 - epsilon``: the first
   of every group of near-duplicates stays. ``M`` does not depend on epsilon, so how many documents any
   epsilon would remove is exact from the one pass (the semantic report's sweep, ``keep_fraction``).
4. Decisions per cluster (`resolve_cluster`): a removed document names the kept document its chain of
   nearest earlier neighbours ends at; the survivor's ``dup_cluster_size`` absorbs the removed ones'.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dataengine.dedup import columns as C
from dataengine.dedup import files
from dataengine.dedup.config import EPSILON_SWEEP, SemanticConfig
from dataengine.embed import Embedder, cache, make_embedder, worker_embedder
from dataengine.embed.config import EmbedConfig

HIST_BINS = 2000  # cosine histogram over [-1, 1]: bins of 0.001


def needs_fit(cfg: EmbedConfig) -> bool:
    return cfg.embedder == "hashed"


def semantic_embedder(cfg: SemanticConfig) -> Embedder:
    """The configured embedder (unfitted). torch is imported only for a model embedder."""
    return make_embedder(cfg.embed)


def texts_of(group: dict[str, np.ndarray], paths: Sequence[str]) -> dict[str, np.ndarray]:
    """The texts of one input file's rows (`_uid`, `_cut_text`: a decontamination cut replaces the text)."""
    order = np.argsort(group[C.UID], kind="stable")
    uid = group[C.UID][order]
    table = files.read_columns(paths[int(files.file_of(uid[:1])[0])], ["text"])
    texts = table.column("text").take(files.row_of(uid)).to_pylist()
    cut = group[C.CUT_TEXT][order]
    return {
        C.UID: uid,
        C.TEXT: np.array([c if c else (t or "") for t, c in zip(texts, cut, strict=True)], dtype=object),
    }


def embed_file(
    group: dict[str, np.ndarray],
    paths: Sequence[str],
    cfg_json: str,
    fitted: Embedder | None,
    embed_batch: int,
) -> dict[str, np.ndarray]:
    """One input file's alive rows -> `_uid`, `_emb`, `_emb_key`, `_lang`, `_length`, `_quality`, `id`, `dup_cluster_size`.
    The rows are embedded in uid order, ``embed_batch`` at a time, so the vectors do not depend on the executor."""
    order = np.argsort(group[C.UID], kind="stable")
    g = {k: v[order] for k, v in group.items()}
    uid = g[C.UID]
    table = files.read_columns(paths[int(files.file_of(uid[:1])[0])], ["text", "lang", "quality"])
    rows = files.row_of(uid)
    texts = table.column("text").take(rows).to_pylist()
    texts = [c if c else (t or "") for t, c in zip(texts, g[C.CUT_TEXT], strict=True)]
    embedder = fitted or worker_embedder(cfg_json)
    emb = (
        np.concatenate([embedder(texts[lo : lo + embed_batch]) for lo in range(0, len(texts), embed_batch)])
        if texts
        else None
    )
    quality = table.column("quality").take(rows).to_numpy(zero_copy_only=False).astype(np.float64)
    return {
        C.UID: uid,
        C.EMB_KEY: cache.text_keys(texts),
        C.ID: g[C.ID],
        C.DUP_CLUSTER_SIZE: g[C.DUP_CLUSTER_SIZE],
        C.EMB: emb.astype(np.float32) if emb is not None else np.zeros((0, 1), np.float32),
        C.SEM_LANG: np.array(
            [x or "unknown" for x in table.column("lang").take(rows).to_pylist()], dtype=object
        ),
        C.SEM_LENGTH: np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)),
        C.SEM_QUALITY: quality,
    }


def rows_of(column: np.ndarray, dim: int | None = None) -> np.ndarray:
    """An embedding column as a float32 [rows, dim] matrix (Ray hands a batch over as a 2-D array, or
    as an object column of per-row arrays)."""
    emb = np.asarray(column)
    if emb.ndim == 1:
        emb = np.stack(emb) if len(emb) else np.zeros((0, dim or 1), np.float32)
    return np.asarray(emb, dtype=np.float32)


def cache_part_of(b: dict[str, np.ndarray], parts: int) -> dict[str, np.ndarray]:
    """The cache part of each row: a function of its key, so equal texts meet in one part."""
    part = np.fromiter((int(k[:8], 16) % parts for k in b[C.EMB_KEY].tolist()), np.int64, len(b[C.EMB_KEY]))
    return {**b, C.EMB_PART: part}


def write_cache_part(group: dict[str, np.ndarray], folder: str) -> dict[str, np.ndarray]:
    """One part of the run's embedding cache: the rows of one key range, each key once (the row with
    the smallest uid: equal texts have equal vectors)."""
    order = np.lexsort((group[C.UID], group[C.EMB_KEY]))
    keys = group[C.EMB_KEY][order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    emb = rows_of(group[C.EMB])[order][first]
    part = int(group[C.EMB_PART][0])
    rows = cache.write_part(folder, part, keys[first], emb)
    return {"part": np.array([part]), "rows": np.array([rows]), "dim": np.array([emb.shape[1]])}


def train_centroids(sample: np.ndarray, cfg: SemanticConfig, documents: int | None = None) -> np.ndarray:
    """faiss spherical k-means on a sample, k = cfg.clusters_for(documents, len(sample))."""
    import faiss

    k = cfg.clusters_for(len(sample) if documents is None else documents, len(sample))
    km = faiss.Kmeans(
        sample.shape[1], k, niter=cfg.kmeans_iters, seed=cfg.seed, spherical=True, verbose=False
    )
    km.train(np.ascontiguousarray(sample, dtype=np.float32))
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


def assign_clusters(
    emb: np.ndarray, centroids: np.ndarray, batch_rows: int = 8192
) -> tuple[np.ndarray, np.ndarray]:
    """(cluster, cosine to its centroid) per row: the most similar centroid (the first on a tie), computed
    in float64 a batch of rows at a time. Each row's result depends on that row alone, so any split into
    batches (Ray's blocks, the local executor's whole column) gives the in-memory argmax exactly."""
    c64 = np.asarray(centroids, dtype=np.float64)
    clusters = np.empty(len(emb), dtype=np.int32)
    cosine = np.empty(len(emb), dtype=np.float64)
    for lo in range(0, len(emb), batch_rows):
        e64 = np.asarray(emb[lo : lo + batch_rows], dtype=np.float64)
        best = np.argmax(e64 @ c64.T, axis=1)
        clusters[lo : lo + len(e64)] = best
        cosine[lo : lo + len(e64)] = np.einsum("ij,ij->i", e64, c64[best])
    return clusters, cosine


def sort_keys(rule: str, centroid_cosine: np.ndarray, quality: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Lower goes first (and so stays): hard = least similar to the centroid, easy = most similar,
    quality = highest score (unscored last), longest = most characters."""
    if rule == "hard":
        return np.asarray(centroid_cosine, dtype=np.float64)
    if rule == "easy":
        return -np.asarray(centroid_cosine, dtype=np.float64)
    if rule == "quality":
        q = np.asarray(quality, dtype=np.float64)
        return np.where(np.isnan(q), np.inf, -q)
    if rule == "longest":
        return -np.asarray(length, dtype=np.float64)
    raise ValueError(f"unknown semantic.keep {rule!r}; expected hard, easy, quality or longest")


def similarities(emb: np.ndarray, block: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows in keep order: M = highest cosine to an earlier row (-inf for the first), A = that row's
    index (-1; the earliest on a tie), NN = highest cosine to any other row (-inf when alone).

    Only lower-triangle blocks of ``block`` x ``block`` similarities are formed (each serves both of its
    rows' and columns' NN), so memory is O(block^2 + n) for a cluster of any size."""
    n = len(emb)
    m = np.full(n, -np.inf, dtype=np.float32)
    a = np.full(n, -1, dtype=np.int64)
    nn = np.full(n, -np.inf, dtype=np.float32)
    e = np.ascontiguousarray(emb, dtype=np.float32)
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        rows = e[r0:r1]
        for c0 in range(0, r1, block):  # columns up to and including the diagonal block
            c1 = min(n, c0 + block)
            s = rows @ e[c0:c1].T
            if c0 == r0:  # the diagonal block: only columns before each row count as earlier
                s[np.triu_indices(r1 - r0, 0, c1 - c0)] = -np.inf
            best = np.argmax(s, axis=1)
            val = s[np.arange(r1 - r0), best]
            better = val > m[r0:r1]  # strict: an earlier block's equal maximum (an earlier row) stays
            m[r0:r1] = np.where(better, val, m[r0:r1])
            a[r0:r1] = np.where(better, c0 + best, a[r0:r1])
            nn[r0:r1] = np.maximum(nn[r0:r1], val)
            if c0 < r0 or r1 - r0 > 1:  # the transposed block updates the columns' NN
                nn[c0:c1] = np.maximum(nn[c0:c1], s.max(axis=0))
    return m, a, nn


def cluster_similarities(part: dict[str, np.ndarray], block_rows: int) -> dict[str, np.ndarray]:
    """One cluster (a Ray task): its rows in keep order with M, the uid of the earlier row it is closest
    to, and NN. Columns in: _uid, id, _emb, _sem_cluster, _sem_key, _sem_lang, dup_cluster_size."""
    order = np.lexsort((part[C.UID], part[C.SEM_KEY]))
    emb = np.stack(part[C.EMB][order]) if len(order) else np.zeros((0, 1), np.float32)
    m, a, nn = similarities(emb, block_rows)
    uid = part[C.UID][order]
    return {
        C.UID: uid,
        C.ID: part[C.ID][order],
        C.SEM_CLUSTER: part[C.SEM_CLUSTER][order],
        C.SEM_POS: np.arange(len(order), dtype=np.int64),
        C.SEM_LANG: part[C.SEM_LANG][order],
        C.SEM_M: m.astype(np.float64),
        C.SEM_A: np.where(a >= 0, uid[np.maximum(a, 0)] if len(uid) else a, -1).astype(np.int64),
        C.SEM_NN: nn.astype(np.float64),
        C.DUP_CLUSTER_SIZE: part[C.DUP_CLUSTER_SIZE][order],
    }


def resolve_cluster(
    part: dict[str, np.ndarray], thresholds: dict[str, float], default: float
) -> dict[str, np.ndarray]:
    """A cluster's decisions: removed when M > the threshold (1 - epsilon) of the row's language; a
    removed row names the kept row its chain of closest earlier rows ends at (that row's
    dup_cluster_size absorbs its). Rows arrive in any order; `_sem_pos` is the keep order."""
    order = np.argsort(part[C.SEM_POS], kind="stable")
    uid, ids = part[C.UID][order], part[C.ID][order]
    langs, m, a = part[C.SEM_LANG][order], part[C.SEM_M][order], part[C.SEM_A][order]
    size = part[C.DUP_CLUSTER_SIZE][order].astype(np.int64)
    limit = np.array([thresholds.get(x, default) for x in langs.tolist()], dtype=np.float64)
    removed = m > limit
    index = {int(u): i for i, u in enumerate(uid.tolist())}
    root = np.arange(len(uid))
    for i in np.flatnonzero(removed):  # in keep order: the earlier row's root is already final
        root[i] = root[index[int(a[i])]]
    np.add.at(size, root[removed], size[removed])
    return {
        C.UID: uid,
        C.SEM_CLUSTER: part[C.SEM_CLUSTER][order],
        C.SEM_REJECT: np.where(removed, "dedup:semantic", "").astype(object),
        C.SEM_DUP_OF: np.where(removed, ids[root], "").astype(object),
        C.SEM_SIZE: size.astype(np.int32),
    }


class SimilarityStats:
    """Per language, streamed over batches of (lang, M, NN): histograms of both and, for every swept
    epsilon, the exact count of documents it would remove (M > 1 - epsilon)."""

    def __init__(self, sweep: Sequence[float] = EPSILON_SWEEP) -> None:
        self.sweep = tuple(sweep)
        self.langs: dict[str, dict[str, Any]] = {}

    def _lang(self, lang: str) -> dict[str, Any]:
        if lang not in self.langs:
            self.langs[lang] = {
                "documents": 0,
                "alone": 0,
                "m_hist": np.zeros(HIST_BINS, np.int64),
                "nn_hist": np.zeros(HIST_BINS, np.int64),
                "removed": np.zeros(len(self.sweep), np.int64),
            }
        return self.langs[lang]

    def add(self, langs: np.ndarray, m: np.ndarray, nn: np.ndarray) -> None:
        langs = np.asarray([x or "unknown" for x in langs.tolist()], dtype=object)
        limits = 1.0 - np.asarray(self.sweep)
        for lang in np.unique(langs).tolist():
            sel = langs == lang
            s = self._lang(lang)
            mm, nnv = np.asarray(m[sel], np.float64), np.asarray(nn[sel], np.float64)
            s["documents"] += int(sel.sum())
            s["alone"] += int(np.isinf(nnv).sum())
            s["m_hist"] += _hist(mm[np.isfinite(mm)])
            s["nn_hist"] += _hist(nnv[np.isfinite(nnv)])
            s["removed"] += (mm[:, None] > limits[None, :]).sum(axis=0)

    def epsilon_for(self, lang: str, keep_fraction: float) -> float:
        """The smallest epsilon on the 0.001 grid whose removals leave at least keep_fraction kept
        (M values in a bin count as above its lower edge)."""
        s = self.langs[lang]
        allowed = (1.0 - keep_fraction) * s["documents"]
        above = np.cumsum(s["m_hist"][::-1])[::-1]  # documents with M in bin k or higher
        for k in range(HIST_BINS):  # lowest threshold edge first = largest epsilon
            if above[k] <= allowed:
                return round(1.0 - (-1.0 + 2.0 * k / HIST_BINS), 6)
        return 0.0

    def summary(self, epsilons: dict[str, float], full: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for lang, s in sorted(self.langs.items()):
            n = s["documents"]
            row: dict[str, Any] = {
                "documents": n,
                "alone_in_cluster": s["alone"],
                "nn_cosine_quantiles": _quantiles(s["nn_hist"]),
                "sweep": [
                    {"epsilon": e, "removed": int(r), "kept_fraction": round((n - r) / n, 6) if n else None}
                    for e, r in zip(self.sweep, s["removed"].tolist(), strict=True)
                ],
                "epsilon": epsilons.get(lang),
            }
            if full:
                row["nn_cosine_histogram"] = _hist_rows(s["nn_hist"])
                row["m_cosine_histogram"] = _hist_rows(s["m_hist"])
            out[lang] = row
        return out


def _hist(x: np.ndarray) -> np.ndarray:
    k = np.clip(((x + 1.0) / 2.0 * HIST_BINS).astype(np.int64), 0, HIST_BINS - 1)
    return np.bincount(k, minlength=HIST_BINS)


def _quantiles(hist: np.ndarray, qs: Sequence[float] = (0.01, 0.1, 0.5, 0.9, 0.99, 1.0)) -> dict[str, float]:
    total = int(hist.sum())
    if not total:
        return {}
    cum = np.cumsum(hist)
    out = {}
    for q in qs:
        k = int(np.searchsorted(cum, max(1, q * total)))
        out[f"p{round(q * 100):d}"] = round(-1.0 + 2.0 * (k + 1) / HIST_BINS, 3)  # the bin's upper edge
    return out


def _hist_rows(hist: np.ndarray, width: float = 0.01) -> list[list[float]]:
    """[lower edge, count] in bins of ``width`` (non-empty only)."""
    per = max(1, round(width / (2.0 / HIST_BINS)))
    coarse = hist.reshape(-1, per).sum(axis=1)
    return [[round(-1.0 + i * width, 4), int(c)] for i, c in enumerate(coarse.tolist()) if c]
