"""The usage ledger (DESIGN §3.4): which sequence ids each training run consumed at which step.

Embedded SQLite. The trainer appends a run's steps in one transaction right before each checkpoint,
and on resume from step S deletes that run's steps after S, so the counts always match the data the
restored model has seen. Each run records into its own RUN/usage.sqlite by default; several runs (and
datasets, told apart by a fingerprint of their manifest) may share one file. The use counts of the
earlier runs a config names (usage.prior_runs) order the sampler's epochs, least used first.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    started REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS usage (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    shard INTEGER NOT NULL,
    row INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_run_step ON usage (run_id, step);
"""


def dataset_fingerprint(shards_root: str | Path) -> str:
    """Identity of a shard set: sha256 of its manifest (tokenizer, seq_len, per-shard counts); the shards
    may be local or on object storage (s3://...)."""
    from dataengine.io.paths import join, read_bytes

    return hashlib.sha256(read_bytes(join(shards_root, "manifest.json"))).hexdigest()[:16]


def ledger_path(path: str | Path) -> Path:
    """A ledger file, or a shards directory meaning its default `usage.sqlite`."""
    path = Path(path)
    return path / "usage.sqlite" if path.is_dir() else path


class UsageLedger:
    def __init__(self, path: str | Path):
        self.path = ledger_path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def register_run(self, run_id: str, dataset: str) -> None:
        with self.db:
            row = self.db.execute("SELECT dataset FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                self.db.execute("INSERT INTO runs VALUES (?, ?, ?)", (run_id, dataset, time.time()))
            elif row[0] != dataset:
                raise ValueError(
                    f"{self.path}: run {run_id!r} was recorded on dataset {row[0]}, now given {dataset} "
                    "(use a new run_dir for different shards)"
                )

    def record(self, run_id: str, steps: Iterable[tuple[int, Iterable[tuple[int, int]]]]) -> None:
        """Append (step, [(shard, row), ...]) pairs atomically."""
        rows = [(run_id, step, shard, row) for step, ids in steps for shard, row in ids]
        with self.db:
            self.db.executemany("INSERT INTO usage VALUES (?, ?, ?, ?)", rows)

    def truncate(self, run_id: str, after_step: int) -> int:
        """Forget what `run_id` recorded after `after_step`; returns the number of rows removed."""
        with self.db:
            cur = self.db.execute("DELETE FROM usage WHERE run_id = ? AND step > ?", (run_id, after_step))
        return cur.rowcount

    def counts(self, dataset: str, shard_sizes: list[int], run_ids: list[str] | None = None) -> np.ndarray:
        """Uses per sequence of `dataset` over all runs (or `run_ids`), indexed like
        ShardReader.sequence_ids()."""
        offsets = np.concatenate([[0], np.cumsum(shard_sizes)]).astype(np.int64)
        out = np.zeros(int(offsets[-1]), dtype=np.int64)
        query = (
            "SELECT u.shard, u.row, COUNT(*) FROM usage u JOIN runs r ON u.run_id = r.run_id "
            "WHERE r.dataset = ?"
        )
        params: list[str] = [dataset]
        if run_ids is not None:
            query += f" AND r.run_id IN ({', '.join('?' * len(run_ids))})"
            params += run_ids
        for shard, row, n in self.db.execute(query + " GROUP BY u.shard, u.row", params):
            if shard >= len(shard_sizes) or row >= shard_sizes[shard]:
                raise ValueError(f"{self.path}: sequence ({shard}, {row}) is not in dataset {dataset}")
            out[offsets[shard] + row] += n
        return out

    def run_dataset(self, run_id: str) -> str | None:
        row = self.db.execute("SELECT dataset FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else row[0]

    def run_steps(self, run_id: str) -> list[tuple[int, int, int]]:
        """(step, shard, row) recorded for a run, in order."""
        query = "SELECT step, shard, row FROM usage WHERE run_id = ? ORDER BY step, rowid"
        return list(self.db.execute(query, (run_id,)))

    def runs(self) -> list[dict]:
        query = (
            "SELECT r.run_id, r.dataset, r.started, COUNT(u.step), MAX(u.step) "
            "FROM runs r LEFT JOIN usage u ON u.run_id = r.run_id GROUP BY r.run_id ORDER BY r.started"
        )
        keys = ("run_id", "dataset", "started", "sequences", "last_step")
        return [dict(zip(keys, row, strict=True)) for row in self.db.execute(query)]

    def sequence_uses(self, dataset: str) -> list[tuple[int, int, int]]:
        """(shard, row, uses) for every used sequence of `dataset`."""
        query = (
            "SELECT u.shard, u.row, COUNT(*) FROM usage u JOIN runs r ON u.run_id = r.run_id "
            "WHERE r.dataset = ? GROUP BY u.shard, u.row ORDER BY u.shard, u.row"
        )
        return list(self.db.execute(query, (dataset,)))
