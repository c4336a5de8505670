"""Near-duplicate detection quality: this engine vs DataTrove's MinHash pipeline, same input, same run.

Input (all real text from ../shared/data):
  * base documents: English web text (UD EWT web docs, C4, cc_net, RedPajama)
    and Chinese (CMRC 2018 zh-Wikipedia paragraphs, SIGHAN news lines grouped);
  * planted near-duplicates: a copy of a base document with a controlled edit
    rate r of word (English) or character (Chinese) insertions, deletions,
    substitutions, or with its paragraphs/sentences reordered;
  * natural near-duplicates: the same Gutenberg passage as printed in the
    file and re-wrapped at another width, with a different header line and
    "encoding" differences (curly vs straight quotes, em dashes vs '--').

Truth: the true Jaccard of each planted pair on the engine's shingles (word
5-grams, character 5-grams for Chinese). Recall = share of pairs with true
Jaccard >= 0.85 whose two documents end in the same duplicate cluster.
Precision = share of predicted pairs (removed document, its cluster's
survivor) that are the same family or have true Jaccard >= 0.75.

Run:  python benchmarks/dedup_quality.py [--families 600] [--out /tmp/dedup_quality]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import shutil
import statistics
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from dataengine.dedup.config import DedupConfig, MinHashConfig  # noqa: E402
from dataengine.dedup.minhash import jaccard, shingle_sets  # noqa: E402

EDIT_KINDS = ("delete", "insert", "substitute", "mixed", "reorder")
EDIT_RATES = (0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2)


def _jsonl(path: Path, field: str) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line)[field] for line in fh if line.strip()]


def english_pool() -> list[str]:
    web = DATA / "web" / "text"
    texts = _jsonl(web / "ewt_web_docs.jsonl", "text")
    for name in (
        "cc_en_head-0091.jsonl",
        "cc_en_head-0174.jsonl",
        "redpajama-c4-refined.jsonl",
        "redpajama-cc-2023-06-refined.jsonl",
    ):
        texts += _jsonl(web / name, "text")
    for i in (1, 2, 3):
        texts += _jsonl(web / f"c4-sample.0{i}.jsonl.gz", "text")
    return [t for t in texts if len(t.split()) >= 60]


def chinese_pool() -> list[str]:
    texts = _jsonl(DATA / "zh" / "cmrc2018_zhwiki_contexts.jsonl", "text")
    with gzip.open(DATA / "zh" / "sighan2005" / "msr_test.utf8.gz", "rt", encoding="utf-8") as fh:
        lines = [x.strip() for x in fh if x.strip()]
    texts += ["\n".join(lines[i : i + 8]) for i in range(0, len(lines), 8)]
    return [t for t in texts if len(t) >= 150]


def edit(text: str, kind: str, rate: float, rng: random.Random, cjk: bool, vocab: list[str]) -> str:
    """Apply `rate` edits per unit (word, or character for Chinese) of the given kind."""
    if kind == "reorder":
        parts = [p for p in re.split(r"(?<=[.!?。！？\n])\s*", text) if p]
        k = max(2, int(len(parts) * rate * 4))
        idx = rng.sample(range(len(parts)), min(k, len(parts)))
        moved = [parts[i] for i in idx]
        rng.shuffle(moved)
        for i, p in zip(sorted(idx), moved, strict=True):
            parts[i] = p
        return ("" if cjk else " ").join(parts)
    units = list(text) if cjk else text.split(" ")
    out = []
    for u in units:
        op = kind if kind != "mixed" else rng.choice(("delete", "insert", "substitute"))
        if rng.random() >= rate:
            out.append(u)
        elif op == "insert":
            out += [u, rng.choice(vocab)]
        elif op == "substitute":
            out.append(rng.choice(vocab))
        # delete: drop the unit
    return ("" if cjk else " ").join(out)


def gutenberg_pairs(rng: random.Random, per_book: int) -> list[tuple[str, str, str]]:
    """(title, as printed, re-wrapped with another header and typography) passages."""
    meta = [
        json.loads(x)
        for x in open(DATA / "reference" / "gutenberg" / "books_metadata.jsonl", encoding="utf-8")
    ]
    pairs = []
    for book in meta:
        raw = (DATA / "reference" / "gutenberg" / book["file"]).read_text(encoding="utf-8", errors="replace")
        paragraphs = [p for p in raw.split("\n\n") if len(p.split()) >= 20]
        if len(paragraphs) < 40:
            continue
        for _ in range(per_book):
            s = rng.randrange(len(paragraphs) - 8)
            passage = "\n\n".join(paragraphs[s : s + rng.randint(3, 8)])
            rewrapped = "\n\n".join(
                textwrap.fill(" ".join(p.split()), width=rng.choice((50, 60, 90)))
                for p in passage.split("\n\n")
            )
            rewrapped = (
                rewrapped.replace("\u201c", '"')
                .replace("\u201d", '"')
                .replace("\u2019", "'")
                .replace("--", "\u2014")
            )
            header = f"The Project Gutenberg eBook of {book['title']} (file {book['gutenberg_id']}-0.txt)\n\n"
            pairs.append((book["title"], passage, header + rewrapped))
    return pairs


def build_corpus(n_families: int, seed: int = 0) -> tuple[list[dict], list[tuple[str, str, str, str]]]:
    """Rows for the engine and the planted pairs (original id, variant id, kind, language)."""
    rng = random.Random(seed)
    en, zh = english_pool(), chinese_pool()
    en_vocab = [w for t in en[:300] for w in t.split()]
    zh_vocab = [c for t in zh[:300] for c in t if not c.isspace()]
    rows, pairs = [], []
    for lang, pool in (("en", en), ("zh", zh)):
        for i, text in enumerate(pool):
            rows.append({"id": f"{lang}-{i}", "text": text, "lang": lang, "quality": rng.random()})
        chosen = rng.sample(range(len(pool)), min(n_families // 2, len(pool)))
        for i in chosen:
            kind, rate = rng.choice(EDIT_KINDS), rng.choice(EDIT_RATES)
            variant = edit(pool[i], kind, rate, rng, lang == "zh", zh_vocab if lang == "zh" else en_vocab)
            vid = f"{lang}-{i}-{kind}-{rate}"
            rows.append({"id": vid, "text": variant, "lang": lang, "quality": rng.random()})
            pairs.append((f"{lang}-{i}", vid, f"{kind}", lang))
    for j, (_, printed, rewrapped) in enumerate(gutenberg_pairs(rng, 12)):
        rows += [
            {"id": f"gb-{j}", "text": printed, "lang": "en", "quality": rng.random()},
            {"id": f"gb-{j}-natural", "text": rewrapped, "lang": "en", "quality": rng.random()},
        ]
        pairs.append((f"gb-{j}", f"gb-{j}-natural", "natural", "en"))
    rng.shuffle(rows)
    for k, row in enumerate(rows):
        row["source"] = f"dedup_quality:{k}"
    return rows, pairs


def run_engine(rows: list[dict], work: Path) -> tuple[dict[str, str], float]:
    """doc id -> cluster id (its survivor) from `run_dedup`, and the wall time."""
    import ray

    from dataengine.dedup.runner import run_dedup

    inp = work / "engine_in"
    inp.mkdir(parents=True)
    step = 2000
    for k in range(0, len(rows), step):
        pq.write_table(pa.Table.from_pylist(rows[k : k + step]), inp / f"part-{k // step:05d}.parquet")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    t0 = time.time()
    run_dedup([inp], work / "engine_out", DedupConfig())
    wall = time.time() - t0
    cluster = {}
    for t in pq.read_table(work / "engine_out" / "kept").to_pylist():
        cluster[t["id"]] = t["dup_cluster"]
    for t in pq.read_table(work / "engine_out" / "rejected").to_pylist():
        cluster[t["id"]] = t["duplicate_of"]
    return cluster, wall


def run_datatrove(rows: list[dict], work: Path) -> tuple[dict[str, str], float]:
    """doc id -> cluster id from DataTrove's four MinHash steps with its default config."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    src = work / "dt_in"
    src.mkdir(parents=True)
    with open(src / "docs.jsonl", "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n")
    cfg = MinhashConfig()
    logs = str(work / "dt_logs")
    t0 = time.time()
    LocalPipelineExecutor(
        [JsonlReader(str(src)), MinhashDedupSignature(output_folder=str(work / "dt_sigs"), config=cfg)],
        tasks=1,
        logging_dir=logs + "/1",
    ).run()
    LocalPipelineExecutor(
        [
            MinhashDedupBuckets(
                input_folder=str(work / "dt_sigs"), output_folder=str(work / "dt_buckets"), config=cfg
            )
        ],
        tasks=cfg.num_buckets,
        workers=2,
        logging_dir=logs + "/2",
    ).run()
    LocalPipelineExecutor(
        [
            MinhashDedupCluster(
                input_folder=str(work / "dt_buckets"),
                output_folder=str(work / "dt_remove"),
                config=cfg,
                save_cluster_id=True,
            )
        ],
        tasks=1,
        logging_dir=logs + "/3",
    ).run()
    LocalPipelineExecutor(
        [
            JsonlReader(str(src)),
            MinhashDedupFilter(
                input_folder=str(work / "dt_remove"),
                exclusion_writer=JsonlWriter(str(work / "dt_removed"), compression=None),
                load_cluster_ids=True,
            ),
            JsonlWriter(str(work / "dt_kept"), compression=None),
        ],
        tasks=1,
        logging_dir=logs + "/4",
    ).run()
    wall = time.time() - t0
    cluster = {}
    for folder in ("dt_kept", "dt_removed"):
        for f in (work / folder).glob("*.jsonl"):
            for line in open(f, encoding="utf-8"):
                d = json.loads(line)
                cid = d.get("metadata", {}).get("minhash_cluster_id", -1)
                cluster[d["id"]] = f"dt-{cid}" if cid not in (-1, None) else d["id"]
    return cluster, wall


