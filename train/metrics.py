"""Training metrics: metrics.jsonl + TensorBoard (DESIGN §3.5), and the FLOPs model behind MFU.

FLOPs per token (forward + backward, the PaLM appendix-B convention):

    6 * N  +  12 * L * H * Dh * T

N: parameters that take part in matrix multiplies per token = all transformer-block parameters,
the final norm and the output head (vocab * dim; the input embedding lookup is not a matmul, so with
tied embeddings the shared matrix is counted once, as the head). L layers, H query heads of size Dh,
T the sequence length (attention scores and values; causal masking is not discounted).
MFU = FLOPs/token * tokens/s / (peak FLOP/s per device * devices).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from train.model import Transformer

# Dense bf16 tensor-core peaks per device (FLOP/s), matched by substring of the CUDA device name
# (longest key first); `metrics.peak_flops` overrides. CPUs have no entry: MFU is null there.
PEAK_FLOPS_BF16 = {
    "H200": 989.4e12,
    "H100 PCIe": 756.0e12,
    "H100": 989.4e12,
    "A100": 312.0e12,
    "A10G": 70.0e12,
    "L40S": 362.0e12,
    "L4": 121.0e12,
    "V100": 125.0e12,
}


def flops_per_token(model: Transformer, seq_len: int) -> float:
    cfg = model.cfg
    matmul_params = sum(p.numel() for p in model.layers.parameters()) + cfg.dim + cfg.vocab_size * cfg.dim
    return 6.0 * matmul_params + 12.0 * cfg.n_layers * cfg.n_heads * cfg.hdim * seq_len


def peak_flops(device: torch.device, override: float | None) -> float | None:
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_FLOPS_BF16, key=len, reverse=True):
        if key in name:
            return PEAK_FLOPS_BF16[key]
    return None


class MetricsLog:
    """Rank 0 writes; on resume from step S, records after S are dropped so the log matches the model."""

    def __init__(self, run_dir: str | Path, tensorboard: bool, resume_step: int):
        self.path = Path(run_dir) / "metrics.jsonl"
        if self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line and json.loads(line)["step"] <= resume_step
            ]
            self.path.write_text("".join(line + "\n" for line in kept))
        self.file = self.path.open("a")
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=resume_step + 1)

    def log(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self.tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


class IntervalMeans:
    """What a log line reports: means over the steps since the last one, not the last step alone
    (a single step's loss on a small batch is noise). Loss per channel is token-weighted."""

    def __init__(self, n_channels: int):
        self.n_channels = n_channels
        self._reset()

    def _reset(self) -> None:
        self.sums = torch.zeros(2, self.n_channels + 1, dtype=torch.float64)
        self.grad_norm = self.seconds = 0.0
        self.steps = self.skipped = self.tokens = 0

    def add(self, sums: torch.Tensor, grad_norm: float, seconds: float, tokens: int) -> None:
        self.sums += sums
        self.grad_norm += grad_norm
        self.seconds += seconds
        self.tokens += tokens
        self.steps += 1

    def skip(self) -> None:
        self.skipped += 1

    def flush(self, channels: list[str]) -> dict[str, Any]:
        """The interval's means (empty if no step was accepted), then start a new interval."""
        out: dict[str, Any] = {"steps": self.steps, "skipped": self.skipped}
        if self.steps:
            out["loss"] = float(self.sums[0, 1:].sum() / self.sums[1, 1:].sum().clamp(min=1))
            out["grad_norm"] = self.grad_norm / self.steps
            out["tokens_per_s"] = self.tokens / self.seconds if self.seconds else None
            for c, name in enumerate(channels):
                if self.sums[1, c + 1] > 0:
                    out[f"loss/{name}"] = float(self.sums[0, c + 1] / self.sums[1, c + 1])
        self._reset()
        return out
