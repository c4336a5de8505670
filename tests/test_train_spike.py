"""Loss-spike guard with an injected bad batch: `skip` drops the update, `rollback` restores the last
checkpoint and skips the batch; both log the offending sequence and document ids. Spikes in a row
past spike.max_consecutive roll back, then stop the run with a message."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from test_train_shards import run_ledger_steps, tiny_config, torch_one_thread, train_shards  # noqa: F401

from train.spike import SpikeGuard
from train.trainer import Trainer, TrainingStoppedError

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


def _is_spike(guard: SpikeGuard, loss: float, grad_norm: float) -> bool:
    return bool(
        guard.is_spike(torch.tensor(loss, dtype=torch.float64), torch.tensor(grad_norm, dtype=torch.float64))
    )


def test_guard_flags_outliers_and_non_finite_values():
    guard = SpikeGuard(window=8, min_history=4, z_threshold=4.0)
    assert not _is_spike(guard, 9.0, 1.0)  # too little history to judge
    assert _is_spike(guard, float("nan"), 1.0) and _is_spike(guard, 3.0, float("inf"))  # always
    for loss, grad in [(3.0, 1.0), (3.1, 1.1), (2.9, 0.9), (3.05, 1.0)]:
        guard.observe(loss, grad)
    assert not _is_spike(guard, 3.1, 1.05)
    assert _is_spike(guard, 4.5, 1.0) and _is_spike(guard, 3.0, 5.0)
    assert not _is_spike(guard, 1.0, 0.5)  # one-sided: a sudden drop is not a spike
    guard.observe(float("nan"), 1.0)  # non-finite values never enter the window
    assert len(guard.losses) == 4 and math.isfinite(guard.limits()[0])


def test_skipped_steps_enter_the_window_so_a_shifted_level_is_accepted():
    """A skipped step leaves the weights as they were, so the next batch shows the same norm: were
    only accepted steps in the window, every later step would be skipped too."""
    guard = SpikeGuard(window=16, min_history=8, z_threshold=6.0)
    for i in range(16):
        guard.observe(3.0 + 0.01 * (i % 3), 1.0 + 0.01 * (i % 2))
    verdicts = []
    for _ in range(6):  # the gradient norm settles at a new level
        verdicts.append(_is_spike(guard, 3.0, 3.0))
        guard.observe(3.0, 3.0)
    assert verdicts[0] and not any(verdicts[2:])


def test_healthy_warmup_trajectory_is_never_flagged():
    """The shape that made the old guard skip 38 of 150 demo steps: during warmup the gradient norm
    climbs from 0.5 to 8 while the loss falls, then eases off. No verdicts before max(64, warmup)."""
    guard = SpikeGuard(window=128, min_history=64, z_threshold=6.0)
    rng = np.random.default_rng(0)
    flagged = []
    for step in range(150):
        loss = 9.0 * math.exp(-step / 60) + 3.0 + rng.normal(0, 0.05)
        grad = (
            0.5 + 7.5 * step / 20 if step < 20 else 8.0 * math.exp(-(step - 20) / 30) + 0.8
        ) * rng.lognormal(0, 0.1)
        flagged.append(_is_spike(guard, loss, grad))
        guard.observe(loss, grad)
    assert not any(flagged)


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
    steps = {s for s, _, _ in run_ledger_steps(tmp_path)}
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
    steps_recorded = [s for s, _, _ in run_ledger_steps(tmp_path)]
    assert sorted(set(steps_recorded)) == [s for s in range(1, 13) if s != BAD_STEP]
    assert len(steps_recorded) == 11 * 8  # nothing counted twice by the replay


def _diverge_from(trainer: Trainer, step: int) -> None:
    """From `step` (1-based) on, every loss is NaN, as after a real divergence."""
    token_loss = trainer._token_loss

    def nan_loss(batch):
        out = token_loss(batch)
        return out * math.nan if trainer.step + 1 >= step else out

    trainer._token_loss = nan_loss


def test_spikes_in_a_row_stop_the_run_with_a_message(train_shards, tmp_path):  # noqa: F811
    trainer = Trainer(
        tiny_config(train_shards, tmp_path, *SPIKE, "spike.max_consecutive=3", "checkpoint.interval=100")
    )
    _diverge_from(trainer, 5)
    try:
        with pytest.raises(TrainingStoppedError, match="3 spikes in a row .* no checkpoint to roll back to"):
            trainer.train()
    finally:
        trainer.close()
    events = [json.loads(line) for line in (tmp_path / "spikes.jsonl").read_text().splitlines()]
    assert [(e["step"], e["action"]) for e in events] == [(5, "skip"), (6, "skip"), (7, "stop")]
    assert events[0]["z_loss"] == math.inf  # non-finite: flagged although min_history is not reached


def test_spikes_in_a_row_roll_back_past_the_bad_batches(train_shards, tmp_path):  # noqa: F811
    trainer = Trainer(
        tiny_config(train_shards, tmp_path, *SPIKE, "spike.max_consecutive=2", "checkpoint.interval=3")
    )
    token_loss = trainer._token_loss
    trainer._token_loss = lambda batch: token_loss(batch) * (math.nan if trainer.step + 1 in (5, 6) else 1.0)
    try:
        records = trainer.train()
    finally:
        trainer.close()
    # 4, 5 (skip), 6 (second in a row: back to step 3) -> 4 replayed, 5 and 6 ruled out, on to 12
    assert [(r["step"], r.get("spike"), r.get("skipped")) for r in records[3:10]] == [
        (4, None, None),
        (5, "skip", None),
        (6, "rollback", None),
        (4, None, None),
        (5, None, True),
        (6, None, True),
        (7, None, None),
    ]
    assert records[-1]["step"] == 12 and records[3]["loss"] == records[6]["loss"]
