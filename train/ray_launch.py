"""Launch the trainer on a Ray cluster with Ray Train (`TorchTrainer`).

    python -m train.ray_launch CONFIG --num-workers 8 --use-gpu [--address ray://HEAD:10001] [--set k=v ...]

Ray Train starts one worker per process, sets RANK/LOCAL_RANK/WORLD_SIZE and the process group
(nccl on GPU, gloo on CPU); each worker then runs the same `train.trainer.run` as torchrun would.
The config is validated here, before any worker starts, and its paths are made absolute. On several
nodes, run_dir (checkpoints are written by every rank) and data.shards must be on a shared filesystem
(data.shards may also be an s3:// URI: the trainer reads shards there in place, read-only).
SIGTERM or SIGUSR1 to this driver becomes RUN/STOP: the workers checkpoint after their current step
and finish (Ray Train runs their loop outside the main thread, where Python receives no signals).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import typer

from dataengine.io.paths import is_uri
from dataengine.runtime import init_ray
from train.config import TrainConfig, load_train_config
from train.preemption import SIGNALS, request_stop


def _absolute(cfg: TrainConfig) -> dict[str, Any]:
    data = cfg.model_dump(mode="json")
    data["run_dir"] = str(Path(cfg.run_dir).resolve())
    if not is_uri(cfg.data.shards):  # an s3:// URI is the same on every node; pathlib would mangle it
        data["data"]["shards"] = str(Path(cfg.data.shards).resolve())
    if cfg.init_from:
        data["init_from"] = str(Path(cfg.init_from).resolve())
    if cfg.usage.ledger:
        data["usage"]["ledger"] = str(Path(cfg.usage.ledger).resolve())
    if cfg.resume not in ("auto", "never"):
        data["resume"] = str(Path(cfg.resume).resolve())
    return data


def _worker_loop(loop_config: dict[str, Any]) -> None:
    from train.trainer import run

    run(TrainConfig.model_validate(loop_config["config"]))


def launch(cfg: TrainConfig, num_workers: int, use_gpu: bool, address: str | None = None) -> None:
    """Run `cfg` on `num_workers` Ray Train workers (connects to `address`, else $RAY_ADDRESS or local)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    init_ray(address)
    config = _absolute(cfg)
    previous = {
        sig: signal.signal(sig, lambda signum, frame: request_stop(config["run_dir"])) for sig in SIGNALS
    }
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"config": config},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(
            name=Path(config["run_dir"]).name, storage_path=str(Path(config["run_dir"]) / "ray")
        ),
    )
    try:
        trainer.fit()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(
    config: Path = typer.Argument(..., help="train YAML, e.g. configs/train/125M.yaml"),
    num_workers: int = typer.Option(1, help="training processes (one per GPU with --use-gpu)"),
    use_gpu: bool = typer.Option(False, help="one GPU per worker, nccl"),
    address: str = typer.Option(None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)"),
    set_: list[str] = typer.Option(None, "--set", help="override a config key (repeatable)"),
) -> None:
    """Train on a Ray cluster through Ray Train's TorchTrainer."""
    from dataengine.cli_support import fail
    from dataengine.configio import ConfigError

    try:
        cfg = load_train_config(config, list(set_ or []))
    except ConfigError as exc:
        fail(str(exc))
    launch(cfg, num_workers, use_gpu, address)
    typer.echo(f"metrics: {Path(cfg.run_dir).resolve() / 'metrics.jsonl'}")


if __name__ == "__main__":
    typer.run(main)
