"""Model FLOPs utilisation of our trainer on one GPU (issue 4: 125M and 350M at sequence length 2048,
bf16 and compile; target at least 45% on an H100).

Each run builds the real `train.trainer.Trainer` from the shipped `configs/train/<size>.yaml` on token
shards of uniform random ids written to a temporary directory (speed does not depend on which ids), with
the overrides given on the command line, and times `train_step()` itself: sampler draw, batch fetch
and host-to-device copy, per-token per-channel loss, backward, clipping, fused AdamW, spike guard and
usage bookkeeping. Compilation happens in the warm-up steps, which are timed separately and excluded.

MFU = FLOPs per token (train/metrics.py: 6N + 12·L·H·Dh·T) x tokens/s / the GPU's dense bf16 peak.

    python benchmarks/train_mfu.py [--runs 125M 350M "125M,train.micro_batch_size=16,sdpa=flash"]

The first run in a process was 4-7% slower than the same run repeated on an H100; RESULTS.md's
figures put a short throwaway run first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch._functorch.config
import torch._inductor.config
from train_throughput import build_trainer, write_shards

from train.trainer import Trainer


def profile(trainer: Trainer, path: Path, steps: int = 2) -> None:
    """CUDA time per operator over a few steps, to see where a step goes."""
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    ) as prof:
        for _ in range(steps):
            trainer.train_step()
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=40, max_name_column_width=90)
    path.write_text(table)


SDPA_BACKENDS = ("flash", "cudnn", "mem_efficient")


def select_sdpa(choice: str) -> None:
    """`default` leaves PyTorch's own order; otherwise only the named attention kernel is enabled."""
    for backend in SDPA_BACKENDS:
        getattr(torch.backends.cuda, f"enable_{backend}_sdp")(choice in ("default", backend))


def timed_window(trainer: Trainer, steps: int) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    records = [trainer.train_step() for _ in range(steps)]
    torch.cuda.synchronize()
    return time.perf_counter() - start, records


def measure(index: int, spec: str, args: argparse.Namespace, tmp: Path) -> dict:
    """SPEC = SIZE[,key=value...][,sdpa=BACKEND]; the median of `windows` timed windows of `steps`."""
    size, *rest = spec.split(",")
    overrides = [o for o in rest if not o.startswith("sdpa=")]
    sdpa = next((o.partition("=")[2] for o in rest if o.startswith("sdpa=")), "default")
    select_sdpa(sdpa)
    shards = tmp / f"shards-{args.seq_len}"
    if not shards.exists():
        write_shards(shards, 32000, args.seq_len, rows=1024)
    torch._dynamo.reset()  # each run compiles afresh (no recompile limit carried across runs)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    trainer = build_trainer(size, shards, tmp / f"run-{index}", ["train.device=cuda", *overrides])
    try:
        t = trainer.cfg.train
        warmup_s, _ = timed_window(trainer, args.warmup)
        windows = [timed_window(trainer, args.steps) for _ in range(args.windows)]
        if args.profile_dir:
            profile(trainer, Path(args.profile_dir) / f"profile-{index}-{size}.txt")
    finally:
        trainer.close()
    tokens = args.steps * t.global_batch_size * args.seq_len
    window_tokens_per_s = [tokens / elapsed for elapsed, _ in windows]
    tokens_per_s = statistics.median(window_tokens_per_s)
    peak = trainer.peak
    return {
        "spec": spec,
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "global_batch": t.global_batch_size,
        "micro_batch": t.micro_batch_size,
        "seq_len": args.seq_len,
        "compile": t.compile,
        "activation_checkpointing": t.activation_checkpointing,
        "deterministic": t.deterministic,
        "sdpa": sdpa,
        "warmup_s": warmup_s,
        "tokens_per_s": tokens_per_s,
        "window_tokens_per_s": window_tokens_per_s,
        "flops_per_token": trainer.flops_per_token,
        "peak_flops": peak,
        "mfu": trainer.flops_per_token * tokens_per_s / peak,
        "window_mfu": [trainer.flops_per_token * w / peak for w in window_tokens_per_s],
        "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        "losses": [r["loss"] for _, records in windows for r in records],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["125M", "350M"],
        help="SIZE[,key=value...]: a train config from configs/train plus --set style overrides",
    )
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation happens here)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per window")
    parser.add_argument("--windows", type=int, default=3, help="timed windows; the median is reported")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument(
        "--profile-dir", default=None, help="write a per-operator CUDA-time table per run here"
    )
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("train_mfu.py needs a CUDA device")
    # Compile every run from scratch: the on-disk graph caches do not key on the attention backend,
    # so a cached graph of an earlier run would silently bring that run's kernel choice along.
    torch._inductor.config.fx_graph_cache = False
    torch._functorch.config.enable_autograd_cache = False
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, sequence length {args.seq_len}")
    print("| run | params | batch (micro) | tokens/s | MFU | MFU per window | peak memory GiB | warm-up s |")
    print("| --- | ---: | --- | ---: | ---: | --- | ---: | ---: |")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, spec in enumerate(args.runs):
            try:
                r = measure(index, spec, args, Path(tmp))
            except torch.OutOfMemoryError:
                print(f"| {spec} | out of GPU memory | | | | | | |", flush=True)
                continue
            results.append(r)
            print(
                f"| {spec} | {r['params'] / 1e6:.0f}M | {r['global_batch']} ({r['micro_batch']}) "
                f"| {r['tokens_per_s']:,.0f} | {100 * r['mfu']:.1f}% "
                f"| {' '.join(f'{100 * m:.1f}' for m in r['window_mfu'])} | {r['max_memory_gib']:.1f} "
                f"| {r['warmup_s']:.0f} |",
                flush=True,
            )
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
