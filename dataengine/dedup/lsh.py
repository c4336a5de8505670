"""LSH banding, candidate pairs and their exact-Jaccard verification, on either executor (dedup/executors.py).

Each document contributes one row per band (band key, row id). A groupby on a
partition of the band key brings equal keys together; every bucket with more
than one member yields candidate pairs. Candidates are then checked against
the documents' true shingle sets, fetched from the input files by row id (one
read per input file and stage), so LSH false positives never become edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from dataengine.dedup import columns as C
from dataengine.dedup import files
from dataengine.dedup.config import MinHashConfig
from dataengine.dedup.minhash import EMPTY, band_keys, jaccard, shingle_sets

EMPTY_PAIRS = {"a": np.zeros(0, np.int64), "b": np.zeros(0, np.int64)}


def _band_rows(batch: dict[str, np.ndarray], bands: int, rows: int, parts: int) -> dict[str, np.ndarray]:
    sig = np.asarray(batch[C.SIG], dtype=np.uint32)
    keep = ~np.all(sig == EMPTY, axis=1)  # a document without shingles matches nothing
    keys = band_keys(sig[keep], bands, rows).ravel()
    uid = np.repeat(batch[C.UID][keep], bands)
    return {"_band": keys, C.UID: uid, "_part": (keys.view(np.uint64) % np.uint64(parts)).astype(np.int64)}


def _bucket_pairs(part: dict[str, np.ndarray], max_bucket_pairs: int) -> dict[str, np.ndarray]:
    """All pairs inside small buckets; a star from the first member inside large ones."""
    order = np.lexsort((part[C.UID], part["_band"]))
    band, uid = part["_band"][order], part[C.UID][order]
    if len(band) < 2:
        return EMPTY_PAIRS
    starts = np.flatnonzero(np.concatenate([[True], band[1:] != band[:-1]]))
    sizes = np.diff(np.concatenate([starts, [len(band)]]))
    a_out, b_out = [], []
    for s, k in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
        members = uid[s : s + k]
        if k <= max_bucket_pairs:
            i, j = np.triu_indices(k, 1)
            a_out.append(members[i])
            b_out.append(members[j])
        else:
            a_out.append(np.full(k - 1, members[0]))
            b_out.append(members[1:])
    if not a_out:
        return EMPTY_PAIRS
    a, b = np.concatenate(a_out), np.concatenate(b_out)
    pairs = np.unique(np.stack([a, b], axis=1), axis=0)
    return {"a": pairs[:, 0], "b": pairs[:, 1]}


def candidate_pairs(ex: Any, sigs: Any, cfg: MinHashConfig) -> Any:
    """Rows (a, b), a < b, of documents sharing at least one band (duplicates possible across partitions)."""
    bands, rows = cfg.band_params
    banded = ex.map(
        ex.select_columns(sigs, [C.UID, C.SIG]), _band_rows, bands=bands, rows=rows, parts=ex.parts
    )
    return ex.group_map(banded, "_part", _bucket_pairs, max_bucket_pairs=cfg.max_bucket_pairs)


# Candidate pairs are grouped by blocks of 2^14 rows of one input file, so a group's
# shingle sets stay small however many candidates a large file produces.
_BLOCK_BITS = 14


def _block(uid: np.ndarray) -> np.ndarray:
    return np.asarray(uid, dtype=np.int64) >> _BLOCK_BITS


def _shingles_of(uid: np.ndarray, paths: Sequence[str], cfg: MinHashConfig) -> dict[int, np.ndarray]:
    """Shingle sets of the given rows, read from their input files."""
    unique = np.unique(uid)
    out: dict[int, np.ndarray] = {}
    for f in np.unique(files.file_of(unique)).tolist():
        mine = unique[files.file_of(unique) == f]
        table = files.read_columns(paths[f], ["text", "lang"]).take(pa.array(files.row_of(mine)))
        sets = shingle_sets(table.column("text").to_pylist(), table.column("lang").to_pylist(), cfg)
        out.update(zip(mine.tolist(), sets, strict=True))
    return out


def _attach_a(group: pa.Table, paths: Sequence[str], cfg: MinHashConfig) -> pa.Table:
    pairs = np.unique(np.stack([group["a"].to_numpy(), group["b"].to_numpy()], axis=1), axis=0)
    sets = _shingles_of(pairs[:, 0], paths, cfg)
    sh_a = pa.array([sets[a] for a in pairs[:, 0].tolist()], type=pa.list_(pa.uint64()))
    return pa.table({"a": pairs[:, 0], "b": pairs[:, 1], "_gb": _block(pairs[:, 1]), "sh_a": sh_a})


def _verify_b(group: pa.Table, paths: Sequence[str], cfg: MinHashConfig) -> dict[str, np.ndarray]:
    a, b = group["a"].to_numpy(), group["b"].to_numpy()
    sets = _shingles_of(b, paths, cfg)
    sh_a = group["sh_a"]
    sims = np.array(
        [jaccard(sh_a[i].values.to_numpy(), sets[int(b[i])]) for i in range(len(b))], dtype=np.float32
    )
    keep = sims >= cfg.jaccard_threshold
    return {"x": a[keep], "y": b[keep], "jaccard": sims[keep]}


def _with_block_a(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {**t, "_ga": _block(t["a"])}


def verified_edges(ex: Any, pairs: Any, paths: Sequence[str], cfg: MinHashConfig) -> Any:
    """Candidate pairs whose true shingle Jaccard reaches `jaccard_threshold`: rows (x, y, jaccard)."""
    kw = {"paths": list(paths), "cfg": cfg}
    with_a = ex.group_map(ex.map(pairs, _with_block_a), "_ga", _attach_a, batch_format="pyarrow", **kw)
    return ex.group_map(with_a, "_gb", _verify_b, batch_format="pyarrow", **kw)
