"""Training-step throughput on CPU: our model vs transformers' LlamaForCausalLM of the same shape.

Both run the same step in the same process: forward, fp32 cross-entropy over the logits, backward,
AdamW (foreach). Weights are identical (ours are exported into the HF model), batches are real token
ids. Rounds alternate between the two so load on a shared machine hits both alike; the figure is
the median over rounds of tokens/s (wall clock) and of tokens per CPU-second of this process (with
--threads 1 the latter is robust to other jobs sharing the machine).

    python benchmarks/train_throughput.py --sizes tiny 125M [--compile] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from dataengine.configio import read_yaml
from train.config import MODEL_DIR
from train.hf import hf_name
from train.model import ModelConfig, Transformer

VOCAB = {"tiny": 512, "125M": 32000, "350M": 32000}


def build(size: str, seq_len: int, compile_blocks: bool) -> tuple[Transformer, LlamaForCausalLM]:
    cfg = ModelConfig(**{**read_yaml(MODEL_DIR / f"{size}.yaml"), "vocab_size": VOCAB.get(size, 32000)})
    ours = Transformer(cfg)
    ours.init_weights(0)
    hf_cfg = LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.dim, intermediate_size=cfg.hidden_dim,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.kv_heads,
        head_dim=cfg.hdim, rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta,
        max_position_embeddings=max(cfg.max_seq_len, seq_len), tie_word_embeddings=cfg.tie_embeddings,
        attn_implementation="sdpa",
    )  # fmt: skip
    theirs = LlamaForCausalLM(hf_cfg)
    state = {
        hf_name(k): v for k, v in ours.state_dict().items() if not (cfg.tie_embeddings and k == "head.weight")
    }
    theirs.load_state_dict(state, strict=False)
    if compile_blocks:
        for block in ours.layers:
            block.compile()
    return ours, theirs


def make_step(model: torch.nn.Module, is_hf: bool):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)

    def step(tokens: torch.Tensor) -> float:
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        logits = model(input_ids=inputs).logits if is_hf else model(inputs)
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def measure(size: str, batch: int, seq_len: int, steps: int, rounds: int, compile_blocks: bool) -> dict:
    torch.manual_seed(0)
    ours, theirs = build(size, seq_len, compile_blocks)
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, ours.cfg.vocab_size, (batch, seq_len + 1), generator=gen)
    steppers = {"ours": make_step(ours, False), "transformers": make_step(theirs, True)}
    first = {name: fn(tokens) for name, fn in steppers.items()}  # warm-up (and compilation)
    assert abs(first["ours"] - first["transformers"]) < 1e-3, first  # same weights, same loss
    rates: dict[str, list[float]] = {name: [] for name in steppers}
    cpu_rates: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(rounds):
        for name, fn in steppers.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(steps):
                fn(tokens)
            rates[name].append(batch * seq_len * steps / (time.perf_counter() - start))
            cpu_rates[name].append(batch * seq_len * steps / (time.process_time() - cpu_start))
    median = {name: statistics.median(r) for name, r in rates.items()}
    cpu_median = {name: statistics.median(r) for name, r in cpu_rates.items()}
    return {
        "size": size,
        "batch": batch,
        "seq_len": seq_len,
        "params": sum(p.numel() for p in ours.parameters()),
        "compile": compile_blocks,
        "threads": torch.get_num_threads(),
        "tokens_per_s": median,
        "tokens_per_cpu_s": cpu_median,
        "all_rounds": rates,
        "speedup": median["ours"] / median["transformers"],
        "speedup_cpu_time": cpu_median["ours"] / cpu_median["transformers"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=["tiny", "125M"])
    parser.add_argument("--batch", type=int, default=None, help="default: 8 for tiny, 2 otherwise")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument(
        "--steps", type=int, default=None, help="steps per round (default: 10 tiny, 2 otherwise)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="torch.compile our blocks (as train.compile)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print("| size | batch x seq | ours tok/s | transformers tok/s | speedup | speedup (CPU time) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size in args.sizes:
        tiny = size == "tiny"
        batch = args.batch or (8 if tiny else 2)
        steps = args.steps or (10 if tiny else 2)
        r = measure(size, batch, args.seq_len, steps, args.rounds, args.compile)
        results.append(r)
        t = r["tokens_per_s"]
        label = size + (" (compiled)" if args.compile else "")
        print(
            f"| {label} | {batch} x {args.seq_len} | {t['ours']:.0f} | {t['transformers']:.0f} | {r['speedup']:.2f}x | {r['speedup_cpu_time']:.2f}x |",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
