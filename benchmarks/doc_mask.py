"""Document masking: the dense [B, 1, T, T] mask through SDPA vs a FlexAttention block mask.

Times the model's forward and forward+backward (median of --runs after two warm-up runs, which hold
the compilations) with three masks: plain causal (no document mask, SDPA's flash path; the floor),
the dense boolean mask, and the block mask (train.model.FLEX_DEVICE_TYPES decides which one
`document_mask` builds; both are forced here). On CUDA the model is in bf16 as FSDP trains it, and the
peak memory of a forward+backward is reported. torch's CPU FlexAttention has no backward, so on CPU
the flex row times the forward only.

    .venv/bin/python benchmarks/doc_mask.py                     # GPU: 125M, T=2048, B=8
    .venv/bin/python benchmarks/doc_mask.py --model tiny --seq-len 512 --batch 4   # CPU

Documents have random boundaries, --doc-len tokens long on average; each row ends in 5% padding.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

import train.model
from dataengine.configio import read_yaml
from train.model import ModelConfig, Transformer

ROOT = Path(__file__).resolve().parents[1]
MASKS = {"causal": None, "dense": (), "flex": ("cpu", "cuda")}  # name -> FLEX_DEVICE_TYPES


def doc_ids(bsz: int, seqlen: int, doc_len: int, gen: torch.Generator) -> torch.Tensor:
    """Random document boundaries per row, then padding (-1) over the last 5% of the row."""
    used = seqlen - seqlen // 20
    out = torch.full((bsz, seqlen), -1, dtype=torch.int64)
    for row in range(bsz):
        cuts = (torch.randperm(used - 1, generator=gen)[: max(used // doc_len - 1, 0)] + 1).sort().values
        bounds = [0, *cuts.tolist(), used]
        for k, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
            out[row, a:b] = k
    return out


def median_time(fn: Callable[[], object], device: torch.device, runs: int) -> float:
    times = []
    for _ in range(runs + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="125M", help="configs/model/<name>.yaml")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--doc-len", type=int, default=400)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = ModelConfig(**read_yaml(ROOT / "configs/model" / f"{args.model}.yaml"))
    model = Transformer(cfg)
    model.init_weights(0)
    model.to(device)
    if device.type == "cuda":
        for child in model.children():  # bf16 parameters, fp32 RoPE tables: as FSDP's policy trains
            child.to(torch.bfloat16)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, cfg.vocab_size, (args.batch, args.seq_len), generator=gen).to(device)
    docs = doc_ids(args.batch, args.seq_len, args.doc_len, gen).to(device)
    name = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    )
    print(f"device: {name}; torch {torch.__version__}; model {args.model}, B={args.batch}, T={args.seq_len}")

    for mask, kinds in MASKS.items():
        if kinds is not None:
            train.model.FLEX_DEVICE_TYPES = kinds
        ids = None if kinds is None else docs

        def forward(ids: torch.Tensor | None = ids) -> None:
            with torch.no_grad():
                model(tokens, ids)

        def forward_backward(ids: torch.Tensor | None = ids) -> None:
            model(tokens, ids).float().square().mean().backward()
            model.zero_grad(set_to_none=True)

        fwd = median_time(forward, device, args.runs)
        line = f"{mask:>6}: forward {fwd * 1e3:8.1f} ms"
        if mask == "flex" and device.type == "cpu":
            print(f"{line}   forward+backward n/a (no CPU backward)")
            continue
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        fwd_bwd = median_time(forward_backward, device, args.runs)
        line += f"   forward+backward {fwd_bwd * 1e3:8.1f} ms"
        if device.type == "cuda":
            line += f"   peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
        print(line)


if __name__ == "__main__":
    main()
