"""``order: similar``: In-Context Pretraining (Shi et al. 2023) as a Ray Data order.

1. Embed: the embedder (``similar.embed``; the hashed TF-IDF one by default) is fitted on
   ``embed.fit_sample`` documents drawn from the whole input by a seeded hash of their ids, then every
   document is embedded in Ray tasks.
2. Partition: with more than ``partition_docs`` documents, faiss spherical k-means fitted on
   ``kmeans_sample`` embeddings (drawn the same way) cuts the corpus into about ``partition_docs``-sized
   partitions; each partition is one group, walked in its own Ray task (``walk.py``: faiss kNN,
   ICP's greedy walk), so no process holds more than one partition.
3. Join: each chain gets a key (a seeded hash of its first document, or its partition's place in
   a walk over the centroids when ``shuffle_chains`` is off) and Ray sorts by (key, position).
4. Guard: as the packer reads the ordered stream, ``NeighbourGuard`` holds back a document that
   would follow a near-duplicate, or lengthen a category run past the cap, in its split (train or
   held-out) until something else has come between them.

Every step is a function of the documents, the config and the seed: the bytes do not depend on
the number of workers or on Ray's block layout. Helper columns start with ``_sim_`` and are dropped
before packing.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray.data

from dataengine.embed import Embedder, cache, check_embedder, make_embedder, worker_embedder
from dataengine.io.paths import resolve
from dataengine.pack.config import PackConfig, SimilarOrderConfig
from dataengine.pack.holdout import Heldout, id_fraction
from dataengine.pack.inputs import DOCUMENT_SCHEMA
from dataengine.pack.order import DocumentOrder
from dataengine.pack.walk import greedy_chains, nearest_neighbours
from dataengine.runtime import alive_resources

EMB, PART, KEY, HEAD, POS = "_sim_emb", "_sim_part", "_sim_key", "_sim_head", "_sim_pos"
HELPERS = (EMB, PART, KEY, HEAD, POS)
HIT = "_sim_hit"  # the vector came from the run's embedding cache
CACHE_JOIN_ROWS = 200_000  # cache rows per partition of the join


def vectors(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed-size-list column as a float32 [rows, dim] array."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return array.values.to_numpy(zero_copy_only=False).reshape(len(array), array.type.list_size)


def with_text_keys(batch: pa.Table) -> pa.Table:
    """The key a document's vector has in the run's embedding cache."""
    return batch.append_column(cache.KEY, pa.array(cache.text_keys(batch["text"].to_pylist()), pa.string()))


def embed_rows(batch: pa.Table, cfg_json: str, fitted: Embedder | None) -> pa.Table:
    """``batch`` with its embeddings: a cached vector where the join found one (``_sim_hit``), else
    from the driver's fitted embedder or the configured model (loaded only when something is missing)."""
    texts = batch["text"].to_pylist()
    if cache.EMB in batch.column_names:  # joined with the run's cache: the join's string columns are large
        cached = batch[cache.EMB].combine_chunks()
        hit = pc.is_valid(cached).to_numpy(zero_copy_only=False)
        batch = batch.select(DOCUMENT_SCHEMA.names).cast(DOCUMENT_SCHEMA)
    else:
        cached, hit = None, np.zeros(len(texts), dtype=bool)
    missing = np.flatnonzero(~hit)
    fresh = (fitted or worker_embedder(cfg_json))([texts[i] for i in missing]) if len(missing) else None
    dim = cached.type.list_size if cached is not None else fresh.shape[1]
    emb = np.empty((len(texts), dim), dtype=np.float32)
    if cached is not None and hit.any():
        emb[hit] = cached.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    if fresh is not None:
        emb[missing] = fresh
    out = batch.append_column(EMB, pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), dim))
    return out.append_column(HIT, pa.array(hit)) if cached is not None else out


def uids(table: pa.Table) -> list[str]:
    return [f"{i}\x00{s}" for i, s in zip(table["id"].to_pylist(), table["source"].to_pylist(), strict=True)]


