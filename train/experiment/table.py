"""The experiment's tables: experiments.parquet (one row per run) and curves.parquet (one row per logged
step of every run: training loss and in-loop held-out loss per channel), written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from train.experiment.grid import RunSpec


def run_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def run_curves(runs: list[RunSpec]) -> pd.DataFrame:
    records = []
    for run in runs:
        path = Path(run.train.run_dir) / "metrics.jsonl"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            kept = {k.replace("heldout/loss", "heldout_loss"): v for k, v in record.items() if "loss" in k}
            if kept and "step" in record:
                records.append(
                    {"run_id": run.run_id, "step": record["step"], "tokens": record.get("tokens")} | kept
                )
    return pd.DataFrame(records)


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path
