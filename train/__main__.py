"""`python -m train CONFIG [--set key=value ...]` (also `torchrun --nproc_per_node N -m train CONFIG`)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from dataengine.cli_support import config_epilog
from train.config import TrainConfig

app = typer.Typer(add_completion=False, help="Train a Llama-architecture model on token shards.")


@app.command(epilog=config_epilog(TrainConfig))
def main(
    config: Path = typer.Argument(..., help="train YAML, e.g. configs/train/tiny.yaml"),
    set_: list[str] = typer.Option(
        None, "--set", help="override a config key: train.max_steps=100 (repeatable)"
    ),
) -> None:
    """Train (resuming from run_dir's latest checkpoint when resume: auto); writes DESIGN §3.5 run_dir."""
    from dataengine.cli_support import fail
    from dataengine.configio import ConfigError
    from train.config import load_train_config

    try:
        cfg = load_train_config(config, list(set_ or []))
    except ConfigError as exc:
        fail(str(exc))
    from train.parallelize import close_distributed
    from train.trainer import TrainingStoppedError, run

    try:
        run(cfg)
    except TrainingStoppedError as exc:
        fail(str(exc))
    finally:
        close_distributed()
    if int(os.environ.get("RANK", 0)) == 0:
        typer.echo(
            f"metrics: {Path(cfg.run_dir) / 'metrics.jsonl'}  (tensorboard --logdir {Path(cfg.run_dir) / 'tb'})"
        )


if __name__ == "__main__":
    app()