def hash_sample(ds: ray.data.Dataset, size: int, seed: int, column: str) -> list:
    """``column`` of the ``size`` rows with the smallest seeded hash of their id: a uniform sample of the
    whole dataset (not its first files) that depends on neither block layout nor worker count."""
    rank = "_sim_rank"

    def smallest(batch: pa.Table) -> pa.Table:
        ranks = pa.array([id_fraction(u, seed) for u in uids(batch)], pa.float64())
        keep = pc.sort_indices(ranks)[:size]
        return pa.table({rank: ranks.take(keep), column: batch[column].take(keep)})

    rows = ds.map_batches(smallest, batch_format="pyarrow").sort(rank).limit(size).take_all()
    return [row[column] for row in rows]


def walk_partition(table: pa.Table, cfg: SimilarOrderConfig, seed: int, ranks: list[int]) -> pa.Table:
    """One partition in chain order, with each row's chain key, chain head and position."""
    if table.num_rows == 0:
        return table
    # rows arrive in shuffle order: put them in a canonical order first
    table = table.take(pc.sort_indices(table, [(c, "ascending") for c in ("id", "source", "text")]))
    part = table[PART][0].as_py()
    emb = vectors(table[EMB])
    categories = table["category"].to_pylist() if cfg.category_run else None
    rng = np.random.default_rng([seed, part])
    chains = greedy_chains(emb, nearest_neighbours(emb, cfg.knn), cfg, rng, categories)
    names = uids(table)
    heads = [names[chain[0]] for chain in chains]
    if cfg.shuffle_chains:
        keys = [id_fraction(head, seed) for head in heads]
    else:
        keys = [ranks[part] + (i + 0.5) / (len(chains) + 1) for i in range(len(chains))]
    order = np.fromiter((row for chain in chains for row in chain), dtype=np.int64, count=table.num_rows)
    sizes = [len(chain) for chain in chains]
    out = table.take(pa.array(order))
    return (
        out.append_column(KEY, pa.array(np.repeat(keys, sizes), pa.float64()))
        .append_column(HEAD, pa.array(np.repeat(np.array(heads, dtype=object), sizes), pa.string()))
        .append_column(POS, pa.array(np.concatenate([np.arange(n) for n in sizes]), pa.int32()))
    )


def centroid_ranks(centroids: np.ndarray) -> list[int]:
    """Each partition's place in a greedy nearest-neighbour walk over the centroids from partition 0."""
    ranks = [0] * len(centroids)
    left = set(range(1, len(centroids)))
    current = 0
    for place in range(1, len(centroids)):
        current = max(left, key=lambda c: (float(centroids[current] @ centroids[c]), -c))
        left.remove(current)
        ranks[current] = place
    return ranks


