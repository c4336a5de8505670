"""The Ray Train launch path: TorchTrainer with two gloo workers on the shared local Ray."""

from __future__ import annotations

import json
import threading
import time

import pytest
from test_train_shards import tiny_config, torch_one_thread, train_shards  # noqa: F401

from train.checkpoint import latest_checkpoint, read_meta
from train.preemption import request_stop
from train.ray_launch import launch


@pytest.mark.ray
@pytest.mark.slow
def test_ray_train_two_workers(ray_session, train_shards, tmp_path):  # noqa: F811
    cfg = tiny_config(train_shards, tmp_path / "run", "train.max_steps=3", "train.micro_batch_size=2")
    launch(cfg, num_workers=2, use_gpu=False)
    meta = read_meta(latest_checkpoint(tmp_path / "run"))
    assert meta["step"] == 3 and meta["world_size"] == 2
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and all(r["loss"] > 0 for r in records)


@pytest.mark.ray
@pytest.mark.slow
def test_ray_train_workers_checkpoint_and_stop_on_request(ray_session, train_shards, tmp_path):  # noqa: F811
    """What a SIGTERM to the launching driver does (it writes RUN/STOP): the workers, whose loop Ray runs
    outside the main thread, checkpoint together after their current step and finish."""
    run_dir = tmp_path / "run"
    cfg = tiny_config(train_shards, run_dir, "train.max_steps=500", "train.micro_batch_size=2")

    def stop_after_two_steps() -> None:
        metrics = run_dir / "metrics.jsonl"
        while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2):
            time.sleep(0.2)
        request_stop(run_dir)

    watcher = threading.Thread(target=stop_after_two_steps, daemon=True)
    watcher.start()
    launch(cfg, num_workers=2, use_gpu=False)
    meta = read_meta(latest_checkpoint(run_dir))
    assert 2 <= meta["step"] < 500 and meta["world_size"] == 2
    assert not (run_dir / "STOP").exists()
