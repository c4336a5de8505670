"""The runs of an experiment: the product of its axes, each a validated train config and its labels."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataengine.configio import ConfigError
from train.config import TrainConfig, load_train_config
from train.experiment.config import ExperimentConfig


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    labels: dict[str, str]  # axis name -> label
    fit: bool  # False: held out of the law fits
    train: TrainConfig
    directory: Path  # run dir: train/ (the trainer's run_dir), eval/, result.json


def override(key: str, value: Any, cfg: ExperimentConfig) -> str:
    """A `--set` item; `{output}` expanded in a string value or in the strings of a list."""
    if isinstance(value, str):
        value = cfg.expand(value)
    elif isinstance(value, list):
        value = [cfg.expand(v) if isinstance(v, str) else v for v in value]
    return f"{key}={json.dumps(value)}"  # JSON is YAML: --set parses it back to the same value


def expand_runs(cfg: ExperimentConfig) -> list[RunSpec]:
    """Every run's train config, validated before any work (an error names the run and the key)."""
    root = Path(cfg.output) / "runs"
    names = list(cfg.axes)
    runs = []
    for combo in itertools.product(*(cfg.axes[name].items() for name in names)):
        labels = {name: label for name, (label, _) in zip(names, combo, strict=True)}
        if any(all(labels.get(k) == v for k, v in entry.items()) for entry in cfg.exclude):
            continue
        run_id = "_".join(label for label, _ in combo)
        directory = root / run_id
        overrides = [override(k, v, cfg) for k, v in cfg.set.items()]
        for _, value in combo:
            overrides += [override(k, v, cfg) for k, v in value.set.items()]
        overrides.append(override("run_dir", str(directory / "train"), cfg))
        try:
            train = load_train_config(cfg.train, overrides)
        except ConfigError as exc:
            raise ConfigError(f"experiment run {run_id}: {exc}") from None
        fit = all(value.fit for _, value in combo)
        runs.append(RunSpec(run_id, labels, fit, train, directory))
    seen: set[str] = set()
    for run in runs:
        if run.run_id in seen:
            raise ConfigError(
                f"experiment: two runs share the id {run.run_id!r}: make the axis labels unique"
            )
        seen.add(run.run_id)
    return runs
