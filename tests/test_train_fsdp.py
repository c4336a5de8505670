"""Two processes, gloo, FSDP2 on CPU through the real command line (torchrun -m train): the same global
sample order and (up to float reduction order) the same losses as one process; a resume of the
2-process checkpoint in one process continues the same global order."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_train_shards import (  # noqa: F401
    TINY_YAML,
    run_ledger_steps,
    tiny_config,
    tiny_overrides,
    torch_one_thread,
    train_shards,
)

from train.checkpoint import latest_checkpoint
from train.trainer import run

ROOT = Path(__file__).resolve().parents[1]
EXTRA = ("train.max_steps=6", "checkpoint.interval=4", "train.micro_batch_size=2", "eval.interval=3")


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_process_gloo_fsdp_matches_one_process_and_resumes_with_one(train_shards, tmp_path):  # noqa: F811
    two = tmp_path / "two"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--standalone",  # torchrun binds a free port itself: no race with other jobs for one
        "-m", "train", str(TINY_YAML),
    ]  # fmt: skip
    for item in tiny_overrides(train_shards, two, *EXTRA):
        cmd += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((latest_checkpoint(two) / "meta.json").read_text())
    assert meta["world_size"] == 2 and len(meta["rng"]) == 2
    assert len(list(latest_checkpoint(two).glob("*.distcp"))) == 2  # each rank wrote its shard

    one = tmp_path / "one"
    reference = {r["step"]: r for r in run(tiny_config(train_shards, one, *EXTRA))}
    # identical global order: the same sequences at every step
    assert run_ledger_steps(two) == [(s, sh, r) for s, sh, r in run_ledger_steps(one)]
    logged = {r["step"]: r for r in _metrics(two) if "loss" in r}
    assert sorted(logged) == list(range(1, 7))
    for step, record in logged.items():
        assert record["loss"] == pytest.approx(reference[step]["loss"], rel=1e-5, abs=1e-5)
        assert record["grad_norm"] == pytest.approx(reference[step]["grad_norm"], rel=1e-4)
        per_channel = {k: v for k, v in record.items() if k.startswith("loss/")}
        assert per_channel and per_channel.keys() == {k for k in reference[step] if k.startswith("loss/")}
        for key, value in per_channel.items():
            assert value == pytest.approx(reference[step][key], rel=1e-5)
    heldout = [r for r in _metrics(two) if "heldout/loss" in r]
    assert [r["step"] for r in heldout] == [3, 6]

    # resume the 2-process checkpoint (step 4) in one process: the global order continues
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(two, resumed_dir)
    shutil.rmtree(resumed_dir / "checkpoints" / "step-0000006")
    # the copy keeps RUN/run.json: the same run, moved, resumes under its id
    resumed = run(tiny_config(train_shards, resumed_dir, *EXTRA))
    assert [r["step"] for r in resumed] == [5, 6]
    assert run_ledger_steps(resumed_dir) == run_ledger_steps(two)
    for r in resumed:
        assert r["loss"] == pytest.approx(reference[r["step"]]["loss"], rel=1e-5, abs=1e-5)


def test_torchrun_sigterm_checkpoints_both_ranks_at_one_step(train_shards, tmp_path):  # noqa: F811
    """Preemption under torchrun: SIGTERM to the launcher is passed to both workers, which agree on one
    step boundary, save one checkpoint together and exit; the same command then resumes from it."""
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        "-m", "train", str(TINY_YAML),
    ]  # fmt: skip
    for item in tiny_overrides(train_shards, run_dir, "train.max_steps=1000", "train.micro_batch_size=2"):
        cmd += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 4):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended or stalled before step 4"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    saved = latest_checkpoint(run_dir)
    meta = json.loads((saved / "meta.json").read_text())
    assert 4 <= meta["step"] < 1000 and meta["world_size"] == 2, stderr[-2000:]
    assert "stop requested (SIGTERM)" in stderr and len(list(saved.glob("*.distcp"))) == 2
    resumed = run(tiny_config(train_shards, run_dir, f"train.max_steps={meta['step'] + 2}"))
    assert [r["step"] for r in resumed] == [meta["step"] + 1, meta["step"] + 2]
