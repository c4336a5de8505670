"""Phase 2's named passes, written once for both executors (dedup/executors.py).

Every pass has the signature ``pass(job) -> rows`` and reads and sets datasets on the `Job`:
  meta        per input file: row ids, text hash, survivor priority, MinHash signature, benchmark
              contamination; no text travels further;
  url         (exact.url) best member of each normalized-URL group;
  exact       best member of each text-hash group;
  lsh         duplicate edges: exact and URL groups, LSH candidates verified by true Jaccard, hits in
              the persistent incremental index;
  components  connected components of the edges, one survivor per component by the survivor rule;
  decisions   every row's decision: a component's, else its own one-document cluster (or decontam);
  semantic    (semantic.enabled) SemDeDup on the documents still kept: embedded once each, k-means
              clusters, in-cluster similarities in blocks, near-duplicates in meaning dropped;
  embedding_cache  (semantic.write_embeddings) those vectors into OUT/embeddings/ for pack;
  write       each input file read once and split into kept/ and rejected/ (dedup/writer.py);
  decontam_report, index_insert: the benchmark report, and the survivors added to the index.
`run` runs them in order and logs one line per pass (logger ``dataengine.dedup``, INFO).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from dataengine.dedup import columns as C
from dataengine.dedup import exact as exact_mod
from dataengine.dedup import files, lsh, semantic, survivors, writer
from dataengine.dedup.config import DedupConfig
from dataengine.dedup.decontam import BenchmarkIndex, scan
from dataengine.dedup.minhash import minhash_signatures, signatures_from_column, stored_signatures_match
from dataengine.dedup.writer import is_str, str_col
from dataengine.embed import cache

log = logging.getLogger("dataengine.dedup")
_CHUNK = 2000
CACHE_PART_ROWS = 100_000  # rows per embedding-cache file (~100 MB at 256 dimensions)


@dataclass
class Job:
    """One dedup job's settings and the datasets its passes hand each other."""

    ex: Any  # executors.RayExecutor | executors.LocalExecutor
    cfg: DedupConfig
    inputs: list[files.InputFile]
    bench: BenchmarkIndex | None
    out: str  # the output folder: a local path or a URI
    meta: Any = None
    eligible: Any = None
    marked: Any = None
    edges: Any = None
    attrs: list[Any] = field(default_factory=list)
    decided: Any = None
    decisions: Any = None
    written: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    signatures_stored: int | None = None
    semantic: dict[str, Any] = field(default_factory=dict)
    semantic_stats: Any = None  # semantic.SimilarityStats of the run (the full report's histograms)
    embedded: Any = None  # the semantic pass's vectors (and the fitted embedder): the embedding cache
    fitted: Any = None
    embedding_cache: dict[str, Any] = field(default_factory=dict)

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.inputs]


