"""Connected components of the duplicate graph as Ray Data passes.

The alternating large-star / small-star rounds of Kiveris et al. ("Connected
Components in MapReduce and Beyond", 2014) are min-label propagation on the
edge list itself: each round is two groupbys over edges keyed by node
partition, every group handled with vectorized numpy. Nothing ever gathers
the graph into one process; the driver only reads a per-round checksum of the
edge set to see when a round changed nothing. At the fixed point every node
links straight to the smallest node of its component.
"""

from __future__ import annotations

import numpy as np
import ray.data

from dataengine.dedup import columns as C

_P = np.uint64(0x100000001B3)
_EMPTY = {"x": np.zeros(0, np.int64), "y": np.zeros(0, np.int64)}


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = x.view(np.uint64) * _P + y.view(np.uint64)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
    return h


def _grouped_min(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort by (u, v) and give each row the minimum v of its u-run."""
    order = np.lexsort((v, u))
    u, v = u[order], v[order]
    starts = np.flatnonzero(np.concatenate([[True], u[1:] != u[:-1]]))
    run_min = np.repeat(v[starts], np.diff(np.concatenate([starts, [len(u)]])))
    return np.stack([u, v, run_min])


def _large_star(part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Node u links every larger neighbour to min(u, neighbours)."""
    u, v = part["u"], part["v"]
    if len(u) == 0:
        return _EMPTY
    u, v, m = _grouped_min(u, v)
    m = np.minimum(m, u)
    keep = v > u
    return {"x": v[keep], "y": m[keep]}


def _small_star(part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Node u links itself and its smaller neighbours to the smallest of them; reports a set checksum."""
    u, v = part["u"], part["v"]
    if len(u) == 0:
        return {
            **_EMPTY,
            "_ck_lo": np.zeros(0, np.int64),
            "_ck_hi": np.zeros(0, np.int64),
            "_n": np.zeros(0, np.int64),
        }
    uv = np.unique(np.stack([u, v], axis=1), axis=0)
    u, v, m = _grouped_min(uv[:, 0], uv[:, 1])
    h = _mix(u, v)
    x = np.concatenate([v[v != m], np.unique(u)])
    first = np.concatenate([[True], u[1:] != u[:-1]])
    y = np.concatenate([m[v != m], m[first]])
    ck = np.zeros(len(x), np.int64)
    ck_lo, ck_hi, n = ck.copy(), ck.copy(), ck.copy()
    if len(x):
        ck_lo[0] = int((h & np.uint64(0xFFFFFF)).sum())
        ck_hi[0] = int((h >> np.uint64(40)).sum())
        n[0] = len(uv)
    return {"x": x, "y": y, "_ck_lo": ck_lo, "_ck_hi": ck_hi, "_n": n}


def _both_directions(batch: dict[str, np.ndarray], parts: int) -> dict[str, np.ndarray]:
    u = np.concatenate([batch["x"], batch["y"]])
    v = np.concatenate([batch["y"], batch["x"]])
    return {"u": u, "v": v, "_part": u % parts}


def _larger_first(batch: dict[str, np.ndarray], parts: int) -> dict[str, np.ndarray]:
    x, y = batch["x"], batch["y"]
    keep = x != y
    u, v = np.maximum(x, y)[keep], np.minimum(x, y)[keep]
    return {"u": u, "v": v, "_part": u % parts}


def _node_rows(batch: dict[str, np.ndarray], parts: int) -> dict[str, np.ndarray]:
    node = np.concatenate([batch["x"], batch["y"]])
    return {C.UID: node, C.COMP: np.concatenate([batch["y"], batch["y"]]), "_part": node % parts}


def _labels(part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """At the fixed point: one (node, component) row per node, roots included."""
    nodes, idx = np.unique(part[C.UID], return_index=True)
    return {C.UID: nodes, C.COMP: part[C.COMP][idx]}


def _block_sums(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.array([int(batch[k].sum())], dtype=np.int64) for k in ("_ck_lo", "_ck_hi", "_n")}


def _checksum(edges: ray.data.Dataset) -> tuple[int, int, int]:
    """(checksum, checksum, size) of the deduplicated edge set, reduced per block so the driver sees a few numbers."""
    rows = (
        edges.select_columns(["_ck_lo", "_ck_hi", "_n"])
        .map_batches(_block_sums, batch_size=None, batch_format="numpy")
        .take_all()
    )
    return tuple(sum(int(r[k]) for r in rows) for k in ("_ck_lo", "_ck_hi", "_n"))


def connected_components(edges: ray.data.Dataset, parts: int, max_rounds: int = 64) -> ray.data.Dataset:
    """Rows (_uid, _comp) for every node of `edges` (columns x, y); _comp is the smallest node id of its component."""
    current = edges.select_columns(["x", "y"]).materialize()
    previous: tuple[int, int, int] | None = None
    for _ in range(max_rounds):
        large = (
            current.map_batches(_both_directions, fn_kwargs={"parts": parts}, batch_format="numpy")
            .groupby("_part", num_partitions=parts)
            .map_groups(_large_star, batch_format="numpy")
        )
        small = (
            large.map_batches(_larger_first, fn_kwargs={"parts": parts}, batch_format="numpy")
            .groupby("_part", num_partitions=parts)
            .map_groups(_small_star, batch_format="numpy")
            .materialize()
        )
        checksum = _checksum(small)
        current = small.select_columns(["x", "y"])
        if checksum == previous:
            break
        previous = checksum
    else:
        raise RuntimeError(
            f"connected components did not converge in {max_rounds} rounds (minhash.max_cc_rounds)"
        )
    # A root appears in many partitions (as y); group by node to give each node one row.
    return (
        current.map_batches(_node_rows, fn_kwargs={"parts": parts}, batch_format="numpy")
        .groupby("_part", num_partitions=parts)
        .map_groups(_labels, batch_format="numpy")
    )
