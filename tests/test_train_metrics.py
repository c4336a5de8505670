"""Metrics: per-channel loss attributed per token from the spans, held-out loss per channel,
metrics.jsonl and TensorBoard, MFU from the documented FLOPs formula."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_train_shards import run_ledger_steps, tiny_config, torch_one_thread, train_shards  # noqa: F401

from dataengine.pack.shards import ShardReader
from train.metrics import flops_per_token
from train.model import Transformer
from train.trainer import run


def test_per_channel_loss_is_exact_per_token(train_shards, tmp_path):  # noqa: F811
    cfg = tiny_config(
        train_shards, tmp_path, "train.max_steps=1", "data.doc_mask=false", "train.global_batch_size=16"
    )
    record = run(cfg)[0]
    batch = [(shard, row) for _, shard, row in run_ledger_steps(tmp_path)]
    # recompute step 1 independently: the seeded initial model, channels read from the span tables
    reader = ShardReader(train_shards)
    model = Transformer(cfg.model.model_copy(update={"vocab_size": reader.vocab_size}))
    model.init_weights(cfg.train.seed)
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    mixed_rows = 0
    for shard, row in batch:
        tokens = torch.tensor(reader.sequence(shard, row).astype(np.int64))
        with torch.no_grad():
            losses = F.cross_entropy(model(tokens[None, :-1])[0], tokens[1:], reduction="none")
        spans = reader.spans(shard, row)
        mixed_rows += len({s["channel"] for s in spans}) > 1
        for span in spans:
            for pos in range(max(span["start"], 1), span["end"]):  # target at pos-1 is token pos
                sums[span["channel"]][0] += float(losses[pos - 1])
                sums[span["channel"]][1] += 1
    assert mixed_rows > 0  # the batch really mixes channels inside rows
    for channel, (total, count) in sums.items():
        assert record[f"loss/{channel}"] == pytest.approx(total / count, rel=1e-5)
    overall = sum(t for t, _ in sums.values()) / sum(c for _, c in sums.values())
    assert record["loss"] == pytest.approx(overall, rel=1e-5)


def test_metrics_jsonl_tensorboard_heldout_and_mfu(train_shards, tmp_path):  # noqa: F811
    cfg = tiny_config(
        train_shards, tmp_path, "train.max_steps=4", "eval.interval=2", "eval.sequences=12",
        "metrics.tensorboard=true", "metrics.peak_flops=1.0e12",
    )  # fmt: skip
    run(cfg)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if "loss" in r]
    assert [r["step"] for r in train_records] == [1, 2, 3, 4]
    for r in train_records:
        assert {"tokens", "loss", "lr", "grad_norm", "tokens_per_s", "mfu"} <= r.keys()
        assert any(k.startswith("loss/") for k in r)
    reader = ShardReader(train_shards)
    fpt = flops_per_token(
        Transformer(cfg.model.model_copy(update={"vocab_size": reader.vocab_size})), reader.seq_len
    )
    assert train_records[0]["mfu"] == pytest.approx(fpt * train_records[0]["tokens_per_s"] / 1e12)
    heldout = [r for r in records if "heldout/loss" in r]
    assert [r["step"] for r in heldout] == [2, 4]
    assert {k for k in heldout[0] if k.startswith("heldout/loss/")} >= {"heldout/loss/web"}
    assert heldout[1]["heldout/loss"] < heldout[0]["heldout/loss"]  # it learns

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [1, 2, 3, 4]
    assert "heldout/loss" in events.Tags()["scalars"] and "lr" in events.Tags()["scalars"]
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "tokenizer" / "tokenizer.json").is_file()


def test_in_loop_eval_hook_logs_eval_metrics(train_shards, tmp_path):  # noqa: F811
    """eval.hook runs the eval module inside the loop: per-domain bits-per-byte and probes in metrics.jsonl."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cfg = tiny_config(
        train_shards, tmp_path, "train.max_steps=2", "eval.interval=2", "eval.sequences=4",
        f"eval.hook={root / 'configs' / 'eval' / 'inloop.yaml'}",
    )  # fmt: skip
    run(cfg)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r for r in records if "eval/bpb" in r]
    assert [r["step"] for r in evaluated] == [2]
    assert evaluated[0]["eval/bpb"] > 0 and "heldout/loss" in evaluated[0]
    assert any(k.startswith("eval/bpb/") for k in evaluated[0]) and any(
        k.startswith("probe/") for k in evaluated[0]
    )
