"""The experiment's tables: experiments.parquet (one row per run) and curves.parquet (one row per logged
step of every run: training loss and in-loop held-out loss per channel), written atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from train.experiment.grid import RunSpec
from train.experiment.runs import read_metrics


def run_curves(runs: list[RunSpec]) -> pd.DataFrame:
    records = []
    for run in runs:
        for record in read_metrics(Path(run.train.run_dir)):
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
