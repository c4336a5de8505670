"""The trainer on token shards that live on a local S3 server (moto), read in place and read-only: the
same losses, dataset fingerprint and run tokenizer as on the local copy of the shards. Real English web
text, Chinese Wikipedia and code (test_train_shards.build_shards)."""

from __future__ import annotations

import json

from s3_server import list_files, upload
from test_train_shards import tiny_config, torch_one_thread, train_shards  # noqa: F401

from dataengine.usage.ledger import dataset_fingerprint
from train.trainer import Trainer

STEPS = ("train.max_steps=3", "checkpoint.interval=3", "eval.interval=2", "eval.sequences=4")


def _losses(shards, run_dir) -> list[float]:
    trainer = Trainer(tiny_config(shards, run_dir, *STEPS))
    try:
        return [r["loss"] for r in trainer.train() if "loss" in r]
    finally:
        trainer.close()


def test_trainer_reads_shards_on_s3(train_shards, s3_uri, tmp_path):  # noqa: F811
    shards = upload(train_shards, f"{s3_uri}/shards")
    before = list_files(shards)
    assert dataset_fingerprint(shards) == dataset_fingerprint(train_shards)  # a resume checks it
    remote, local = _losses(shards, tmp_path / "s3"), _losses(train_shards, tmp_path / "local")
    assert len(remote) == 3 and remote == local
    assert list_files(shards) == before  # read-only: nothing written next to the shards
    run_tokenizer = tmp_path / "s3" / "tokenizer" / "tokenizer.json"
    assert run_tokenizer.read_bytes() == (train_shards / "tokenizer.json").read_bytes()
    assert json.loads((tmp_path / "s3" / "run.json").read_text())["run_id"]