def score(
    cluster: dict[str, str], pairs, true_j: dict[tuple[str, str], float], sets: dict[str, np.ndarray]
) -> dict:
    family = {}
    for a, b, _, _ in pairs:
        family[a] = family[b] = a
    by_cluster: dict[str, list[str]] = {}
    for doc, c in cluster.items():
        by_cluster.setdefault(c, []).append(doc)
    predicted, correct = 0, 0
    for members in by_cluster.values():
        if len(members) < 2:
            continue
        head = min(members)
        for m in members:
            if m == head:
                continue
            predicted += 1
            same = family.get(m) is not None and family.get(m) == family.get(head)
            correct += same or jaccard(sets[m], sets[head]) >= 0.75
    bins = {"<0.5": [], "0.5-0.7": [], "0.7-0.8": [], "0.8-0.85": [], "0.85-0.9": [], ">=0.9": []}
    kinds: dict[str, list[bool]] = {}
    for a, b, kind, lang in pairs:
        j = true_j[(a, b)]
        hit = cluster.get(a) is not None and cluster.get(a) == cluster.get(b)
        key = (
            "<0.5"
            if j < 0.5
            else "0.5-0.7"
            if j < 0.7
            else "0.7-0.8"
            if j < 0.8
            else "0.8-0.85"
            if j < 0.85
            else "0.85-0.9"
            if j < 0.9
            else ">=0.9"
        )
        bins[key].append(hit)
        if j >= 0.85:
            kinds.setdefault(f"{lang}/{kind}", []).append(hit)
    high = bins["0.85-0.9"] + bins[">=0.9"]
    return {
        "recall_j>=0.85": round(float(np.mean(high)), 4) if high else None,
        "pairs_j>=0.85": len(high),
        "precision": round(correct / predicted, 4) if predicted else None,
        "predicted_pairs": predicted,
        "recall_by_jaccard": {k: (round(float(np.mean(v)), 3), len(v)) for k, v in bins.items() if v},
        "recall_j>=0.85_by_kind": {
            k: (round(float(np.mean(v)), 3), len(v)) for k, v in sorted(kinds.items())
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", type=int, default=1200, help="planted edited copies (half en, half zh)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/dedup_quality"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    rows, pairs = build_corpus(args.families, args.seed)
    texts = {r["id"]: r for r in rows}
    ids = list(texts)
    cfg = MinHashConfig()
    all_sets = shingle_sets([texts[i]["text"] for i in ids], [texts[i]["lang"] for i in ids], cfg)
    sets = dict(zip(ids, all_sets, strict=True))
    true_j = {(a, b): jaccard(sets[a], sets[b]) for a, b, _, _ in pairs}
    print(
        f"documents {len(rows)}, planted pairs {len(pairs)}, with J>=0.85: {sum(j >= 0.85 for j in true_j.values())}"
    )
    results = {}
    for name, fn in (("dataengine", run_engine), ("datatrove", run_datatrove)):
        cluster, wall = fn(rows, args.out / name)
        results[name] = {"wall_s": round(wall, 1), **score(cluster, pairs, true_j, sets)}
        print(name, json.dumps(results[name], indent=1))
    summary = {
        "documents": len(rows),
        "planted_pairs": len(pairs),
        "median_true_jaccard": round(statistics.median(true_j.values()), 3),
        **results,
    }
    (args.out / "results.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
