"""Cost of `pack --order similar`: its steps per million documents, and packing throughput against
`--order shuffle`.

Documents: the order-ablation corpus (WikiText-2 and zh-Wikipedia paragraphs, EWT web documents,
Gutenberg passages; benchmarks/order_ablation.py) plus classical Chinese poems, up to --docs, all
real text from ../shared/data.

* steps, one process pinned to one core with one thread (`taskset -c 0`, OMP/MKL threads 1):
  fitting the hashed embedder (IDF + LSA on `fit_sample` documents), embedding (hashed; and the
  packaged MiniLM on --model-docs documents, for comparison), k-means partitioning, kNN inside one
  partition of `partition_docs` (IVF beyond `exact_max`), and the greedy walk; per-million figures
  scale the per-document cost of embedding and walking and the per-partition cost of kNN;
* `pack()` end to end on local Ray with 2 CPUs (2 tokenize workers): shuffle vs similar, tokens/s.

Each figure is the median of --runs runs. Results replace the section "## Similarity order: cost
(issue 15)" of benchmarks/RESULTS.md.

    taskset -c 0,1 python benchmarks/order_speed.py [--docs 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from order_ablation import DATA, corpus_rows  # noqa: E402
from results_md import replace_section  # noqa: E402

SECTION = "## Similarity order: cost (issue 15)"
ONE_THREAD = {
    v: "1" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")
}


def documents(limit: int) -> list[dict]:
    rows = corpus_rows()
    with gzip.open(DATA / "zh" / "zh_classical_poetry.jsonl.gz", "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if len(rows) >= limit:
                break
            r = json.loads(line)
            text = r.get("text") or "\n".join(r.get("paragraphs") or [])
            if text:
                rows.append({"id": f"poem:{i}", "text": text, "lang": "zh"})
    return rows[:limit]


def timed(fn, runs: int):
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def steps(texts: list[str], runs: int, model_docs: int) -> dict[str, float]:
    """Seconds of each step on this process (pin it to one core)."""
    import faiss

    from dataengine.embed.hashed import HashedTfidfEmbedder
    from dataengine.embed.sentence import SentenceTransformerEmbedder
    from dataengine.pack.config import SimilarOrderConfig
    from dataengine.pack.walk import greedy_chains, nearest_neighbours

    faiss.omp_set_num_threads(1)
    cfg = SimilarOrderConfig()
    embedder = HashedTfidfEmbedder(cfg.embed.dim, cfg.embed.max_chars, cfg.embed.seed)
    fit_s, _ = timed(lambda: embedder.fit(texts[: cfg.embed.fit_sample]), runs)
    embedder.projection()  # built once per worker process; not part of the per-document cost
    embed_s, emb = timed(
        lambda: np.concatenate([embedder(texts[i : i + 1024]) for i in range(0, len(texts), 1024)]), runs
    )
    part = emb[: cfg.partition_docs]
    kmeans_s, _ = timed(
        lambda: faiss.Kmeans(emb.shape[1], 10, niter=20, seed=1, spherical=True).train(
            emb[: cfg.kmeans_sample]
        ),
        runs,
    )
    knn_s, neighbours = timed(lambda: nearest_neighbours(part, cfg.knn), runs)
    walk_s, chains = timed(lambda: greedy_chains(part, neighbours, cfg, np.random.default_rng(0)), runs)
    model = SentenceTransformerEmbedder(device="cpu")
    import torch

    torch.set_num_threads(1)
    sample = texts[:model_docs]
    model(sample[:16])
    model_s, _ = timed(lambda: model(sample), 1)
    hashed_sample_s, _ = timed(lambda: embedder(sample), runs)
    n, p = len(texts), len(part)
    return {
        "docs": n,
        "partition_docs": p,
        "chains": len(chains),
        "fit_s": fit_s,
        "embed_docs_per_s": n / embed_s,
        "model_docs_per_s": len(sample) / model_s,
        "hashed_sample_docs_per_s": len(sample) / hashed_sample_s,
        "model_docs": len(sample),
        "mean_chars": float(np.mean([min(len(t), cfg.embed.max_chars) for t in texts])),
        "sample_mean_chars": float(np.mean([min(len(t), cfg.embed.max_chars) for t in sample])),
        "kmeans_s": kmeans_s,
        "knn_partition_s": knn_s,
        "walk_docs_per_s": p / walk_s,
        "per_million_embed_s": embed_s / n * 1e6,
        "per_million_knn_s": knn_s * 1e6 / p,
        "per_million_walk_s": walk_s / p * 1e6,
        "per_million_model_embed_s": model_s / len(sample) * 1e6,
    }


def pack_throughput(rows: list[dict], work: Path, runs: int) -> dict[str, tuple[float, int]]:
    corpus = work / "corpus.jsonl"
    with open(corpus, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    tok = work / "tokenizer.json"
    subprocess.run(
        [sys.executable, "-m", "dataengine", "tokenizer", "train", "--input", str(corpus), "--vocab-size", "8192",
         "--output", str(tok)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)  # fmt: skip
    import ray

    from dataengine.pack.packer import PackConfig, pack

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    out = {}
    for order in ("shuffle", "similar"):
        seconds, manifest = timed(
            lambda order=order: pack([corpus], tok, work / order, PackConfig(seq_len=2048, order=order)), runs
        )
        out[order] = (seconds, manifest["tokens_in"])
    ray.shutdown()
    return out


def write_results(s: dict, packs: dict, args: argparse.Namespace) -> None:
    shuffle_s, tokens = packs["shuffle"]
    similar_s, _ = packs["similar"]
    total = s["per_million_embed_s"] + s["per_million_knn_s"] + s["per_million_walk_s"]
    lines = [
        SECTION,
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores. Command: "
        f"`python benchmarks/order_speed.py --docs {args.docs} --runs {args.runs}` (steps: one process, "
        "one core, one thread; pack: local Ray with 2 CPUs, 2 tokenize workers). Medians of "
        f"{args.runs} runs. {s['docs']:,} real en/zh documents; kNN and walk on one partition of "
        f"{s['partition_docs']:,} (the default `partition_docs`), IVF since it is over `exact_max`.",
        "",
        "| step (one core) | measured | per million documents |",
        "| --- | --- | --- |",
        f"| fit hashed embedder (IDF + LSA, 20,000 docs) | {s['fit_s']:.1f} s | once per pack |",
        f"| embed, hashed (default), all documents (mean {s['mean_chars']:,.0f} characters embedded) | "
        f"{s['embed_docs_per_s']:,.0f} docs/s | {s['per_million_embed_s']:,.0f} s |",
        f"| embed, hashed, the first {s['model_docs']:,} (paragraphs, mean {s['sample_mean_chars']:,.0f} characters) | "
        f"{s['hashed_sample_docs_per_s']:,.0f} docs/s | {1e6 / s['hashed_sample_docs_per_s']:,.0f} s |",
        f"| embed, MiniLM (packaged), the same {s['model_docs']:,} | {s['model_docs_per_s']:,.0f} docs/s | "
        f"{s['per_million_model_embed_s']:,.0f} s |",
        f"| k-means partitions (10 centroids; faiss trains on 256 a centroid) | {s['kmeans_s']:.2f} s | once per pack |",
        f"| kNN, k=20, one partition | {s['knn_partition_s']:.1f} s | {s['per_million_knn_s']:,.0f} s |",
        f"| greedy walk | {s['walk_docs_per_s']:,.0f} docs/s | {s['per_million_walk_s']:,.0f} s |",
        f"| **ordering, hashed (embed + kNN + walk)** | | **{total:,.0f} s** (~{total / 60:.0f} core-minutes) |",
        "",
        f"`pack()` of the {s['docs']:,} documents ({tokens:,} tokens, seq_len 2048): shuffle "
        f"{tokens / shuffle_s:,.0f} tokens/s ({shuffle_s:.1f} s), similar {tokens / similar_s:,.0f} tokens/s "
        f"({similar_s:.1f} s): similar/shuffle time = {similar_s / shuffle_s:.2f}x.",
        "",
    ]
    replace_section(SECTION, "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model-docs", type=int, default=1000)
    args = parser.parse_args()
    rows = documents(args.docs)
    measured = subprocess.run(
        ["taskset", "-c", "0", sys.executable, __file__, "--steps-only", str(args.docs), str(args.runs),
         str(args.model_docs)], check=True, cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, **ONE_THREAD})  # fmt: skip
    s = json.loads(measured.stdout.strip().splitlines()[-1])
    print(s, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        packs = pack_throughput(rows, Path(tmp), args.runs)
    print(packs)
    write_results(s, packs, args)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--steps-only":
        docs, runs, model_docs = map(int, sys.argv[2:5])
        print(json.dumps(steps([r["text"] for r in documents(docs)], runs, model_docs)))
    else:
        main()
