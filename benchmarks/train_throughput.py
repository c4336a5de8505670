"""Training-step throughput on CPU: our trainer's step vs a transformers LlamaForCausalLM step.

Ours is `train.trainer.Trainer.train_step()` itself: sampler draw, batch fetch from token shards,
per-token per-channel fp32 cross-entropy, backward, gradient clipping, the trainer's AdamW (fused),
spike guard, usage bookkeeping, and whatever `train.compile` applies through train/parallelize.py.
The shards are written to a temporary directory: uniform random token ids (speed does not depend on
which ids), one document per row, no document masking (transformers' model has none).

Theirs is what a transformers user gets by default: `LlamaForCausalLM` of the same shape with its
default attention implementation (sdpa; `--hf-attn eager` for the other one), the loss from the model
(`labels=`; `shift_labels=` gives it exactly our targets), and the step `transformers.Trainer` runs with
its defaults: backward, `clip_grad_norm_` to `max_grad_norm` 1.0, `optim="adamw_torch_fused"` (the
default for torch >= 2.8) with our lr, betas, eps and weight-decay groups so the update is the same
mathematics. Its weights are ours, exported before the first step; the first losses are checked equal.

Both run in the same process on the same batches; rounds alternate so load on a shared machine hits
both alike. Reported: medians over rounds of tokens/s (wall clock) and tokens per CPU-second of this
process (robust to other jobs with --threads 1). Compilation happens in the warm-up step, which is
timed separately and excluded.

Our trainer runs its CPU linear layers on oneDNN's GEMM by default (`train.cpu_linear`, see
dataengine/cpu_linear.py); `--cpu-linear aten` measures it on torch's default GEMM instead, and
`--hf-onednn` gives transformers' model the same oneDNN linears, to separate the kernel's share of the
speed-up from the rest of the step.

    python benchmarks/train_throughput.py --sizes tiny 125M [--compile] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

from dataengine.cpu_linear import use_onednn_linears
from dataengine.pack.shards import ShardWriter
from train.config import load_train_config
from train.hf import hf_name
from train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
VOCAB = {"tiny": 512}  # tiny's real vocabulary comes from its shards; 32k for the others


def write_shards(root: Path, vocab: int, seq_len: int, rows: int) -> None:
    gen = np.random.default_rng(0)
    writer = ShardWriter(
        root, "train", seq_len, "uint16", vocab_size=vocab, pad_id=0, eos_id=1, tokenizer_sha256="0" * 64
    )
    for i in range(rows):
        span = {"start": 0, "end": seq_len + 1, "doc_id": f"doc{i}", "channel": "web", "lang": "en"}
        writer.write_row(gen.integers(2, vocab, seq_len + 1), [{**span, "source": "random"}])
    writer.close()


def build_trainer(size: str, shards: Path, run_dir: Path, overrides: list[str]) -> Trainer:
    """The shipped train config for `size` on `shards`, with nothing written per step (no eval,
    checkpoints or TensorBoard), then `overrides` (--set style)."""
    cfg = load_train_config(
        ROOT / "configs" / "train" / f"{size}.yaml",
        [
            f"data.shards={shards}",
            f"run_dir={run_dir}",
            f"usage.ledger={run_dir}/usage.sqlite",
            "train.max_steps=1000000",
            "eval.interval=0",
            "checkpoint.interval=1000000",
            "metrics.tensorboard=false",
            *overrides,
        ],
    )
    return Trainer(cfg)


def our_trainer(
    size: str, shards: Path, run_dir: Path, batch: int, compile: bool, cpu_linear: str
) -> Trainer:
    """The benchmark's batch on one CPU process, no document masking (transformers has none)."""
    return build_trainer(
        size,
        shards,
        run_dir,
        [
            "data.doc_mask=false",
            "spike.z_threshold=1e9",  # measured every step, but no skipped update on random tokens
            f"train.global_batch_size={batch}",
            f"train.micro_batch_size={batch}",
            "train.device=cpu",
            f"train.compile={str(compile).lower()}",
            f"train.cpu_linear={cpu_linear}",
        ],
    )