class SimilarOrder(DocumentOrder):
    def __init__(self, config: PackConfig, files: Sequence[str] = ()) -> None:
        super().__init__(config, files)
        self.cfg = config.similar
        check_embedder(self.cfg.embed, "similar.embed.embedder")
        self.cache, note = self._open_cache()
        self.cache_stats: dict[str, Any] = {"used": False, "why_not": note} if self.cache is None else {}
        self.guard: NeighbourGuard | None = None
        self.partitions = 0

    def _open_cache(self) -> tuple[cache.EmbeddingCache | None, str]:
        """The run's embedding cache, if one is named or found and holds vectors of ``embed``'s settings.
        A folder named in the config that cannot be used is an error; one found by ``auto``, a note."""
        setting = self.cfg.embedding_cache
        if setting is None:
            return None, "similar.embedding_cache is null"
        folder, why = (setting, "") if setting != "auto" else cache.find_cache(self.files)
        found = cache.EmbeddingCache.open(folder) if folder else None
        if folder and found is None:
            why = f"{folder} holds no complete embedding cache ({cache.MANIFEST})"
        elif found is not None and (differ := found.mismatch(self.cfg.embed)):
            why, found = f"{folder}: embedder settings differ ({differ})", None
        if found is None and setting != "auto":
            raise ValueError(f"similar.embedding_cache: {why}")
        return found, why

    def _embedded(self, ds: ray.data.Dataset) -> ray.data.Dataset:
        embed = self.cfg.embed
        fitted = self.cache.embedder(embed) if self.cache else None  # the space the cached vectors are in
        if fitted is None and embed.embedder == "hashed":  # the IDF comes from the corpus: fit on the driver
            fitted = make_embedder(embed)
            fitted.fit([text or "" for text in hash_sample(ds, embed.fit_sample, self.seed, "text")])
        joined = bool(self.cache and self.cache.part_paths())
        if joined:
            fs, _ = resolve(self.cache.folder)
            vectors_ds = ray.data.read_parquet(
                [resolve(p)[1] for p in self.cache.part_paths()], filesystem=fs
            )
            ds = ds.map_batches(with_text_keys, batch_format="pyarrow").join(
                vectors_ds,
                "left_outer",
                max(2, math.ceil(self.cache.rows / CACHE_JOIN_ROWS)),
                on=(cache.KEY,),
            )
        gpus = 0 if fitted or embed.device == "cpu" else int(alive_resources(ray).get("GPU", 0))
        embedded = ds.map_batches(
            embed_rows,
            fn_kwargs={"cfg_json": embed.model_dump_json(), "fitted": fitted},
            batch_size=None,
            batch_format="pyarrow",
            num_cpus=1,
            num_gpus=1 if gpus else 0,
        ).materialize()
        if self.cache:
            hits, documents = int(embedded.sum(HIT) or 0) if joined else 0, embedded.count()
            self.cache_stats = {
                "used": True,
                "folder": self.cache.folder,
                "hits": hits,
                "embedded": documents - hits,
            }
        return embedded.drop_columns([HIT]) if joined else embedded

    def apply(self, ds: ray.data.Dataset) -> ray.data.Dataset:
        import faiss

        cfg = self.cfg
        embedded = self._embedded(ds)
        n = embedded.count()
        self.partitions = max(1, math.ceil(n / cfg.partition_docs))
        if self.partitions > 1:
            sample = hash_sample(embedded, cfg.kmeans_sample, self.seed, EMB)
            emb = np.asarray(sample, dtype=np.float32)
            k = min(self.partitions, len(emb))
            kmeans = faiss.Kmeans(
                emb.shape[1], k, niter=20, seed=self.seed + 1, spherical=True, verbose=False
            )
            kmeans.train(emb)
            centroids = kmeans.centroids
        else:
            centroids = np.zeros((1, 1), dtype=np.float32)

        def assign(batch: pa.Table) -> pa.Table:
            if len(centroids) == 1:
                part = np.zeros(batch.num_rows, dtype=np.int32)
            else:
                part = np.argmax(vectors(batch[EMB]) @ centroids.T, axis=1).astype(np.int32)
            return batch.append_column(PART, pa.array(part))

        walked = (
            embedded.map_batches(assign, batch_format="pyarrow")
            .groupby(PART)
            .map_groups(
                walk_partition,
                fn_kwargs={"cfg": cfg, "seed": self.seed, "ranks": centroid_ranks(centroids)},
                batch_format="pyarrow",
            )
        )
        return walked.sort([KEY, HEAD, POS])

    def stream(self, tables: Iterator[pa.Table], heldout: Heldout) -> Iterator[pa.Table]:
        self.guard = NeighbourGuard(self.cfg.near_duplicate, self.cfg.category_run, self.cfg.max_deferred)
        for table in tables:
            out = self.guard.push(table, heldout.split_rows(table)[1])
            if out.num_rows:
                yield out
        tail = self.guard.flush()
        if tail.num_rows:
            yield tail

    def stats(self) -> dict[str, Any]:
        return {
            "partitions": self.partitions,
            "embedding_cache": self.cache_stats,
            **(self.guard.stats() if self.guard else {}),
        }


class _Lane:
    """One split's last placed document and the documents held back in it."""

    def __init__(self) -> None:
        self.last: np.ndarray | None = None
        self.category: str | None = None
        self.run = 0
        self.held: deque[tuple[pa.Table, np.ndarray, str | None]] = deque()


