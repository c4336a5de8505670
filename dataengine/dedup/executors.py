"""Where phase 2's passes run: on Ray Data, or in this process for small jobs.

The passes (dedup/passes.py) are written once against the `Executor` operations below: map, select,
group-and-apply, join on `_uid`, union, connected components. `RayExecutor` maps them onto Ray Data
(shuffles, actor pools; any cluster size). `LocalExecutor` holds every row as numpy columns in this
process and runs the same per-group functions on the same groups, so its decisions are the Ray path's,
without Ray's start-up and per-shuffle scheduling (seconds each), which dominate a small job.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import pyarrow as pa

from dataengine.dedup import columns as C
from dataengine.dedup.config import DedupConfig
from dataengine.runtime import alive_cpus, init_ray

Batch = dict[str, np.ndarray]
# An in-process dataset: numpy columns of equal length (a pyarrow Table between pyarrow-format steps).
Rows = Batch | pa.Table


def _ray_running() -> bool:
    """Ray is connected in this process (checked without importing ray: importing it alone costs ~1 s)."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def choose(cfg: DedupConfig, total_rows: int, parts: int) -> RayExecutor | LocalExecutor:
    """`dedup.executor`: "ray", "local", or "auto": in process when Ray is not already connected, no
    RAY_ADDRESS names a cluster and the job holds at most `dedup.local_max_rows` documents."""
    if cfg.executor == "local":
        return LocalExecutor(parts)
    if cfg.executor == "auto" and not _ray_running() and not os.environ.get("RAY_ADDRESS"):
        if total_rows <= cfg.local_max_rows:
            return LocalExecutor(parts)
    return RayExecutor(parts)