def hf_step(trainer: Trainer, attn: str, onednn: bool) -> Callable[[], float]:
    """transformers' model with our weights and transformers.Trainer's default step on our batches."""
    cfg, t = trainer.model_cfg, trainer.cfg.train
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=cfg.vocab_size, hidden_size=cfg.dim, intermediate_size=cfg.hidden_dim,
            num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.kv_heads,
            head_dim=cfg.hdim, rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta,
            max_position_embeddings=cfg.max_seq_len, tie_word_embeddings=cfg.tie_embeddings,
            attn_implementation=attn,
        )
    )  # fmt: skip
    state = {
        hf_name(k): v
        for k, v in trainer.model.state_dict().items()
        if not (cfg.tie_embeddings and k == "head.weight")
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    if onednn:
        use_onednn_linears(model, "onednn")
    model.train()
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": t.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=t.lr, betas=t.betas, eps=t.eps, fused=True)

    def step() -> float:
        # The trainer's next batch (the sampler answers a drawn step again), so both see the same data.
        batch = trainer.fetch(trainer.sampler.draw(trainer.step), trainer.step)
        targets = batch.targets.contiguous()  # `labels` is then only the switch that asks for a loss
        loss = model(input_ids=batch.inputs, labels=targets, shift_labels=targets).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def timed(fn: Callable[[], object], steps: int) -> tuple[float, float]:
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        fn()
    return time.perf_counter() - start, time.process_time() - cpu_start


def measure(size: str, batch: int, steps: int, rounds: int, args: argparse.Namespace, tmp: Path) -> dict:
    shards, run_dir = tmp / f"shards-{size}", tmp / f"run-{size}-{int(args.compile)}"
    seq_len = 256
    if not shards.exists():
        write_shards(shards, VOCAB.get(size, 32000), seq_len, rows=max(64, batch * 8))
    trainer = our_trainer(size, shards, run_dir, batch, args.compile, args.cpu_linear)
    try:
        theirs = hf_step(trainer, args.hf_attn, args.hf_onednn)
        first_hf = theirs()  # on the batch our trainer is about to draw, with the same weights
        start, cpu_start = time.perf_counter(), time.process_time()
        first_ours = trainer.train_step()["loss"]  # includes compilation
        warmup = {"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu_start}
        assert abs(first_ours - first_hf) < 1e-4 * max(1.0, abs(first_hf)), (first_ours, first_hf)
        steppers = {"ours": trainer.train_step, "transformers": theirs}
        wall: dict[str, list[float]] = {name: [] for name in steppers}
        cpu: dict[str, list[float]] = {name: [] for name in steppers}
        tokens = batch * seq_len * steps
        for _ in range(rounds):
            for name, fn in steppers.items():
                w, c = timed(fn, steps)
                wall[name].append(tokens / w)
                cpu[name].append(tokens / c)
    finally:
        trainer.close()
    med = {name: statistics.median(r) for name, r in wall.items()}
    cpu_med = {name: statistics.median(r) for name, r in cpu.items()}
    return {
        "size": size,
        "batch": batch,
        "seq_len": seq_len,
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "compile": args.compile,
        "cpu_linear": args.cpu_linear,
        "hf_attn": args.hf_attn,
        "hf_onednn": args.hf_onednn,
        "threads": torch.get_num_threads(),
        "first_loss": {"ours": first_ours, "transformers": first_hf},
        "ours_warmup": warmup,
        "tokens_per_s": med,
        "tokens_per_cpu_s": cpu_med,
        "rounds_tokens_per_s": wall,
        "rounds_tokens_per_cpu_s": cpu,
        "speedup": med["ours"] / med["transformers"],
        "speedup_cpu_time": cpu_med["ours"] / cpu_med["transformers"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=["tiny", "125M"])
    parser.add_argument("--batch", type=int, default=None, help="default: 8 for tiny, 2 otherwise")
    parser.add_argument(
        "--steps", type=int, default=None, help="steps per round (default: 10 tiny, 2 otherwise)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="train.compile: true for our trainer")
    parser.add_argument(
        "--hf-attn", default="sdpa", choices=["sdpa", "eager"], help="transformers' attention"
    )
    parser.add_argument(
        "--cpu-linear", default="auto", choices=["auto", "onednn", "aten"], help="our train.cpu_linear"
    )
    parser.add_argument(
        "--hf-onednn", action="store_true", help="give transformers' model the same oneDNN linears"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        "| size | batch x seq | ours tok/s | transformers tok/s | speedup | ours tok/CPU-s "
        "| transformers tok/CPU-s | speedup (CPU time) | ours warm-up CPU s |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            small = size == "tiny"
            batch = args.batch or (8 if small else 2)
            steps = args.steps or (10 if small else 2)
            r = measure(size, batch, steps, args.rounds, args, Path(tmp))
            results.append(r)
            t, c = r["tokens_per_s"], r["tokens_per_cpu_s"]
            label = (
                size
                + (" (compiled)" if args.compile else "")
                + f", linear {args.cpu_linear}, HF {args.hf_attn}"
                + (" + oneDNN linears" if args.hf_onednn else "")
            )
            print(
                f"| {label} | {batch} x {r['seq_len']} | {t['ours']:.0f} | {t['transformers']:.0f} "
                f"| {r['speedup']:.2f}x | {c['ours']:.0f} | {c['transformers']:.0f} "
                f"| {r['speedup_cpu_time']:.2f}x | {r['ours_warmup']['cpu_s']:.1f} |",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