class NeighbourGuard:
    """Keeps near-duplicates (cosine >= ``near_duplicate``) and over-long category runs from being
    consecutive within a split: such a document waits, in order, until it fits (or until more than
    ``max_deferred`` wait, when the oldest goes out anyway and is counted)."""

    def __init__(self, near_duplicate: float, category_run: int | None, max_deferred: int) -> None:
        self.near_duplicate, self.category_run, self.max_deferred = near_duplicate, category_run, max_deferred
        self.lanes = (_Lane(), _Lane())
        self.pieces: list[pa.Table] = []
        self.counts = {"documents": 0, "chains": 0, "held_back": 0, "adjacent_near_duplicates": 0}
        self.cosine_sum = 0.0
        self.pairs = 0
        self.head: str | None = None

    def _fits(self, lane: _Lane, emb: np.ndarray, category: str | None) -> bool:
        if lane.last is None:
            return True
        if float(lane.last @ emb) >= self.near_duplicate:
            return False
        cap = self.category_run
        return not (cap is not None and category == lane.category and lane.run >= cap)

    def _place(self, lane: _Lane, emb: np.ndarray, category: str | None, head: str) -> None:
        if lane.last is not None:
            cosine = float(lane.last @ emb)
            self.cosine_sum += cosine
            self.pairs += 1
            self.counts["adjacent_near_duplicates"] += cosine >= self.near_duplicate
        lane.run = lane.run + 1 if category == lane.category else 1
        lane.last, lane.category = emb, category
        self.counts["documents"] += 1
        if head != self.head:
            self.counts["chains"] += 1
            self.head = head

    def _release(self, lane: _Lane, taken: list[int], table: pa.Table | None, force: bool = False) -> None:
        """Place the held documents that now fit (all of them, in order, when ``force``)."""
        placed = True
        while placed and lane.held:
            placed = False
            for i, (row, emb, category) in enumerate(lane.held):
                if force or self._fits(lane, emb, category):
                    del lane.held[i]
                    self._flush(taken, table)
                    self._place(lane, emb, category, row[HEAD][0].as_py())
                    self.pieces.append(row)
                    placed = True
                    break

    def _flush(self, taken: list[int], table: pa.Table | None) -> None:
        if taken and table is not None:
            self.pieces.append(table.take(pa.array(taken, pa.int64())))
            taken.clear()

    def push(self, table: pa.Table, held_out: np.ndarray) -> pa.Table:
        """The rows of ``table`` (and of earlier tables) that can go out now, in order."""
        emb = vectors(table[EMB])
        categories = table["category"].to_pylist()
        heads = table[HEAD].to_pylist()
        rejected = pc.is_valid(table["reject"]).to_numpy(zero_copy_only=False)
        taken: list[int] = []
        for i in range(table.num_rows):
            if rejected[i]:  # an unreadable record: passed on to be counted, never packed
                taken.append(i)
                continue
            lane = self.lanes[int(held_out[i])]
            if lane.held or not self._fits(lane, emb[i], categories[i]):
                lane.held.append((table.slice(i, 1), emb[i], categories[i]))
                self.counts["held_back"] += 1
                if len(lane.held) > self.max_deferred:
                    row, e, category = lane.held.popleft()
                    self._flush(taken, table)
                    self._place(lane, e, category, row[HEAD][0].as_py())
                    self.pieces.append(row)
                self._release(lane, taken, table)
                continue
            self._place(lane, emb[i], categories[i], heads[i])
            taken.append(i)
        self._flush(taken, table)
        return self._drain()

    def flush(self) -> pa.Table:
        """At the end of the stream: what still waits, placed where it fits best in order."""
        for lane in self.lanes:
            self._release(lane, [], None)
            self._release(lane, [], None, force=True)
        return self._drain()

    def _drain(self) -> pa.Table:
        pieces, self.pieces = self.pieces, []
        if not pieces:
            return pa.table({})
        return pa.concat_tables(pieces).drop_columns([c for c in HELPERS if c in pieces[0].column_names])

    def stats(self) -> dict[str, Any]:
        mean = self.cosine_sum / self.pairs if self.pairs else None
        return {**self.counts, "mean_consecutive_cosine": None if mean is None else round(mean, 4)}
