"""Packing throughput: `dataengine pack` tokens/s against a bare `Tokenizer.encode_batch`.

Same documents, same run: the shared English + Chinese + code sample (../shared/data) is
written as JSONL, a 32k tokenizer is trained on it (or --tokenizer is used), then

* baseline: `Tokenizer.encode_batch` over the in-memory texts, batches of 256, one thread
  (RAYON_NUM_THREADS=1), the issue's yardstick; `encode_batch_fast` (no character offsets, which
  is what a pack worker calls) is timed the same way and shown beside it;
* pack: the whole `pack()` (read files on Ray Data, tokenize in Ray tasks, pack, write shards
  and manifest) with 1 and 2 tokenize workers, on a local Ray with 2 CPUs; the driver's own CPU
  time is recorded too (packing and writing run there, tokenizing does not).

Each figure is the median of --runs runs (runs interleaved). Results replace the section
"## Packing throughput (issue 3)" of benchmarks/RESULTS.md, keeping its "### Earlier
measurements" subsection (history) at the end.

    python benchmarks/pack_throughput.py [--chars-per-channel 3000000] [--runs 3]
"""

from __future__ import annotations

import os

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers starts its thread pool

import argparse
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Packing throughput (issue 3)"
HISTORY = "### Earlier measurements"


def bare_encode(
    texts: list[str], tokenizer_path: Path, method: str = "encode_batch", batch_size: int = 256
) -> tuple[int, float]:
    from dataengine.pack.tokenizer import load_tokenizer

    encode = getattr(load_tokenizer(tokenizer_path), method)
    start = time.perf_counter()
    tokens = 0
    for i in range(0, len(texts), batch_size):
        tokens += sum(len(e.ids) + 1 for e in encode(texts[i : i + batch_size], add_special_tokens=False))
    return tokens, time.perf_counter() - start


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_pack(inputs: list[Path], tokenizer_path: Path, out: Path, workers: int) -> tuple[int, float, float]:
    """Tokens, wall seconds and the driver's CPU seconds of one `pack()`."""
    from dataengine.pack.packer import PackConfig, pack

    cpu, start = _cpu_seconds(), time.perf_counter()
    manifest = pack(inputs, tokenizer_path, out, PackConfig(seq_len=2048, num_workers=workers))
    return manifest["tokens_in"], time.perf_counter() - start, _cpu_seconds() - cpu


def write_section(text: str) -> None:
    path = ROOT / "benchmarks" / "RESULTS.md"
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    if SECTION in current:
        head, _, rest = current.partition(SECTION)
        nxt = rest.find("\n## ")
        section, tail = (rest[:nxt], rest[nxt + 1 :]) if nxt >= 0 else (rest, "")
        if HISTORY in section:
            text += "\n" + HISTORY + section.partition(HISTORY)[2].rstrip("\n") + "\n"
        current = head + text + ("\n" + tail if tail else "")
    else:
        current = current.rstrip("\n") + "\n\n" + text
    path.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shared", type=Path, default=ROOT / ".." / "shared" / "data")
    parser.add_argument("--chars-per-channel", type=int, default=3_000_000)
    parser.add_argument("--tokenizer", type=Path, help="use this tokenizer instead of training a 32k one")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]

    import ray

    from dataengine.pack.sample_corpus import write_sample_corpus
    from dataengine.pack.tokenizer import TokenizerConfig, train_tokenizer

    work = Path(tempfile.mkdtemp(prefix="pack_bench_"))
    corpus = write_sample_corpus(args.shared.resolve(), work / "corpus", max_chars=args.chars_per_channel)
    inputs = [corpus["en"], corpus["zh"], corpus["code"]]
    tokenizer_path = args.tokenizer
    if tokenizer_path is None:
        tokenizer_path = work / "tokenizer.json"
        train_tokenizer(
            list(corpus.values()),
            tokenizer_path,
            TokenizerConfig(vocab_size=32000, channel_weights={"zh": 3}),
        )
    texts = [json.loads(line)["text"] for path in inputs for line in open(path, encoding="utf-8")]
    chars = sum(map(len, texts))

    load_before = os.getloadavg()[0]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    run_pack(inputs, tokenizer_path, work / "warmup", 2)  # worker start-up, imports

    results: dict[str, list[float]] = {
        "encode_batch (1 thread)": [],
        "encode_batch_fast (1 thread)": [],
        "pack, 1 worker": [],
        "pack, 2 workers": [],
    }
    driver_cpu: dict[int, list[float]] = {1: [], 2: []}
    tokens_seen = set()
    for run in range(args.runs):
        for method in ("encode_batch", "encode_batch_fast"):
            tokens, seconds = bare_encode(texts, tokenizer_path, method)
            tokens_seen.add(tokens)
            results[f"{method} (1 thread)"].append(tokens / seconds)
        for workers in (1, 2):
            tokens, seconds, cpu = run_pack(inputs, tokenizer_path, work / f"shards_{run}_{workers}", workers)
            tokens_seen.add(tokens)
            driver_cpu[workers].append(cpu)
            results[f"pack, {workers} worker{'s' if workers > 1 else ''}"].append(tokens / seconds)
    ray.shutdown()
    load_after = os.getloadavg()[0]
    if len(tokens_seen) != 1:
        sys.exit(f"token counts differ between baseline and pack: {tokens_seen}")

    medians = {name: statistics.median(values) for name, values in results.items()}
    base = medians["encode_batch (1 thread)"]
    one = medians["pack, 1 worker"]
    lines = [
        SECTION,
        "",
        f"Machine: {os.cpu_count()} cores ({platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}); 1-minute load average {load_start:.1f} at the start, "
        f"{load_before:.1f} before the timed runs (after tokenizer training) and {load_after:.1f} after them (this benchmark alone keeps up to 2 cores busy; a higher "
        "figure means other jobs shared the cores and the figures are noisy).",
        f"Data: {len(texts)} documents, {chars:,} characters, {tokens_seen.pop():,} tokens (EOS included) of the "
        "shared English + Chinese + code sample; 32k tokenizer; seq_len 2048.",
        f"Command: `python benchmarks/pack_throughput.py --chars-per-channel {args.chars_per_channel} "
        f"--runs {args.runs}` (median of {args.runs} runs; pack timed end to end: read, tokenize in Ray tasks, "
        "pack, write shards). Driver CPU (median): "
        f"{statistics.median(driver_cpu[1]):.2f} s with 1 worker, {statistics.median(driver_cpu[2]):.2f} s "
        "with 2.",
        "",
        "| what | tokens/s (median) | runs | ratio |",
        "| --- | ---: | --- | --- |",
    ]
    for name, values in results.items():
        if name.startswith("encode_batch "):
            ratio = "1.00 (baseline)"
        elif name.startswith("encode_batch_fast"):
            ratio = f"{medians[name] / base:.2f}x of encode_batch"
        elif name == "pack, 1 worker":
            fast = medians["encode_batch_fast (1 thread)"]
            ratio = (
                f"{one / base:.2f}x of encode_batch (target >= 0.8); {one / fast:.2f}x of encode_batch_fast"
            )
        else:
            ratio = f"{medians[name] / one:.2f}x of 1 worker (target >= 1.7)"
        runs = ", ".join(f"{v:,.0f}" for v in values)
        lines.append(f"| {name} | {medians[name]:,.0f} | {runs} | {ratio} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
