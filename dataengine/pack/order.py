"""Document orders for packing: a plug-in point on the Ray dataset of documents.

An order is a deterministic transform of the document dataset (columns of §3.1) that returns
the documents in the order they are packed. ``input`` keeps plan order; ``shuffle`` sorts by a
seeded hash of the id, which depends on neither block layout nor worker count (Ray's
``random_shuffle`` does). ``similar`` (dataengine/pack/similar.py) packs related documents
together. More orders register themselves with ``register_order`` and are chosen by name in the
pack config.

An order may also look at the ordered stream as the packer reads it (``stream``: the similar
order's guard against adjacent near-duplicates) and report figures for the manifest (``stats``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import ray.data

from dataengine.pack.config import PackConfig
from dataengine.pack.holdout import Heldout, id_fraction

ORDER_KEY = "_order_key"


class DocumentOrder(ABC):
    """Returns the documents of ``ds`` in packing order; must be deterministic for a given seed."""

    def __init__(self, config: PackConfig, files: Sequence[str] = ()) -> None:
        self.config = config
        self.seed = config.seed
        self.files = list(files)  # the input files (the similar order finds the run's embeddings by them)

    @abstractmethod
    def apply(self, ds: ray.data.Dataset) -> ray.data.Dataset: ...

    def stream(self, tables: Iterator[pa.Table], heldout: Heldout) -> Iterator[pa.Table]:
        """The ordered tables as the packer takes them (``heldout`` names each row's split)."""
        return tables

    def stats(self) -> dict[str, Any]:
        """Figures for the manifest's ``order`` entry, once the stream has been read."""
        return {}


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


def _similar(config: PackConfig, files: Sequence[str] = ()) -> DocumentOrder:
    from dataengine.pack.similar import SimilarOrder  # faiss and the embedders only when chosen

    return SimilarOrder(config, files)


ORDERS: dict[str, Callable[..., DocumentOrder]] = {
    "input": InputOrder,
    "shuffle": ShuffleOrder,
    "similar": _similar,
}


def register_order(name: str, factory: Callable[..., DocumentOrder]) -> None:
    """Make an order selectable by name (``factory(pack_config, input_files)`` builds it)."""
    ORDERS[name] = factory


def make_order(config: PackConfig, files: Sequence[str] = ()) -> DocumentOrder:
    if config.order not in ORDERS:
        raise ValueError(f"order {config.order!r}: expected one of {sorted(ORDERS)}")
    return ORDERS[config.order](config, files)