class MetaReader:
    """Pass 1: one input file in, one small row per document out (no text)."""

    def __init__(self, paths: Sequence[str], cfg: DedupConfig, bench: BenchmarkIndex | None):
        self.paths, self.cfg, self.bench = list(paths), cfg, bench

    def __call__(self, batch: dict[str, np.ndarray]) -> Iterator[dict[str, Any]]:
        for f in batch["file"].tolist():
            columns = ["id", "text", "lang", "quality"]
            if self.cfg.exact.url:
                columns.append("url")
            schema = files.read_schema(self.paths[f])
            if self.cfg.minhash.enabled and stored_signatures_match(schema, self.cfg.minhash):
                columns.append("minhash")
            table = files.read_columns(self.paths[f], columns)
            uid_all = files.uids(f, table.num_rows)
            for lo in range(0, table.num_rows, _CHUNK):
                yield self._chunk(table.slice(lo, _CHUNK), uid_all[lo : lo + _CHUNK])

    def _chunk(self, t: pa.Table, uid: np.ndarray) -> dict[str, Any]:
        cfg = self.cfg
        texts = [x or "" for x in t.column("text").to_pylist()]
        langs = t.column("lang").to_pylist()
        out: dict[str, Any] = {C.UID: uid, C.ID: np.array(t.column("id").to_pylist(), dtype=object)}
        contam = np.full(len(texts), "", dtype=object)
        drop = np.zeros(len(texts), dtype=bool)
        cut = np.full(len(texts), "", dtype=object)
        ngrams = np.zeros(len(texts), dtype=np.int32)
        if self.bench is not None:
            found = scan(texts, langs, self.bench, cfg.decontam)
            contam[:] = [b or "" for b in found.benchmark]
            ngrams[:] = found.ngrams
            for i, b in enumerate(found.benchmark):
                if b is None:
                    continue
                if (
                    cfg.decontam.policy == "cut"
                    and len(found.cut_text[i].strip()) >= cfg.decontam.min_chars_after_cut
                ):
                    cut[i] = found.cut_text[i]
                    texts[i] = found.cut_text[i]
                else:
                    drop[i] = True
        quality = t.column("quality").to_numpy(zero_copy_only=False).astype(np.float64)
        length = np.fromiter((len(x) for x in texts), dtype=np.int64, count=len(texts))
        out.update(
            {
                C.HASH: exact_mod.text_hashes(texts, cfg.exact.normalize),
                C.PRIO: survivors.priority(cfg.survivor, quality, length),
                C.CONTAM: contam,
                C.CONTAM_NGRAMS: ngrams,
                C.DROP: drop,
                C.CUT_TEXT: cut,
            }
        )
        if cfg.exact.url:
            out[C.URL_HASH], out[C.HAS_URL] = exact_mod.url_hashes(t.column("url").to_pylist())
        if cfg.minhash.enabled:
            out[C.SIG], out[C.SIG_STORED] = self._signatures(t, texts, langs, is_str(cut))
        return out

    def _signatures(
        self, t: pa.Table, texts: list[str], langs: list[str | None], changed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Phase 1's stored signatures where usable (same parameters, text not cut since); the rest computed."""
        mcfg = self.cfg.minhash
        if "minhash" not in t.column_names:
            return minhash_signatures(texts, langs, mcfg), np.zeros(len(texts), dtype=bool)
        sig, stored = signatures_from_column(t.column("minhash"), mcfg.num_perm)
        stored &= ~changed
        redo = np.flatnonzero(~stored)
        if len(redo):
            sig[redo] = minhash_signatures([texts[i] for i in redo], [langs[i] for i in redo], mcfg)
        return sig, stored


class IndexQuery:
    """Rows whose signature hits a document of an earlier batch -> edge to that document's external node."""

    def __init__(self, cfg: DedupConfig):
        from dataengine.dedup.incremental import IncrementalIndex  # datasketch: only for incremental runs

        self.index = IncrementalIndex(cfg.incremental, cfg.minhash)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from dataengine.dedup.incremental import external_uid

        hits = self.index.query(np.asarray(batch[C.SIG], dtype=np.uint32))
        found = [i for i, h in enumerate(hits) if h is not None]
        keys = [hits[i] for i in found]
        return {
            C.X: batch[C.UID][found].astype(np.int64),
            C.Y: np.array([external_uid(k) for k in keys], dtype=np.int64),
            C.ID: np.array(keys, dtype=object),
        }


# Row-wise helpers (numpy batches in, numpy batches out), shared by the passes on both executors.


def with_part(b: dict[str, np.ndarray], src: str, dst: str, parts: int) -> dict[str, np.ndarray]:
    """A grouping key: a partition of a hash, so a shuffle has `parts` groups, not one per hash."""
    return {**b, dst: b[src] % parts}


def edges_of(b: dict[str, np.ndarray], x: str, y: str) -> dict[str, np.ndarray]:
    return {C.X: b[x].astype(np.int64), C.Y: b[y].astype(np.int64)}


def mark_url_partition(part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Best member per URL group (rows without a URL are their own best); see exact.mark_partition."""
    has = part[C.HAS_URL].astype(bool)
    with_url = exact_mod.mark_partition(
        {k: v[has] for k, v in part.items()}, key=C.URL_HASH, best=C.URL_BEST, size=C.URL_SIZE
    )
    without = {k: v[~has] for k, v in part.items()}
    without[C.URL_BEST] = without[C.UID].astype(np.int64)
    without[C.URL_SIZE] = np.ones(len(without[C.UID]), dtype=np.int32)
    return {k: np.concatenate([with_url[k], without[k]]) for k in with_url}


def default_decisions(b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every row starts as its own one-document cluster; contaminated rows dropped under `drop`."""
    n = len(b[C.UID])
    reject = np.array(
        [f"decontam:{c}" if d else "" for c, d in zip(b[C.CONTAM], b[C.DROP], strict=True)], dtype=object
    )
    out = {
        C.UID: b[C.UID],
        C.REJECT: reject,
        C.DUPLICATE_OF: np.full(n, "", dtype=object),
        C.DUP_CLUSTER: b[C.ID],
        C.DUP_CLUSTER_SIZE: np.ones(n, dtype=np.int32),
        C.CUT_TEXT: str_col(b[C.CUT_TEXT]),
        C.ID: b[C.ID],
        C.PRIO: b[C.PRIO],
    }
    return out


def merge_components(b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Take the component decision where the left join found one (a matched row always names its cluster)."""
    cluster = b.pop(C.C_CLUSTER)
    present = is_str(cluster)
    reject, dup_of, size = b.pop(C.C_REJECT), b.pop(C.C_DUP_OF), b.pop(C.C_SIZE)
    b[C.REJECT] = str_col(np.where(present, reject, b[C.REJECT]))
    b[C.DUPLICATE_OF] = str_col(np.where(present, dup_of, b[C.DUPLICATE_OF]))
    b[C.DUP_CLUSTER] = str_col(np.where(present, cluster, b[C.DUP_CLUSTER]))
    b[C.CUT_TEXT] = str_col(b[C.CUT_TEXT])
    sizes = np.nan_to_num(np.asarray(size, dtype=np.float64))
    b[C.DUP_CLUSTER_SIZE] = np.where(present, sizes, b[C.DUP_CLUSTER_SIZE]).astype(np.int32)
    return b


def merge_semantic(b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Take the semantic decision of rows that reached a cluster (a left-join miss keeps its decision)."""
    present = is_str(b.pop(C.S_PRESENT))
    b[C.SEMANTIC_CLUSTER] = np.where(present, b.pop(C.S_CLUSTER).astype(np.float64), np.nan)
    rej, dup_of, size = b.pop(C.S_REJECT), b.pop(C.S_DUP_OF), b.pop(C.S_SIZE)
    take = present & is_str(rej)
    b[C.REJECT] = str_col(np.where(take, rej, b[C.REJECT]))
    b[C.DUPLICATE_OF] = str_col(np.where(take, dup_of, b[C.DUPLICATE_OF]))
    b[C.DUP_CLUSTER] = str_col(np.where(take, dup_of, b[C.DUP_CLUSTER]))
    b[C.CUT_TEXT] = str_col(b[C.CUT_TEXT])
    b[C.DUP_CLUSTER_SIZE] = np.where(
        present, np.nan_to_num(size.astype(np.float64)), b[C.DUP_CLUSTER_SIZE]
    ).astype(np.int32)
    return b


def _self_best(b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {**b, C.EXACT_BEST: b[C.UID]}


def _external_attrs(b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Earlier batches' documents as component members: best-ranked, their own exact and URL groups."""
    return {
        C.UID: b[C.Y],
        C.ID: b[C.ID],
        C.PRIO: np.full(len(b[C.Y]), -np.inf),
        C.EXACT_BEST: b[C.Y],
        C.URL_BEST: b[C.Y],
    }


def _sample_key(b: dict[str, np.ndarray], seed: int, keep: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """A seeded pseudo-random key per row id: a sample is the rows with the k smallest keys, the same
    rows in the same order on either executor. Keeps the columns named in `keep`."""
    with np.errstate(over="ignore"):
        h = b[C.UID].astype(np.int64).view(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
        h ^= h >> np.uint64(31)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(29)
    return {C.UID: b[C.UID], **{k: b[k] for k in keep}, C.SAMPLE_KEY: (h >> np.uint64(1)).astype(np.int64)}


def _assign(b: dict[str, np.ndarray], centroids: np.ndarray, keep: str) -> dict[str, np.ndarray]:
    """A batch of embedded rows -> their cluster and keep-order key (a streaming pass: row by row)."""
    emb = semantic.rows_of(b[C.EMB], centroids.shape[1])
    cluster, cosine = semantic.assign_clusters(emb, centroids)
    return {
        **b,
        C.SEM_CLUSTER: cluster,
        C.SEM_KEY: semantic.sort_keys(keep, cosine, b[C.SEM_QUALITY], b[C.SEM_LENGTH]),
    }


def _sample(ex: Any, d: Any, seed: int, k: int, total: int, keep: Sequence[str]) -> dict[str, np.ndarray]:
    """The k rows of `d` with the smallest seeded uid hash (columns `keep`). Keys are uniform over
    [0, 2^63): rows above a cutoff that ~2k rows pass are dropped before the sort, so a large corpus is
    not sorted whole (with fewer than k passing, which is vanishingly rare, the sample is what passed)."""
    keyed = ex.map(d, _sample_key, seed=seed, keep=keep)
    if total > 4 * k:
        cutoff = int(2.0 * k / total * 2**63)
        keyed = ex.select(keyed, lambda b: b[C.SAMPLE_KEY] < cutoff)
    return ex.smallest(keyed, C.SAMPLE_KEY, k)


def _semantic_rows(b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        C.UID: b[C.UID],
        C.ID: b[C.ID],
        C.CUT_TEXT: str_col(b[C.CUT_TEXT]),
        C.DUP_CLUSTER_SIZE: b[C.DUP_CLUSTER_SIZE],
    }


def _present(b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {**b, C.S_PRESENT: np.full(len(b[C.UID]), "y", dtype=object)}


def _no_cluster(b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {**b, C.SEMANTIC_CLUSTER: np.full(len(b[C.UID]), np.nan)}


def _with_file(b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {**b, C.FILE: files.file_of(b[C.UID])}


def _summarize_hits(g: dict[str, np.ndarray], k: int) -> dict[str, Any]:
    return {
        C.CONTAM: g[C.CONTAM][:1],
        "documents": [len(g[C.ID])],
        "ngrams": [int(g[C.CONTAM_NGRAMS].sum())],
        "dropped": [int(g[C.DROP].sum())],
        "examples": [json.dumps(sorted(g[C.ID].tolist())[:k])],
    }


# The passes.


def meta(job: Job) -> Any:
    ex, cfg = job.ex, job.cfg
    kwargs = {"paths": job.paths, "cfg": cfg, "bench": job.bench}
    job.meta = ex.materialize(ex.files([f.index for f in job.inputs], MetaReader, kwargs))
    if cfg.minhash.enabled:
        job.signatures_stored = ex.sum(job.meta, C.SIG_STORED)
    job.eligible = ex.select(job.meta, lambda b: ~b[C.DROP])
    return job.meta


def url(job: Job) -> Any:
    ex = job.ex
    keyed = ex.map(job.eligible, with_part, src=C.URL_HASH, dst=C.URL_PART, parts=ex.parts)
    marked = ex.group_map(keyed, C.URL_PART, mark_url_partition)
    job.eligible = ex.materialize(ex.drop_columns(marked, [C.URL_PART]))
    return job.eligible


def exact(job: Job) -> Any:
    ex = job.ex
    if job.cfg.exact.enabled:
        keyed = ex.map(job.eligible, with_part, src=C.HASH, dst=C.HASH_PART, parts=ex.parts)
        marked = ex.drop_columns(ex.group_map(keyed, C.HASH_PART, exact_mod.mark_partition), [C.HASH_PART])
    else:
        marked = ex.map(job.eligible, _self_best)
    job.marked = ex.materialize(marked)
    return job.marked


def lsh_edges(job: Job) -> Any:
    ex, cfg, marked = job.ex, job.cfg, job.marked
    edge_sets = [
        ex.map(ex.select(marked, lambda b: b[C.EXACT_BEST] != b[C.UID]), edges_of, x=C.UID, y=C.EXACT_BEST)
    ]
    attr_cols = [C.UID, C.ID, C.PRIO, C.EXACT_BEST]
    if cfg.exact.url:
        url_dups = ex.select(marked, lambda b: b[C.URL_BEST] != b[C.UID])
        edge_sets.append(ex.map(url_dups, edges_of, x=C.UID, y=C.URL_BEST))
        attr_cols.append(C.URL_BEST)
    job.attrs = [ex.select_columns(marked, attr_cols)]
    if cfg.minhash.enabled:
        heads = ex.materialize(ex.select(marked, lambda b: b[C.EXACT_BEST] == b[C.UID], [C.UID, C.SIG]))
        pairs = lsh.candidate_pairs(ex, heads, cfg.minhash)
        edge_sets.append(ex.select_columns(lsh.verified_edges(ex, pairs, job.paths, cfg.minhash), [C.X, C.Y]))
        if cfg.incremental.enabled:
            size = 1 if cfg.incremental.backend == "local" else 2
            hits = ex.materialize(ex.actor_map(heads, IndexQuery, {"cfg": cfg}, size))
            edge_sets.append(ex.select_columns(hits, [C.X, C.Y]))
            job.attrs.append(ex.select_columns(ex.map(hits, _external_attrs), attr_cols))
    job.edges = ex.materialize(ex.union(edge_sets))
    return job.edges


def components(job: Job) -> Any:
    """Components of the duplicate edges and one survivor each; nothing to do without edges (and on Ray,
    joins fail on all-empty partitions)."""
    ex = job.ex
    if ex.count(job.edges) == 0:
        job.decided = None
        return 0
    comps = ex.components(job.edges, job.cfg.minhash.max_cc_rounds)
    members = ex.join(comps, ex.union(job.attrs), "inner")
    keyed = ex.map(members, with_part, src=C.COMP, dst=C.COMP_PART, parts=ex.parts)
    decided = ex.group_map(keyed, C.COMP_PART, survivors.decide_components)
    renames = {
        C.DECIDED_REJECT: C.C_REJECT,
        C.DUPLICATE_OF: C.C_DUP_OF,
        C.DUP_CLUSTER: C.C_CLUSTER,
        C.DUP_CLUSTER_SIZE: C.C_SIZE,
    }
    job.decided = ex.materialize(ex.rename_columns(decided, renames))
    return job.decided


def decisions(job: Job) -> Any:
    ex = job.ex
    defaults = ex.map(job.meta, default_decisions)
    if job.decided is not None:
        defaults = ex.map(ex.join(defaults, job.decided, "left_outer"), merge_components)
    job.decisions = ex.materialize(defaults)
    return job.decisions


def semantic_dedup(job: Job) -> Any:
    """SemDeDup on the documents every earlier pass kept (dedup/semantic.py has the steps)."""
    ex, scfg = job.ex, job.cfg.semantic
    alive = ex.materialize(ex.select(job.decisions, lambda b: ~is_str(b[C.REJECT])))
    n = ex.count(alive)
    if n == 0:
        job.decisions = ex.materialize(ex.map(job.decisions, _no_cluster))
        job.semantic = {"clusters": 0, "documents": 0, "removed": 0, "by_language": {}, "report": {}}
        return job.decisions
    rows = ex.map(ex.map(alive, _semantic_rows), _with_file)
    fitted = None
    if semantic.needs_fit(scfg.embed):  # the hashed embedder's IDF and basis: fitted once, here
        picked = _sample(ex, rows, scfg.embed.seed, scfg.embed.fit_sample, n, (C.CUT_TEXT, C.FILE))
        texts = ex.group_map(ex.from_batch(picked), C.FILE, semantic.texts_of, paths=job.paths)
        by_uid = {int(r[C.UID]): r[C.TEXT] for r in ex.rows(texts)}
        fitted = semantic.semantic_embedder(scfg)
        fitted.fit([by_uid[int(u)] for u in np.asarray(picked[C.UID]).tolist()])
    remote = {} if fitted is not None else ex.gpu_args(scfg.embed.device)
    embedded = ex.materialize(
        ex.group_map(
            rows,
            C.FILE,
            semantic.embed_file,
            remote_args=remote,
            paths=job.paths,
            cfg_json=scfg.embed.model_dump_json(),
            fitted=fitted,
            embed_batch=scfg.embed_batch,
        )
    )
    job.embedded, job.fitted = embedded, fitted
    sample = _sample(ex, embedded, scfg.seed, scfg.kmeans_sample, n, (C.EMB,))
    emb = semantic.rows_of(sample[C.EMB])
    centroids = semantic.train_centroids(emb, scfg, n)
    clustered = ex.map(embedded, _assign, centroids=centroids, keep=scfg.keep)
    sims = ex.materialize(
        ex.group_map(clustered, C.SEM_CLUSTER, semantic.cluster_similarities, block_rows=scfg.block_rows)
    )
    stats = semantic.SimilarityStats()
    for batch in ex.batches(ex.select_columns(sims, [C.SEM_LANG, C.SEM_M, C.SEM_NN]), 65536):
        stats.add(batch[C.SEM_LANG], batch[C.SEM_M], batch[C.SEM_NN])
    epsilons = {lang: scfg.epsilon_of(lang) for lang in stats.langs}
    if scfg.keep_fraction is not None:
        epsilons = {lang: stats.epsilon_for(lang, scfg.keep_fraction) for lang in stats.langs}
    thresholds = {lang: 1.0 - e for lang, e in epsilons.items()}
    decided = ex.group_map(
        sims,
        C.SEM_CLUSTER,
        semantic.resolve_cluster,
        thresholds=thresholds,
        default=1.0 - scfg.epsilon["default"],
    )
    sem = ex.rename_columns(
        ex.map(decided, _present),
        {
            C.SEM_CLUSTER: C.S_CLUSTER,
            C.SEM_REJECT: C.S_REJECT,
            C.SEM_DUP_OF: C.S_DUP_OF,
            C.SEM_SIZE: C.S_SIZE,
        },
    )
    sem = ex.materialize(sem)
    joined = ex.join(job.decisions, sem, "left_outer")
    job.decisions = ex.materialize(ex.map(joined, merge_semantic))
    job.semantic = _semantic_summary(ex, sem, sims, stats, epsilons, len(centroids))
    job.semantic_stats = stats
    return job.decisions


def _semantic_summary(
    ex: Any, sems: Any, sims: Any, stats: Any, epsilons: dict[str, float], k: int
) -> dict[str, Any]:
    """Documents clustered and removed per language, the epsilons used, the similarity report."""
    langs = ex.select_columns(sims, [C.UID, C.SEM_LANG])
    removed = ex.select(sems, lambda b: is_str(b[C.S_REJECT]), [C.UID])
    gone: dict[str, int] = {}
    if ex.count(removed):
        for batch in ex.batches(ex.join(removed, langs, "inner"), 65536):
            for lang in batch[C.SEM_LANG].tolist():
                gone[lang or "unknown"] = gone.get(lang or "unknown", 0) + 1
    report = stats.summary(epsilons)
    by_language = {
        lang: {"documents": r["documents"], "removed": gone.get(lang, 0), "epsilon": epsilons.get(lang)}
        for lang, r in report.items()
    }
    return {
        "clusters": k,
        "documents": sum(r["documents"] for r in report.values()),
        "removed": sum(gone.values()),
        "by_language": by_language,
        "report": report,
    }


def embedding_cache(job: Job) -> int:
    """The semantic pass's vectors into OUT/embeddings/ (embed/cache.py), for `pack --order similar`:
    about CACHE_PART_ROWS rows per part file, split by key."""
    ex, scfg = job.ex, job.cfg.semantic
    if job.embedded is None:  # nothing was alive to embed
        return 0
    folder = writer.join(job.out, cache.FOLDER)
    n = ex.count(job.embedded)
    parts = max(1, min(256, -(-n // CACHE_PART_ROWS)))
    keyed = ex.map(
        ex.select_columns(job.embedded, [C.UID, C.EMB_KEY, C.EMB]), semantic.cache_part_of, parts=parts
    )
    written = ex.rows(ex.group_map(keyed, C.EMB_PART, semantic.write_cache_part, folder=folder))
    rows = sum(int(r["rows"]) for r in written)
    dim = int(written[0]["dim"])
    cache.write_manifest(folder, scfg.embed, job.fitted, [int(r["part"]) for r in written], rows, dim)
    job.embedding_cache = {"folder": folder, "rows": rows, "parts": len(written)}
    return rows


def write(job: Job) -> int:
    ex = job.ex
    keyed = ex.map(job.decisions, _with_file)
    if C.EMB in ex.columns(job.decisions):
        keyed = ex.drop_columns(keyed, [C.EMB])
    kwargs = {"paths": job.paths, "out": job.out, "semantic_on": job.cfg.semantic.enabled}
    job.written = ex.rows(ex.group_map(keyed, C.FILE, writer.write_file, **kwargs))
    return sum(f.num_rows for f in job.inputs)


def decontam_report(job: Job) -> int:
    ex, cfg = job.ex, job.cfg
    hits = ex.materialize(
        ex.select(job.meta, lambda b: is_str(b[C.CONTAM]), [C.ID, C.CONTAM, C.CONTAM_NGRAMS, C.DROP])
    )
    report: dict[str, Any] = {
        name: {"documents": 0, "ngrams": 0, "dropped": 0, "examples": []} for name in job.bench.names
    }
    n = ex.count(hits)
    if n:
        for row in ex.rows(ex.group_map(hits, C.CONTAM, _summarize_hits, k=cfg.decontam.report_examples)):
            report[row[C.CONTAM]] = {
                "documents": int(row["documents"]),
                "ngrams": int(row["ngrams"]),
                "dropped": int(row["dropped"]),
                "examples": json.loads(row["examples"]),
            }
    job.report = {"policy": cfg.decontam.policy, "benchmarks": report}
    return n


def index_insert(job: Job) -> int:
    """Add this batch's survivors to the persistent index (streamed; the index lives in Redis or a file)."""
    from dataengine.dedup.incremental import IncrementalIndex

    ex, cfg = job.ex, job.cfg
    index = IncrementalIndex(cfg.incremental, cfg.minhash)
    kept = ex.select(job.decisions, lambda b: ~is_str(b[C.REJECT]), [C.UID])
    sigs = ex.join(kept, ex.select_columns(job.meta, [C.UID, C.ID, C.SIG]), "inner")
    added = 0
    for batch in ex.batches(sigs, 5000):
        added += index.insert(batch[C.ID].tolist(), np.asarray(batch[C.SIG], dtype=np.uint32))
    index.save()
    return added


@dataclass(frozen=True)
class Pass:
    name: str
    fn: Callable[[Job], Any]
    enabled: Callable[[Job], bool] = lambda job: True


PASSES: tuple[Pass, ...] = (
    Pass("meta", meta),
    Pass("url", url, lambda job: job.cfg.exact.url),
    Pass("exact", exact),
    Pass("lsh", lsh_edges),
    Pass("components", components),
    Pass("decisions", decisions),
    Pass("semantic", semantic_dedup, lambda job: job.cfg.semantic.enabled),
    Pass(
        "embedding_cache",
        embedding_cache,
        lambda job: job.cfg.semantic.enabled and job.cfg.semantic.write_embeddings,
    ),
    Pass("write", write),
    Pass("decontam_report", decontam_report, lambda job: job.bench is not None),
    Pass("index_insert", index_insert, lambda job: job.cfg.incremental.enabled and job.cfg.minhash.enabled),
)


def run(job: Job, timings: dict[str, float]) -> None:
    """Every enabled pass in order; seconds per pass into `timings`, one INFO line per pass."""
    for p in PASSES:
        if not p.enabled(job):
            continue
        start = time.perf_counter()
        result = p.fn(job)
        rows = result if isinstance(result, int) else job.ex.count(result)
        seconds = time.perf_counter() - start
        timings[p.name] = round(seconds, 3)
        log.info("dedup %s: %d rows in %.2f s (%s)", p.name, rows, seconds, job.ex.name)
