"""Exact resume: a run stopped at step k (or killed with SIGKILL in the middle of a checkpoint save, or
sent SIGTERM) and resumed reproduces the uninterrupted run bitwise on CPU: losses, final parameters
and optimizer state, usage ledger and metrics, with the spike guard judging and the in-loop eval on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from test_train_shards import (  # noqa: F401
    TINY_YAML,
    run_ledger_steps,
    tiny_config,
    tiny_overrides,
    torch_one_thread,
    train_shards,
)

from train.checkpoint import latest_checkpoint, read_meta
from train.config import load_train_config
from train.preemption import request_stop
from train.trainer import Trainer, run

ROOT = Path(__file__).resolve().parents[1]
# the guard judges from step 3 on (its window and verdicts must survive the resume), eval every 2 steps
JUDGED = (
    "spike.min_history=2", "spike.window=4", "eval.interval=2", "eval.sequences=4",
    f"eval.hook={ROOT / 'configs' / 'eval' / 'inloop.yaml'}",
)  # fmt: skip
_ledger_steps = run_ledger_steps


def _losses(records: list[dict]) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in records}


def _train(cfg, stop_at: int | None = None) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Records and the final model parameters and optimizer state, flattened to named tensors."""
    trainer = Trainer(cfg)
    try:
        records = trainer.train(stop_at)
        state = {f"model.{k}": v.detach().clone() for k, v in trainer.model.state_dict().items()}
        for i, param_state in trainer.optimizer.state_dict()["state"].items():
            state.update({f"optim.{i}.{k}": torch.as_tensor(v).clone() for k, v in param_state.items()})
    finally:
        trainer.close()
    return records, state


def _assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and any(k.endswith("exp_avg_sq") for k in a)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


@pytest.fixture(scope="module")
def uninterrupted(train_shards, tmp_path_factory):  # noqa: F811
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the tests' autouse fixture does (module scope runs before it)
    try:
        records, state = _train(tiny_config(train_shards, run_dir, *JUDGED))
    finally:
        torch.set_num_threads(threads)
    return run_dir, _losses(records), state


def test_stop_and_resume_reproduces_the_run_bitwise(train_shards, uninterrupted, tmp_path):  # noqa: F811
    ref_dir, ref, ref_state = uninterrupted
    assert sorted(ref) == list(range(1, 9))
    first, _ = _train(tiny_config(train_shards, tmp_path, *JUDGED), stop_at=5)  # steps 4-5 are lost
    assert _losses(first) == {k: ref[k] for k in range(1, 6)}
    assert latest_checkpoint(tmp_path).name == "step-0000003"
    assert len(read_meta(latest_checkpoint(tmp_path))["spike_guard"]["losses"]) == 3
    resumed, state = _train(tiny_config(train_shards, tmp_path, *JUDGED))
    assert _losses(resumed) == {k: ref[k] for k in range(4, 9)}  # exact equality, not approximate
    _assert_bitwise_equal(state, ref_state)  # every parameter and Adam moment
    # the ledger holds exactly the uninterrupted run's sequences, step by step
    assert _ledger_steps(tmp_path) == _ledger_steps(ref_dir)
    # metrics.jsonl: every step once (the lost steps 4-5 were dropped on resume), same values
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in logged if "loss" in r]
    assert [r["step"] for r in trained] == list(range(1, 9))
    assert {r["step"]: r["loss"] for r in trained} == ref
    assert [r["step"] for r in logged if "eval/bpb" in r] == [2, 4, 6, 8]
    meta = read_meta(latest_checkpoint(tmp_path))
    assert meta["step"] == 8 and meta["tokens"] == 8 * 8 * 64
    # keep_last 2: steps 6 and 8 remain
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == [
        "step-0000006",
        "step-0000008",
    ]


