"""The Ray Train launch path: TorchTrainer with two gloo workers on the shared local Ray."""

from __future__ import annotations

import json

import pytest
from test_train_shards import tiny_config, torch_one_thread, train_shards  # noqa: F401

from train.checkpoint import latest_checkpoint, read_meta
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
