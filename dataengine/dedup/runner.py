"""Phase 2 as one job: documents in, OUT/kept, OUT/rejected and OUT/run.json out.

Inputs in any format ``dataengine run`` reads; all but Parquet document rows (phase-1 output) are
first read by run's readers into OUT/_staged (dataengine/dedup/staging.py; records rejected while
reading go to OUT/rejected and count). Passes (every one a Ray Data operation; shuffles carry small
decision rows):
  1. meta: per input file, row ids, text hash, survivor priority, MinHash
     signature, benchmark contamination (and embeddings for semantic dedup);
  2. exact: groupby on the text hash marks each group's best member;
  3. LSH: band buckets -> candidate pairs -> exact-Jaccard verification,
     plus hits in the persistent incremental index;
  4. connected components over exact + near-duplicate edges, one survivor
     per component by the configured rule;
  5. semantic: k-means clusters, near-identical embeddings dropped;
  6. write: decisions grouped by input file, each file read once and split
     into kept/ and rejected/ (reason, duplicate_of), then run.json with
     counts that must add up to the input exactly.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
import ray.data

from dataengine.dedup import exact, files, semantic, staging, survivors
from dataengine.dedup.components import connected_components
from dataengine.dedup.config import DedupConfig
from dataengine.dedup.decontam import BenchmarkIndex, scan
from dataengine.dedup.incremental import IncrementalIndex, external_uid
from dataengine.dedup.lsh import candidate_pairs, verified_edges
from dataengine.dedup.minhash import minhash_signatures, signatures_from_column, stored_signatures_match
from dataengine.dedup.raytools import phase2_context
from dataengine.io.config import InputConfig
from dataengine.pack.inputs import reader_config
from dataengine.runtime import init_ray, versions

_CHUNK = 2000
_OUTPUT_COLUMNS = ("reject", "duplicate_of", "dup_cluster", "dup_cluster_size", "semantic_cluster")


class _MetaReader:
    """Pass 1: one input file in, one small row per document out (no text)."""

    def __init__(self, paths: Sequence[str], cfg: DedupConfig, bench: BenchmarkIndex | None):
        self.paths, self.cfg, self.bench = list(paths), cfg, bench
        self.embed = semantic.semantic_embedder(cfg.semantic) if cfg.semantic.enabled else None

    def __call__(self, batch: dict[str, np.ndarray]) -> Iterator[dict[str, Any]]:
        for f in batch["file"].tolist():
            columns = ["id", "text", "lang", "quality"]
            if self.cfg.exact.url:
                columns.append("url")
            schema = pq.read_schema(self.paths[f])
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
        out: dict[str, Any] = {"_uid": uid, "id": np.array(t.column("id").to_pylist(), dtype=object)}
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
            _hash=exact.text_hashes(texts, cfg.exact.normalize),
            _prio=survivors.priority(cfg.survivor, quality, length),
            _contam=contam,
            _contam_ngrams=ngrams,
            _drop=drop,
            _cut_text=cut,
        )
        if cfg.exact.url:
            out["_url_hash"], out["_has_url"] = exact.url_hashes(t.column("url").to_pylist())
        if cfg.minhash.enabled:
            out["_sig"], out["_sig_stored"] = self._signatures(t, texts, langs, _is_str(cut))
        if self.embed is not None:
            out["_emb"] = self.embed(texts)
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


class _IndexQuery:
    """Rows whose signature hits a document of an earlier batch -> edge to that document's external node."""

    def __init__(self, cfg: DedupConfig):
        self.index = IncrementalIndex(cfg.incremental, cfg.minhash)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        hits = self.index.query(np.asarray(batch["_sig"], dtype=np.uint32))
        found = [i for i, h in enumerate(hits) if h is not None]
        keys = [hits[i] for i in found]
        return {
            "x": batch["_uid"][found].astype(np.int64),
            "y": np.array([external_uid(k) for k in keys], dtype=np.int64),
            "id": np.array(keys, dtype=object),
        }


def _is_str(col: np.ndarray) -> np.ndarray:
    """Which entries hold a value. Internal string columns use "" for none: Ray turns an all-None block into
    floats, which then cannot merge with string blocks; a left join's misses still arrive as None or NaN."""
    return np.fromiter((isinstance(v, str) and v != "" for v in col), dtype=bool, count=len(col))