def test_sigkill_during_save_leaves_previous_checkpoint(train_shards, uninterrupted, tmp_path):  # noqa: F811
    ref_dir, ref, _ = uninterrupted
    script = tmp_path / "killed.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, signal, sys
            import train.checkpoint as checkpoint
            from train.config import load_train_config
            from train.trainer import run

            publish = checkpoint._publish
            def killing_publish(tmp, final):
                if final.name == "step-0000006":  # shards written, not yet renamed: kill -9
                    os.kill(os.getpid(), signal.SIGKILL)
                publish(tmp, final)
            checkpoint._publish = killing_publish
            run(load_train_config(sys.argv[1], sys.argv[2:]))
            """
        )
    )
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(script), str(TINY_YAML), *tiny_overrides(train_shards, run_dir, *JUDGED)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    partial = run_dir / "checkpoints" / ".tmp-step-0000006"
    assert any(partial.glob("*.distcp")) and not (run_dir / "checkpoints" / "step-0000006").exists()
    assert latest_checkpoint(run_dir).name == "step-0000003"
    assert max(step for step, _, _ in _ledger_steps(run_dir)) == 6  # written before the save began

    resumed = run(tiny_config(train_shards, run_dir, *JUDGED))
    assert _losses(resumed) == {k: ref[k] for k in range(4, 9)}
    assert _ledger_steps(run_dir) == _ledger_steps(ref_dir)  # steps 4-6 recorded once, not twice
    assert not partial.exists()  # the next save cleared the leftover


def test_sigterm_checkpoints_at_the_step_boundary_and_resumes(train_shards, uninterrupted, tmp_path):  # noqa: F811
    """A preempted job: SIGTERM mid-run -> checkpoint after the current step, clean exit (status 0),
    and the rerun of the same command continues bitwise."""
    ref_dir, ref, ref_state = uninterrupted
    script = tmp_path / "preempted.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, signal, sys
            from train.config import load_train_config
            from train.trainer import Trainer

            trainer = Trainer(load_train_config(sys.argv[1], sys.argv[2:]))
            step = trainer.train_step
            def step_then_preempt():
                record = step()
                if record["step"] == 5:  # the scheduler's SIGTERM arrives during step 5
                    os.kill(os.getpid(), signal.SIGTERM)
                return record
            trainer.train_step = step_then_preempt
            trainer.train()
            trainer.close()
            """
        )
    )
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, str(script), str(TINY_YAML), *tiny_overrides(train_shards, run_dir, *JUDGED)]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "stop requested (SIGTERM): checkpoint saved at step 6" in proc.stderr
    assert latest_checkpoint(run_dir).name == "step-0000006"  # not an interval step: saved for the stop
    resumed, state = _train(tiny_config(train_shards, run_dir, *JUDGED))
    assert _losses(resumed) == {k: ref[k] for k in range(7, 9)}
    _assert_bitwise_equal(state, ref_state)
    assert _ledger_steps(run_dir) == _ledger_steps(ref_dir)


def test_stop_file_stops_a_run_and_is_cleared(train_shards, tmp_path):  # noqa: F811
    """RUN/STOP is how train.ray_launch passes a signal on to Ray Train workers."""
    cfg = tiny_config(train_shards, tmp_path)
    trainer = Trainer(cfg)
    try:
        trainer.train(stop_at=2)
        request_stop(tmp_path)
        records = trainer.train()
    finally:
        trainer.close()
    assert [r["step"] for r in records] == [3] and latest_checkpoint(tmp_path).name == "step-0000003"
    assert not (tmp_path / "STOP").exists()
    assert [r["step"] for r in run(cfg)] == list(range(4, 9))


@pytest.mark.slow
def test_compiled_model_trains_like_eager_and_resumes(train_shards, uninterrupted, tmp_path):  # noqa: F811
    """train.compile (one graph on a single CPU process) changes no mathematics beyond float rounding,
    and its checkpoints keep the eager parameter names: a compiled run resumes from them."""
    _, ref, _ = uninterrupted
    compiled = tiny_overrides(train_shards, tmp_path, *JUDGED, "train.compile=true")
    first = run(load_train_config(TINY_YAML, compiled), stop_at=5)
    resumed = run(load_train_config(TINY_YAML, compiled))
    losses = {**_losses(first), **_losses(resumed)}
    assert sorted(_losses(resumed)) == list(range(4, 9))  # picked up at the step-3 checkpoint
    assert all(abs(losses[k] - ref[k]) < 1e-4 * ref[k] for k in ref), (losses, ref)
