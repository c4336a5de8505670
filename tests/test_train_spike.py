"""Loss-spike guard with an injected bad batch: `skip` drops the update, `rollback` restores the last
checkpoint and skips the batch; both log the offending sequence and document ids."""

from __future__ import annotations

import json

import numpy as np
import torch
from test_train_shards import tiny_config, torch_one_thread, train_shards  # noqa: F401

from dataengine.usage.ledger import UsageLedger
from train.spike import SpikeGuard
from train.trainer import Trainer

BAD_STEP = 9
SPIKE = (
    "spike.enabled=true",
    "spike.min_history=4",
    "spike.window=8",
    "spike.z_threshold=4",
    "train.max_steps=12",
)


def _corrupt_at(trainer: Trainer, step: int) -> None:
    """A corrupted batch at `step` (1-based): every target replaced by one token id, as a broken
    tokenizer or a run of garbage bytes would produce."""
    fetch = trainer.fetch

    def fetch_with_corruption(indices: np.ndarray, step_index: int):
        batch = fetch(indices, step_index)
        if step_index + 1 == step:
            batch.targets = torch.full_like(batch.targets, int(batch.targets.max()))
        return batch

    trainer.fetch = fetch_with_corruption


def test_guard_flags_outliers_and_non_finite_values():
    guard = SpikeGuard(window=8, min_history=4, z_threshold=4.0)
    assert not guard.check(9.0, 1.0).spike  # too little history to judge
    for loss, grad in [(3.0, 1.0), (3.1, 1.1), (2.9, 0.9), (3.05, 1.0)]:
        guard.accept(loss, grad)
    assert not guard.check(3.1, 1.05).spike
    assert guard.check(4.5, 1.0).spike and guard.check(3.0, 5.0).spike
    assert guard.check(float("nan"), 1.0).spike and guard.check(3.0, float("inf")).spike
    assert not guard.check(1.0, 0.5).spike  # a sudden drop is not a spike


def test_skip_policy_drops_the_update_and_logs_the_batch(train_shards, tmp_path):  # noqa: F811
    trainer = Trainer(tiny_config(train_shards, tmp_path, *SPIKE, "spike.policy=skip"))
    _corrupt_at(trainer, BAD_STEP)
    try:
        records = {r["step"]: r for r in trainer.train(stop_at=BAD_STEP - 1)}
        before = [p.detach().clone() for p in trainer.model.parameters()]
        records.update({r["step"]: r for r in trainer.train(stop_at=BAD_STEP)})
        after = [p.detach().clone() for p in trainer.model.parameters()]
        records.update({r["step"]: r for r in trainer.train()})
    finally:
        trainer.close()
    assert records[BAD_STEP]["spike"] == "skip"
    assert all("spike" not in records[s] for s in records if s != BAD_STEP)
    assert sorted(records) == list(range(1, 13))
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))  # no update at step 9
    events = [json.loads(line) for line in (tmp_path / "spikes.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events] == [BAD_STEP] and events[0]["action"] == "skip"
    assert max(events[0]["z_loss"], events[0]["z_grad"]) > 4
    assert len(events[0]["sequences"]) == 8 and all(s["doc_ids"] for s in events[0]["sequences"])
    assert any(d.startswith(("c4-", "zhwiki-")) for s in events[0]["sequences"] for d in s["doc_ids"])
    ledger = UsageLedger(tmp_path / "usage.sqlite")
    steps = {s for s, _, _ in ledger.run_steps(str(tmp_path.resolve()))}
    ledger.close()
    assert BAD_STEP not in steps and steps == set(range(1, 13)) - {BAD_STEP}


def test_rollback_policy_restores_checkpoint_and_skips_the_batch(train_shards, tmp_path):  # noqa: F811
    trainer = Trainer(
        tiny_config(train_shards, tmp_path, *SPIKE, "spike.policy=rollback", "checkpoint.interval=6")
    )
    _corrupt_at(trainer, BAD_STEP)
    try:
        records = trainer.train()
    finally:
        trainer.close()
    steps = [r["step"] for r in records]
    # 1..9 (spike) -> back to the step-6 checkpoint -> 7, 8 replayed, 9 skipped, on to 12
    assert steps == [*range(1, 10), 7, 8, 9, 10, 11, 12]
    assert records[8]["spike"] == "rollback"
    assert records[11] == {"step": 9, "tokens": 8 * 8 * 64, "skipped": True}
    assert (
        records[9]["loss"] == records[6]["loss"] and records[10]["loss"] == records[7]["loss"]
    )  # exact replay
    events = [json.loads(line) for line in (tmp_path / "spikes.jsonl").read_text().splitlines()]
    assert [(e["step"], e["action"]) for e in events] == [(BAD_STEP, "rollback")]
    ledger = UsageLedger(tmp_path / "usage.sqlite")
    steps_recorded = [s for s, _, _ in ledger.run_steps(str(tmp_path.resolve()))]
    ledger.close()
    assert sorted(set(steps_recorded)) == [s for s in range(1, 13) if s != BAD_STEP]
    assert len(steps_recorded) == 11 * 8  # nothing counted twice by the replay
