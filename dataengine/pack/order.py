"""Document orders for packing: a plug-in point on the Ray dataset of documents.

An order is a deterministic transform of the document dataset (columns of §3.1) that returns
the documents in the order they are packed. ``input`` keeps plan order; ``shuffle`` sorts by a
seeded hash of the id, which depends on neither block layout nor worker count (Ray's
``random_shuffle`` does). A later similarity order (neighbouring documents packed together)
registers itself with ``register_order`` and is chosen by name in the pack config.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import ray.data

from dataengine.pack.holdout import id_fraction

ORDER_KEY = "_order_key"


class DocumentOrder(ABC):
    """Returns the documents of ``ds`` in packing order; must be deterministic for a given seed."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    @abstractmethod
    def apply(self, ds: ray.data.Dataset) -> ray.data.Dataset: ...


class InputOrder(DocumentOrder):
    """Work units in plan order (files sorted, as by `dataengine run`), records in file order."""

    def apply(self, ds: ray.data.Dataset) -> ray.data.Dataset:
        return ds


class ShuffleOrder(DocumentOrder):
    """A seeded permutation: sort by hash(seed, id), ties broken by id and source."""

    def apply(self, ds: ray.data.Dataset) -> ray.data.Dataset:
        seed = self.seed

        def add_key(batch: pa.Table) -> pa.Table:
            keys = np.fromiter((id_fraction(i, seed) for i in batch["id"].to_pylist()), dtype=np.float64)
            return batch.append_column(ORDER_KEY, pa.array(keys))

        keyed = ds.map_batches(add_key, batch_format="pyarrow")
        return keyed.sort([ORDER_KEY, "id", "source"]).drop_columns([ORDER_KEY])


ORDERS: dict[str, Callable[[int], DocumentOrder]] = {"input": InputOrder, "shuffle": ShuffleOrder}


def register_order(name: str, factory: Callable[[int], DocumentOrder]) -> None:
    """Make an order selectable by name (``factory(seed)`` builds it)."""
    ORDERS[name] = factory


def make_order(name: str, seed: int = 0) -> DocumentOrder:
    if name not in ORDERS:
        raise ValueError(f"order {name!r}: expected one of {sorted(ORDERS)}")
    return ORDERS[name](seed)
