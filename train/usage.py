"""A training run's place in the usage ledger (DESIGN §3.4): its id, and the use counts of the earlier
runs it names.

The id is created on the run's first start and kept in RUN/run.json (with the ledger it records
into), so moving or renaming the run directory keeps its history, and two runs never share an id
because they share a path. Earlier runs are named by their directories; their own run.json says
where their ledger is.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np

from dataengine.usage.ledger import UsageLedger, ledger_path

RUN_FILE = "run.json"


def run_ledger(run_dir: str | Path, ledger: str | None) -> Path:
    """The ledger a run records into: usage.ledger, else RUN/usage.sqlite."""
    return ledger_path(ledger) if ledger else Path(run_dir) / "usage.sqlite"


def run_identity(run_dir: str | Path, ledger: Path) -> str:
    """The run's id (created on first start); RUN/run.json is rewritten with the ledger in use."""
    path = Path(run_dir) / RUN_FILE
    run_id = json.loads(path.read_text())["run_id"] if path.is_file() else uuid.uuid4().hex
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"run_id": run_id, "ledger": str(ledger.resolve())}, indent=1) + "\n")
    tmp.replace(path)
    return run_id


def prior_counts(prior_runs: list[str], dataset: str, shard_sizes: list[int]) -> np.ndarray:
    """Uses per sequence over the named earlier runs (each a run directory holding run.json)."""
    total = np.zeros(int(sum(shard_sizes)), dtype=np.int64)
    for run_dir in prior_runs:
        path = Path(run_dir) / RUN_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"usage.prior_runs: {run_dir} is not a training run directory (no {RUN_FILE})"
            )
        identity = json.loads(path.read_text())
        if not Path(identity["ledger"]).is_file():
            raise FileNotFoundError(f"usage.prior_runs: {run_dir}'s ledger {identity['ledger']} is gone")
        ledger = UsageLedger(identity["ledger"])
        try:
            trained_on = ledger.run_dataset(identity["run_id"])
            if trained_on is None:
                raise ValueError(f"usage.prior_runs: {run_dir} has recorded nothing in {identity['ledger']}")
            if trained_on != dataset:
                raise ValueError(
                    f"usage.prior_runs: {run_dir} trained on shards {trained_on}, data.shards is {dataset} "
                    "(prior runs must have used the same shards)"
                )
            total += ledger.counts(dataset, shard_sizes, [identity["run_id"]])
        finally:
            ledger.close()
    return total
