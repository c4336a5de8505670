"""The trainer on a CUDA device (marker `gpu`; run with `pytest -m gpu` where one is visible).

One GPU still trains through a process group of one (NCCL for CUDA tensors, gloo for the CPU ones
such as the ledger counts) so FSDP's bf16 mixed precision applies; these tests cover what the CPU
tests cannot: that group, bf16 numerics, compile on GPU, MFU reporting and resume on the device.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_train_resume import _ledger_steps, _losses
from test_train_shards import tiny_config, torch_one_thread, train_shards  # noqa: F401

from train.trainer import run

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_gpu_run_resumes_on_the_same_losses_and_ledger(train_shards, tmp_path):  # noqa: F811
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref_records = run(tiny_config(train_shards, ref_dir, "train.device=cuda"))
    ref = _losses(ref_records)
    assert sorted(ref) == list(range(1, 9)) and all(math.isfinite(v) for v in ref.values())
    assert ref[8] < ref[1]  # it learns
    mfu = [r["mfu"] for r in ref_records]
    assert all(m is not None and 0 < m < 1 for m in mfu), mfu  # the device's peak is known

    first = run(tiny_config(train_shards, run_dir, "train.device=cuda"), stop_at=5)
    resumed = run(tiny_config(train_shards, run_dir, "train.device=cuda"))
    assert sorted(_losses(resumed)) == list(range(4, 9))  # from the step-3 checkpoint
    losses = {**_losses(first), **_losses(resumed)}
    assert all(abs(losses[k] - ref[k]) <= 1e-3 * ref[k] for k in ref), (losses, ref)
    assert _ledger_steps(run_dir) == _ledger_steps(ref_dir)


def test_gpu_compile_trains_like_eager(train_shards, tmp_path):  # noqa: F811
    eager = _losses(run(tiny_config(train_shards, tmp_path / "eager", "train.device=cuda")))
    compiled = _losses(
        run(tiny_config(train_shards, tmp_path / "compiled", "train.device=cuda", "train.compile=true"))
    )
    assert sorted(compiled) == sorted(eager)
    # bf16 compute: fused kernels round differently, so agreement is to bf16 precision, not bitwise
    assert all(abs(compiled[k] - eager[k]) <= 2e-2 * eager[k] for k in eager), (compiled, eager)