def _str_col(col: np.ndarray) -> np.ndarray:
    return np.array([v if isinstance(v, str) else "" for v in col], dtype=object)


def _select(ds: ray.data.Dataset, predicate, columns: Sequence[str] | None = None) -> ray.data.Dataset:
    """Vectorized filter (and projection) of a dataset by a numpy predicate on each batch."""

    def fn(b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        mask = predicate(b)
        return {k: v[mask] for k, v in b.items() if columns is None or k in columns}

    return ds.map_batches(fn, batch_format="numpy")


def _edges(ds: ray.data.Dataset, x: str, y: str) -> ray.data.Dataset:
    return ds.map_batches(
        lambda b: {"x": b[x].astype(np.int64), "y": b[y].astype(np.int64)}, batch_format="numpy"
    )


def _mark_url_partition(part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Best member per URL group (rows without a URL are their own best); see exact.mark_partition."""
    has = part["_has_url"].astype(bool)
    with_url = exact.mark_partition(
        {k: v[has] for k, v in part.items()}, key="_url_hash", best="_url_best", size="_url_size"
    )
    without = {k: v[~has] for k, v in part.items()}
    without["_url_best"] = without["_uid"].astype(np.int64)
    without["_url_size"] = np.ones(len(without["_uid"]), dtype=np.int32)
    return {k: np.concatenate([with_url[k], without[k]]) for k in with_url}


def _default_decisions(b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every row starts as its own one-document cluster; contaminated rows dropped under `drop`."""
    n = len(b["_uid"])
    reject = np.array(
        [f"decontam:{c}" if d else "" for c, d in zip(b["_contam"], b["_drop"], strict=True)], dtype=object
    )
    out = {
        "_uid": b["_uid"],
        "reject": reject,
        "duplicate_of": np.full(n, "", dtype=object),
        "dup_cluster": b["id"],
        "dup_cluster_size": np.ones(n, dtype=np.int32),
        "_cut_text": _str_col(b["_cut_text"]),
        "id": b["id"],
        "_prio": b["_prio"],
    }
    if "_emb" in b:
        out["_emb"] = b["_emb"]
    return out


def _merge_components(b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Take the component decision where the left join found one (a matched row always names its cluster)."""
    cluster = b.pop("_c_cluster")
    present = _is_str(cluster)
    reject, dup_of, size = b.pop("_c_reject"), b.pop("_c_dup_of"), b.pop("_c_size")
    b["reject"] = _str_col(np.where(present, reject, b["reject"]))
    b["duplicate_of"] = _str_col(np.where(present, dup_of, b["duplicate_of"]))
    b["dup_cluster"] = _str_col(np.where(present, cluster, b["dup_cluster"]))
    b["_cut_text"] = _str_col(b["_cut_text"])
    sizes = np.nan_to_num(np.asarray(size, dtype=np.float64))
    b["dup_cluster_size"] = np.where(present, sizes, b["dup_cluster_size"]).astype(np.int32)
    return b


def _write_file(
    group: dict[str, np.ndarray], paths: Sequence[str], tmp: str, semantic_on: bool
) -> dict[str, Any]:
    """Split one input file into kept/ and rejected/ by its decision rows; returns counts by reason."""
    f = int(group["_file"][0])
    order = np.argsort(group["_uid"])
    rows = files.row_of(group["_uid"][order])
    table = pq.read_table(paths[f])
    if len(rows) != table.num_rows or not np.array_equal(rows, np.arange(table.num_rows)):
        raise RuntimeError(
            f"{paths[f]}: {table.num_rows} rows but {len(rows)} dedup decisions (conservation broken)"
        )
    d = {k: v[order] for k, v in group.items()}
    drop_cols = [c for c in _OUTPUT_COLUMNS if c in table.column_names]
    table = table.drop_columns(drop_cols)
    cut = d["_cut_text"]
    was_cut = _is_str(cut)
    if was_cut.any():
        texts = table.column("text").to_pylist()
        texts = [c if w else t for t, c, w in zip(texts, cut, was_cut, strict=True)]
        table = table.set_column(table.column_names.index("text"), "text", pa.array(texts, pa.string()))
        if (
            "minhash" in table.column_names
        ):  # a signature of the text before the cut would mislead a later run
            i = table.column_names.index("minhash")
            stale = pa.array(was_cut)
            table = table.set_column(i, table.field(i), pc.if_else(stale, None, table.column(i)))
    rejected = _is_str(d["reject"])
    kept = table.filter(pa.array(~rejected))
    kept = kept.append_column("dup_cluster", pa.array(d["dup_cluster"][~rejected], pa.string()))
    kept = kept.append_column("dup_cluster_size", pa.array(d["dup_cluster_size"][~rejected].astype(np.int32)))
    rej = table.filter(pa.array(rejected))
    rej = rej.append_column("reject", pa.array(d["reject"][rejected], pa.string()))
    dup_of = d["duplicate_of"][rejected]
    rej = rej.append_column(
        "duplicate_of", pa.array(np.where(_is_str(dup_of), dup_of, None).tolist(), pa.string())
    )
    if semantic_on:
        sem = d["semantic_cluster"].astype(np.float64)
        for name, t, m in (("kept", kept, ~rejected), ("rejected", rej, rejected)):
            col = pa.array(sem[m], pa.float64(), mask=np.isnan(sem[m])).cast(pa.int32())
            if name == "kept":
                kept = t.append_column("semantic_cluster", col)
            else:
                rej = t.append_column("semantic_cluster", col)
    for sub, t in (("kept", kept), ("rejected", rej)):
        target = Path(tmp) / sub / f"part-{f:05d}.parquet"
        pq.write_table(t, target.with_suffix(".parquet.tmp"))
        target.with_suffix(".parquet.tmp").replace(target)
    counts = Counter(d["reject"][rejected].tolist())
    return {"file": [f], "kept": [int(kept.num_rows)], "counts": [json.dumps(counts, sort_keys=True)]}


def _decontam_report(
    meta: ray.data.Dataset, bench: BenchmarkIndex | None, cfg: DedupConfig
) -> dict[str, Any]:
    if bench is None:
        return {}
    hits = _select(meta, lambda b: _is_str(b["_contam"]), ["id", "_contam", "_contam_ngrams", "_drop"])
    report: dict[str, Any] = {
        name: {"documents": 0, "ngrams": 0, "dropped": 0, "examples": []} for name in bench.names
    }
    for row in (
        hits.groupby("_contam")
        .map_groups(_summarize_hits, fn_kwargs={"k": cfg.decontam.report_examples})
        .take_all()
    ):
        report[row["_contam"]] = {
            "documents": int(row["documents"]),
            "ngrams": int(row["ngrams"]),
            "dropped": int(row["dropped"]),
            "examples": json.loads(row["examples"]),
        }
    return {"policy": cfg.decontam.policy, "benchmarks": report}


def _summarize_hits(g: dict[str, np.ndarray], k: int) -> dict[str, Any]:
    return {
        "_contam": g["_contam"][:1],
        "documents": [len(g["id"])],
        "ngrams": [int(g["_contam_ngrams"].sum())],
        "dropped": [int(g["_drop"].sum())],
        "examples": [json.dumps(sorted(g["id"].tolist())[:k])],
    }


def _partitions(cfg: DedupConfig, n_rows: int) -> int:
    """Enough shuffle partitions that no group holds more than ~2M band rows."""
    bands = cfg.minhash.band_params[0] if cfg.minhash.enabled else 1
    return max(cfg.num_partitions, -(-n_rows * bands // 2_000_000))


def _passes(
    inputs_: Sequence[files.InputFile],
    cfg: DedupConfig,
    bench: BenchmarkIndex | None,
    tmp: Path,
    parts: int,
    timings: dict[str, float],
) -> tuple[list[dict[str, Any]], dict[str, Any], int | None]:
    """Passes 1-6 on input files holding at least one row: the written counts of each file, the
    decontamination report and how many MinHash signatures came from a stored column."""
    paths = [f.path for f in inputs_]
    total = sum(f.num_rows for f in inputs_)
    init_ray()

    def lap(name: str, start: float) -> float:
        timings[name] = round(time.time() - start, 3)
        return time.time()

    with phase2_context():
        t = time.time()
        meta = (
            ray.data.from_items([{"file": f.index} for f in inputs_], override_num_blocks=len(inputs_))
            .map_batches(
                _MetaReader,
                fn_constructor_kwargs={"paths": paths, "cfg": cfg, "bench": bench},
                batch_size=1,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(
                    min_size=1, max_size=max(1, int(ray.available_resources().get("CPU", 1)))
                ),
            )
            .materialize()
        )
        t = lap("meta", t)
        signatures_stored = int(meta.sum("_sig_stored")) if cfg.minhash.enabled and total else None
        eligible = _select(meta, lambda b: ~b["_drop"])
        if cfg.exact.url:  # a groupby on the URL hash, like the exact pass on the text hash
            eligible = (
                eligible.map_batches(lambda b: {**b, "_upart": b["_url_hash"] % parts}, batch_format="numpy")
                .groupby("_upart", num_partitions=parts)
                .map_groups(_mark_url_partition, batch_format="numpy")
                .drop_columns(["_upart"])
                .materialize()
            )
            t = lap("url", t)
        if cfg.exact.enabled:
            marked = (
                eligible.map_batches(lambda b: {**b, "_hpart": b["_hash"] % parts}, batch_format="numpy")
                .groupby("_hpart", num_partitions=parts)
                .map_groups(exact.mark_partition, batch_format="numpy")
                .drop_columns(["_hpart"])
            )
        else:
            marked = eligible.map_batches(lambda b: {**b, "_exact_best": b["_uid"]}, batch_format="numpy")
        marked = marked.materialize()
        t = lap("exact", t)
        edge_sets = [_edges(_select(marked, lambda b: b["_exact_best"] != b["_uid"]), "_uid", "_exact_best")]
        attr_cols = ["_uid", "id", "_prio", "_exact_best"]
        if cfg.exact.url:
            edge_sets.append(
                _edges(_select(marked, lambda b: b["_url_best"] != b["_uid"]), "_uid", "_url_best")
            )
            attr_cols.append("_url_best")
        attrs = [marked.select_columns(attr_cols)]
        if cfg.minhash.enabled:
            heads = _select(marked, lambda b: b["_exact_best"] == b["_uid"], ["_uid", "_sig"]).materialize()
            pairs = candidate_pairs(heads, cfg.minhash, parts)
            edge_sets.append(verified_edges(pairs, paths, cfg.minhash, parts).select_columns(["x", "y"]))
            if cfg.incremental.enabled:
                local = cfg.incremental.backend == "local"
                hits = heads.map_batches(
                    _IndexQuery,
                    fn_constructor_kwargs={"cfg": cfg},
                    batch_format="numpy",
                    compute=ray.data.ActorPoolStrategy(size=1 if local else 2),
                ).materialize()
                edge_sets.append(hits.select_columns(["x", "y"]))
                attrs.append(
                    hits.map_batches(
                        lambda b: {
                            "_uid": b["y"],
                            "id": b["id"],
                            "_prio": np.full(len(b["y"]), -np.inf),
                            "_exact_best": b["y"],
                            "_url_best": b["y"],
                        },
                        batch_format="numpy",
                    ).select_columns(attr_cols)
                )
        edges = edge_sets[0].union(*edge_sets[1:]) if len(edge_sets) > 1 else edge_sets[0]
        edges = edges.materialize()
        t = lap("lsh_verify", t)
        defaults = meta.map_batches(_default_decisions, batch_format="numpy")
        if edges.count() == 0:  # no duplicates: nothing to join (joins fail on all-empty partitions)
            decisions = defaults.materialize()
        else:
            decisions = _component_decisions(defaults, edges, attrs, cfg, parts)
        t = lap("components", t)
        if cfg.semantic.enabled:
            decisions = _semantic(decisions, cfg, parts).materialize()
            t = lap("semantic", t)
        written = (
            decisions.map_batches(lambda b: {**b, "_file": files.file_of(b["_uid"])}, batch_format="numpy")
            .drop_columns([c for c in ("_emb",) if c in decisions.columns()])
            .groupby("_file", num_partitions=parts)
            .map_groups(
                _write_file,
                fn_kwargs={"paths": paths, "tmp": str(tmp), "semantic_on": cfg.semantic.enabled},
                batch_format="numpy",
            )
            .take_all()
        )
        t = lap("write", t)
        report = _decontam_report(meta, bench, cfg)
        if cfg.incremental.enabled and cfg.minhash.enabled:
            _insert_kept(decisions, meta, cfg)
            t = lap("index_insert", t)
    return written, report, signatures_stored


def run_dedup(
    inputs: Sequence[str | Path],
    output: str | Path,
    cfg: DedupConfig | None = None,
    reader: InputConfig | None = None,
) -> dict[str, Any]:
    """Run phase 2 on input files/folders/globs (any format of ``dataengine run``, read with ``reader``,
    default ``reader_config()``); write OUTPUT/{kept,rejected}/ and OUTPUT/run.json. A missing input
    raises FileNotFoundError, an input of unknown format staging.InputError, before any work."""
    cfg = cfg or DedupConfig()
    reader = reader or reader_config()
    t0 = time.time()
    timings: dict[str, float] = {}
    sources = staging.plan_inputs(inputs, reader)
    out = Path(output)
    tmp = out / ".dedup-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "kept").mkdir(parents=True)
    (tmp / "rejected").mkdir(parents=True)
    staged = staging.stage(sources, out / "_staged", tmp / "rejected", reader)
    if staged.units:
        timings["stage"] = round(time.time() - t0, 3)
    inputs_ = files.list_inputs(staged.paths)
    if cfg.survivor == "quality":
        _require_quality(inputs_)
    total = sum(f.num_rows for f in inputs_)
    parts = _partitions(cfg, total)
    bench = BenchmarkIndex.build(cfg.decontam) if cfg.decontam.enabled else None
    if total:
        written, report, signatures_stored = _passes(inputs_, cfg, bench, tmp, parts, timings)
    else:  # no document to dedup (every record was rejected while reading): no Ray passes
        written, report, signatures_stored = [], {}, None

    by_reason: Counter[str] = Counter()
    kept = 0
    for row in written:
        kept += int(row["kept"])
        by_reason.update(json.loads(row["counts"]))
    rejected = sum(by_reason.values())
    non_empty = sum(1 for f in inputs_ if f.num_rows)  # an empty input file has no rows to group
    if len(written) != non_empty or kept + rejected != total:
        raise RuntimeError(f"dedup conservation broken: input {total}, kept {kept}, rejected {rejected}")
    by_reason.update(staged.rejected)  # records rejected while reading (io:*) count as input too
    for sub in ("kept", "rejected"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (tmp / sub).replace(out / sub)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(out / "_staged", ignore_errors=True)  # its rows now live in kept/ and rejected/
    timings["total"] = round(time.time() - t0, 3)
    run = {
        "phase": "dedup",
        "inputs": [str(p) for p in inputs],
        "config": cfg.model_dump(mode="json"),
        "reader": reader.model_dump(mode="json"),
        # inputs read by run's readers into OUT/_staged (removed now): units, documents, io:* rejected
        "staged": {"units": staged.units, "documents": staged.documents, "rejected": staged.rejected.total()},
        "lsh": {"bands": cfg.minhash.band_params[0], "rows": cfg.minhash.band_params[1]},
        "versions": versions(),
        "timings": timings,
        "input": total + staged.rejected.total(),
        "kept": kept,
        "rejected": rejected + staged.rejected.total(),
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "decontam": report,
    }
    if signatures_stored is not None:
        run["minhash_signatures"] = {"from_column": signatures_stored, "computed": total - signatures_stored}
    tmp_json = out / "run.json.tmp"
    tmp_json.write_text(json.dumps(run, indent=2, sort_keys=False))
    tmp_json.replace(out / "run.json")
    return run


def _require_quality(inputs_: Sequence[files.InputFile]) -> None:
    """`survivor: quality` ranks by the quality stage's score: without the column it would silently
    keep the earliest document, so it fails before any work instead."""
    for f in inputs_:
        if f.num_rows and "quality" not in pq.read_schema(f.path).names:
            raise staging.InputError(
                f"dedup.survivor is 'quality' but {f.path} has no `quality` column (phase 1 writes it with "
                "stages.quality on); set dedup.survivor to longest or earliest"
            )


def _component_decisions(
    defaults: ray.data.Dataset,
    edges: ray.data.Dataset,
    attrs: list[ray.data.Dataset],
    cfg: DedupConfig,
    parts: int,
) -> ray.data.Dataset:
    """Connected components of the duplicate edges, one survivor each, merged into the default decisions."""
    comps = connected_components(edges, parts, cfg.minhash.max_cc_rounds)
    members = comps.join(
        attrs[0].union(*attrs[1:]) if len(attrs) > 1 else attrs[0], "inner", parts, on=("_uid",)
    )
    decided = (
        members.map_batches(lambda b: {**b, "_cpart": b["_comp"] % parts}, batch_format="numpy")
        .groupby("_cpart", num_partitions=parts)
        .map_groups(survivors.decide_components, batch_format="numpy")
        .rename_columns(
            {
                "_reject": "_c_reject",
                "duplicate_of": "_c_dup_of",
                "dup_cluster": "_c_cluster",
                "dup_cluster_size": "_c_size",
            }
        )
    )
    decisions = defaults.join(decided, "left_outer", parts, on=("_uid",))
    return decisions.map_batches(_merge_components, batch_format="numpy").materialize()


def _semantic(decisions: ray.data.Dataset, cfg: DedupConfig, parts: int) -> ray.data.Dataset:
    scfg = cfg.semantic
    alive = _select(decisions, lambda b: ~_is_str(b["reject"])).materialize()
    n = alive.count()
    if n == 0:
        return decisions.map_batches(
            lambda b: {**b, "semantic_cluster": np.full(len(b["_uid"]), np.nan)}, batch_format="numpy"
        )
    frac = min(1.0, scfg.kmeans_sample / n)
    sample = (
        alive.random_sample(frac, seed=scfg.seed)
        .limit(scfg.kmeans_sample)
        .take_batch(scfg.kmeans_sample, batch_format="numpy")
    )
    centroids = semantic.train_centroids(np.asarray(sample["_emb"], dtype=np.float32), scfg)
    sem = (
        alive.map_batches(
            lambda b: {
                "_uid": b["_uid"],
                "id": b["id"],
                "_prio": b["_prio"],
                "_emb": b["_emb"],
                "dup_cluster_size": b["dup_cluster_size"],
                "_sem_cluster": semantic.assign_clusters(np.asarray(b["_emb"], np.float32), centroids),
            },
            batch_format="numpy",
        )
        .groupby("_sem_cluster", num_partitions=parts)
        .map_groups(
            semantic.dedup_cluster, fn_kwargs={"threshold": scfg.cosine_threshold}, batch_format="numpy"
        )
        .map_batches(
            lambda b: {**b, "_s_present": np.full(len(b["_uid"]), "y", dtype=object)}, batch_format="numpy"
        )
        .rename_columns(
            {
                "_sem_cluster": "_s_cluster",
                "_sem_reject": "_s_reject",
                "_sem_dup_of": "_s_dup_of",
                "_sem_size": "_s_size",
            }
        )
    )

    def merge(b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        present = _is_str(b.pop("_s_present"))
        b["semantic_cluster"] = np.where(present, b.pop("_s_cluster").astype(np.float64), np.nan)
        rej, dup_of, size = b.pop("_s_reject"), b.pop("_s_dup_of"), b.pop("_s_size")
        take = present & _is_str(rej)
        b["reject"] = _str_col(np.where(take, rej, b["reject"]))
        b["duplicate_of"] = _str_col(np.where(take, dup_of, b["duplicate_of"]))
        b["dup_cluster"] = _str_col(np.where(take, dup_of, b["dup_cluster"]))
        b["_cut_text"] = _str_col(b["_cut_text"])
        b["dup_cluster_size"] = np.where(
            present, np.nan_to_num(size.astype(np.float64)), b["dup_cluster_size"]
        ).astype(np.int32)
        return b

    joined = decisions.drop_columns(["_emb"]).join(sem, "left_outer", parts, on=("_uid",))
    return joined.map_batches(merge, batch_format="numpy")


def _insert_kept(decisions: ray.data.Dataset, meta: ray.data.Dataset, cfg: DedupConfig) -> None:
    """Add this batch's survivors to the persistent index (streamed; the index itself lives in Redis or a file)."""
    index = IncrementalIndex(cfg.incremental, cfg.minhash)
    kept = _select(decisions, lambda b: ~_is_str(b["reject"]), ["_uid"])
    sigs = kept.join(meta.select_columns(["_uid", "id", "_sig"]), "inner", _partitions(cfg, 1), on=("_uid",))
    for batch in sigs.iter_batches(batch_size=5000, batch_format="numpy"):
        index.insert(batch["id"].tolist(), np.asarray(batch["_sig"], dtype=np.uint32))
    index.save()
