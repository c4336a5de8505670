"""Ray Data settings for phase 2.

Phase 2 runs many small groupbys (LSH buckets, component rounds). Ray's
default hash shuffle starts aggregator actors for each one, which costs
seconds per shuffle on a small machine; the sort-based pull shuffle starts
plain tasks and scales the same way. The setting is scoped so the caller's
own Ray Data work keeps its defaults.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ray.data import DataContext


@contextmanager
def phase2_context(shuffle_strategy: str = "sort_shuffle_pull_based") -> Iterator[DataContext]:
    ctx = DataContext.get_current()
    saved = ctx.shuffle_strategy
    ctx.shuffle_strategy = shuffle_strategy
    try:
        yield ctx
    finally:
        ctx.shuffle_strategy = saved