class LocalExecutor:
    """Every pass on whole numpy columns in this process (small jobs)."""

    name = "local"

    def __init__(self, parts: int):
        self.parts = parts

    def context(self) -> AbstractContextManager:
        return nullcontext()

    def files(self, indices: Sequence[int], reader: type, kwargs: dict[str, Any]) -> Batch:
        fn = reader(**kwargs)
        return _concat([chunk for f in indices for chunk in fn({"file": np.array([f])})])

    def actor_map(self, d: Batch, cls: type, kwargs: dict[str, Any], size: int) -> Batch:
        return cls(**kwargs)(d)

    def map(self, d: Rows, fn: Callable, **kwargs: Any) -> Batch:
        return fn(_numpy(d), **kwargs)

    def select(self, d: Rows, predicate: Callable, columns: Sequence[str] | None = None) -> Batch:
        d = _numpy(d)
        mask = predicate(d)
        return {k: v[mask] for k, v in d.items() if columns is None or k in columns}

    def group_map(
        self,
        d: Rows,
        key: str,
        fn: Callable,
        batch_format: str = "numpy",
        remote_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Rows:
        """fn on each group of equal `key`, as Ray Data's groupby().map_groups() calls it."""
        table = _arrow(d) if batch_format == "pyarrow" else _numpy(d)
        keys = np.asarray(table[key]) if isinstance(table, dict) else table[key].to_numpy()
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        bounds = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1  # keys may be strings
        groups = np.split(order, bounds) if len(keys) else [order]
        outs = []
        for rows in groups:
            part = (
                table.take(pa.array(rows))
                if isinstance(table, pa.Table)
                else {k: v[rows] for k, v in table.items()}
            )
            outs.append(fn(part, **kwargs))
        if all(isinstance(o, pa.Table) for o in outs):
            return pa.concat_tables(outs)
        return _concat([_numpy(o) for o in outs])

    def join(self, left: Rows, right: Rows, how: str) -> Batch:
        """Join on `_uid` ("inner" or "left_outer"); a left-join miss is None (strings) or NaN (numbers), as on Ray."""
        left, right = _numpy(left), _numpy(right)
        keys, first = np.unique(right[C.UID], return_index=True)
        if len(keys) != len(right[C.UID]):
            if how == "inner" and len(np.unique(left[C.UID])) == len(left[C.UID]):
                return self.join(right, left, how)
            raise ValueError("in-process join needs unique _uid on one side")
        pos = np.minimum(np.searchsorted(keys, left[C.UID]), max(len(keys) - 1, 0))
        found = keys[pos] == left[C.UID] if len(keys) else np.zeros(len(left[C.UID]), bool)
        src = first[pos] if len(keys) else pos
        if how == "inner":
            out = {k: v[found] for k, v in left.items()}
            out.update({k: v[src[found]] for k, v in right.items() if k != C.UID})
            return out
        out = dict(left)
        for k, v in right.items():
            if k == C.UID:
                continue
            if v.dtype == object:
                col = np.full(len(found), None, dtype=object)
            else:
                col = np.full(len(found), np.nan, dtype=np.float64)
            if len(keys):
                col[found] = v[src[found]]
            out[k] = col
        return out

    def union(self, ds: Sequence[Rows]) -> Batch:
        return _concat([_numpy(d) for d in ds])

    def materialize(self, d: Rows) -> Rows:
        return d

    def count(self, d: Rows) -> int:
        return d.num_rows if isinstance(d, pa.Table) else len(next(iter(d.values()))) if d else 0

    def sum(self, d: Batch, column: str) -> int:
        return int(np.asarray(d[column]).sum())

    def columns(self, d: Rows) -> list[str]:
        return list(d.column_names if isinstance(d, pa.Table) else d)

    def select_columns(self, d: Rows, cols: Sequence[str]) -> Batch:
        d = _numpy(d)
        return {k: d[k] for k in cols}

    def drop_columns(self, d: Rows, cols: Sequence[str]) -> Batch:
        return {k: v for k, v in _numpy(d).items() if k not in cols}

    def rename_columns(self, d: Rows, names: dict[str, str]) -> Batch:
        return {names.get(k, k): v for k, v in _numpy(d).items()}

    def rows(self, d: Rows) -> list[dict[str, Any]]:
        d = _numpy(d)
        n = self.count(d)
        return [{k: v[i] for k, v in d.items()} for i in range(n)]

    def batches(self, d: Rows, size: int) -> Iterator[Batch]:
        d = _numpy(d)
        for lo in range(0, self.count(d), size):
            yield {k: v[lo : lo + size] for k, v in d.items()}

    def from_batch(self, b: Batch) -> Batch:
        return b

    def gpu_args(self, device: str | None) -> dict[str, Any]:
        return {}

    def smallest(self, d: Rows, key: str, k: int) -> Batch:
        d = _numpy(d)
        order = np.argsort(d[key], kind="stable")[:k]
        return {c: v[order] for c, v in d.items()}

    def components(self, edges: Rows, max_rounds: int) -> Batch:
        """(_uid, _comp) per node of the edges, _comp the smallest node of its component (as on Ray)."""
        e = _numpy(edges)
        return dict(zip((C.UID, C.COMP), components(np.asarray(e[C.X]), np.asarray(e[C.Y])), strict=True))


def components(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(node, smallest node of its component) for every node of the edges (x, y).

    Min-label hooking plus pointer jumping over numpy arrays: a few passes of the edge list, each a
    vectorized scatter-min. (scipy.sparse.csgraph gives the same in one call, but importing it costs
    ~0.7 s, more than this whole pass on a small job.)
    """
    nodes, idx = np.unique(np.concatenate([x, y]).astype(np.int64), return_inverse=True)
    a, b = idx[: len(x)], idx[len(x) :]
    label = np.arange(len(nodes))  # nodes are sorted: the smallest index is the smallest node
    while True:
        low = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new]
        if np.array_equal(new, label):
            return nodes, nodes[label]
        label = new


class RayExecutor:
    """Every pass as Ray Data operations (shuffles of small decision rows; any cluster size)."""

    name = "ray"

    def __init__(self, parts: int):
        self.parts = parts
        self.ray = init_ray()

    def context(self) -> AbstractContextManager:
        from dataengine.dedup.raytools import phase2_context

        return phase2_context()

    def files(self, indices: Sequence[int], reader: type, kwargs: dict[str, Any]):
        data = self.ray.data
        cpus = alive_cpus(self.ray)
        return data.from_items([{"file": f} for f in indices], override_num_blocks=len(indices)).map_batches(
            reader,
            fn_constructor_kwargs=kwargs,
            batch_size=1,
            batch_format="numpy",
            compute=data.ActorPoolStrategy(min_size=1, max_size=cpus),
        )

    def actor_map(self, d, cls: type, kwargs: dict[str, Any], size: int):
        return d.map_batches(
            cls,
            fn_constructor_kwargs=kwargs,
            batch_format="numpy",
            compute=self.ray.data.ActorPoolStrategy(size=size),
        )

    def map(self, d, fn: Callable, **kwargs: Any):
        return d.map_batches(fn, fn_kwargs=kwargs, batch_format="numpy")

    def select(self, d, predicate: Callable, columns: Sequence[str] | None = None):
        def fn(b: Batch) -> Batch:
            mask = predicate(b)
            return {k: v[mask] for k, v in b.items() if columns is None or k in columns}

        return d.map_batches(fn, batch_format="numpy")

    def group_map(
        self,
        d,
        key: str,
        fn: Callable,
        batch_format: str = "numpy",
        remote_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        return d.groupby(key, num_partitions=self.parts).map_groups(
            fn, fn_kwargs=kwargs, batch_format=batch_format, **(remote_args or {})
        )

    def join(self, left, right, how: str):
        return left.join(right, how, self.parts, on=(C.UID,))

    def union(self, ds: Sequence[Any]):
        return ds[0].union(*ds[1:]) if len(ds) > 1 else ds[0]

    def materialize(self, d):
        return d.materialize()

    def count(self, d) -> int:
        return d.count()

    def sum(self, d, column: str) -> int:
        return int(d.sum(column) or 0)

    def columns(self, d) -> list[str]:
        return d.columns()

    def select_columns(self, d, cols: Sequence[str]):
        return d.select_columns(list(cols))

    def drop_columns(self, d, cols: Sequence[str]):
        return d.drop_columns(list(cols))

    def rename_columns(self, d, names: dict[str, str]):
        return d.rename_columns(names)

    def rows(self, d) -> list[dict[str, Any]]:
        return d.take_all()

    def batches(self, d, size: int) -> Iterator[Batch]:
        return d.iter_batches(batch_size=size, batch_format="numpy")

    def smallest(self, d, key: str, k: int) -> Batch:
        return d.sort(key).limit(k).take_batch(k, batch_format="numpy")

    def from_batch(self, b: Batch):
        return self.ray.data.from_arrow(pa.table(b))

    def gpu_args(self, device: str | None) -> dict[str, Any]:
        """One GPU per task of a model embedder when the cluster has GPUs (and the device is not the CPU)."""
        from dataengine.runtime import alive_resources

        if device == "cpu" or not alive_resources(self.ray).get("GPU", 0):
            return {}
        return {"num_gpus": 1}

    def components(self, edges, max_rounds: int):
        from dataengine.dedup.components import connected_components

        return connected_components(edges, self.parts, max_rounds)


def _numpy(d: Rows) -> Batch:
    if isinstance(d, pa.Table):
        return {c: d[c].to_numpy() for c in d.column_names}
    return d


def _arrow(d: Rows) -> pa.Table:
    return d if isinstance(d, pa.Table) else pa.table(d)


def _concat(parts: Sequence[Batch]) -> Batch:
    parts = [p for p in parts if p]
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
