"""Does `pack --order similar` (In-Context Pretraining) train a better model than `--order shuffle`?

Same documents, same tokenizer, same tiny Llama (configs/train/tiny.yaml), same token budget; only
the packing order differs, over --seeds training seeds each. Attention crosses document boundaries
(`data.doc_mask: false`), as in ICP: with the document mask on, a row's other documents are
invisible and the order cannot matter.

Corpus (../shared/data, en + zh, with topical structure for the order to find): WikiText-2
paragraphs (grouped by article), Chinese Wikipedia paragraphs (CMRC 2018), UD English-EWT web
documents, and the Gutenberg books cut into 1,500-character passages.

Measured on the documents of the held-out split (never trained on):
* held-out loss: each document scored alone, mean NLL per token (first seq_len tokens);
* context use: the second half of a held-out document B scored after [A's tail, B's first half],
  where A is B's nearest training document under an independent TF-IDF (character 1-3-grams), and
  after [R's tail, B's first half] with R a random training document. gain = NLL(random) -
  NLL(related): how much the model reads a related preceding document.

Runs go two at a time, each pinned to one core (taskset, one torch thread). Results replace the
section "## Similarity order: effect on training (issue 15)" of benchmarks/RESULTS.md.

    python benchmarks/order_ablation.py [--steps 300] [--seeds 0 1] [--seq-len 512]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from results_md import replace_section  # benchmarks/ is on the path of a script run from it

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SECTION = "## Similarity order: effect on training (issue 15)"
ORDERS = ("shuffle", "similar")
# Without the document mask, the tiny config's peak lr (3e-3) sets off gradient-norm excursions near
# step 25 at seq_len 512 (grad norm 0.5 -> 15). Before issue 16 the spike guard then skipped every later
# step; it no longer does (skipped steps enter its window), but the figures in RESULTS.md were taken
# with a lower peak and the z-test out of reach, and these settings keep them reproducible.
TRAIN_SETTINGS = ("--set", "train.lr=1e-3", "--set", "spike.z_threshold=1e6")


def corpus_rows() -> list[dict]:
    rows: list[dict] = []
    title = None
    for i, line in enumerate(
        (DATA / "reference" / "wikitext-2_valid.txt").read_text(encoding="utf-8").split("\n")
    ):
        heading = re.fullmatch(r" = ([^=].*) = ", line)
        if heading:
            title = heading.group(1)
        elif title and len(line) > 300:
            rows.append({"id": f"wikitext:{i}", "text": line.strip(), "lang": "en"})
    for line in open(DATA / "zh" / "cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8"):
        r = json.loads(line)
        rows.append({"id": f"cmrc:{r['id']}", "text": r["text"], "lang": "zh"})
    for line in open(DATA / "web" / "text" / "ewt_web_docs.jsonl", encoding="utf-8"):
        r = json.loads(line)
        if len(r["text"]) > 300:
            rows.append({"id": f"ewt:{len(rows)}", "text": r["text"], "lang": "en"})
    for path in sorted((DATA / "reference" / "gutenberg").iterdir()):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            text = re.sub(r"\s+", " ", fh.read())
        for k in range(0, len(text) - 1500, 1500):
            rows.append({"id": f"{path.name}:{k}", "text": text[k : k + 1500], "lang": "book"})
    return rows


def sh(args: list[str], env: dict | None = None) -> None:
    subprocess.run(args, check=True, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)


def prepare(work: Path, seq_len: int) -> dict[str, Path]:
    rows = corpus_rows()
    corpus = work / "corpus.jsonl"
    with open(corpus, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    tok = work / "tokenizer.json"
    cli = [sys.executable, "-m", "dataengine"]
    sh([*cli, "tokenizer", "train", "--input", str(corpus), "--vocab-size", "4096",
        "--heldout-fraction", "0.05", "--output", str(tok)])  # fmt: skip
    shards = {}
    for order in ORDERS:
        shards[order] = work / f"shards_{order}"
        started = time.perf_counter()
        sh([*cli, "pack", "--input", str(corpus), "--tokenizer", str(tok), "--seq-len", str(seq_len),
            "--order", order, "--output", str(shards[order])])  # fmt: skip
        print(f"packed {order} in {time.perf_counter() - started:.0f} s", flush=True)
    return {"corpus": corpus, **shards}


def train_all(
    work: Path, shards: dict[str, Path], seeds: list[int], steps: int
) -> dict[tuple[str, int], Path]:
    runs = {(o, s): work / f"run_{o}_{s}" for o in ORDERS for s in seeds}
    pending = list(runs.items())
    while pending:
        batch, pending = pending[:2], pending[2:]
        procs = []
        for core, ((order, seed), run_dir) in enumerate(batch):
            args = ["taskset", "-c", str(core), sys.executable, "-m", "train", "configs/train/tiny.yaml",
                    "--set", f"data.shards={shards[order]}", "--set", f"run_dir={run_dir}",
                    "--set", f"train.max_steps={steps}", "--set", f"train.seed={seed}",
                    "--set", "data.doc_mask=false", "--set", f"checkpoint.interval={steps}",
                    "--set", f"eval.interval={steps}", *TRAIN_SETTINGS]  # fmt: skip
            env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL))
        for p in procs:
            if p.wait():
                raise SystemExit(f"training failed: {p.args}")
        print("trained", [k for k, _ in batch], flush=True)
    return runs


def heldout_docs(shards: Path, corpus: Path) -> tuple[list[str], list[str]]:
    """(held-out texts, training texts), by the ids in the shard spans."""
    from dataengine.pack.shards import ShardReader

    held = set()
    reader = ShardReader(shards, "heldout")
    for shard, row in reader.sequence_ids():
        held.update(span["doc_id"] for span in reader.spans(shard, row))
    texts = {r["id"]: r["text"] for r in map(json.loads, open(corpus, encoding="utf-8"))}
    return [t for i, t in texts.items() if i in held], [t for i, t in texts.items() if i not in held]


def context_pairs(held: list[str], train: list[str], seed: int = 0) -> list[tuple[str, str]]:
    """(related, random) training document for each held-out document."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, max_features=300_000)
    x_train = tfidf.fit_transform(train)
    nearest = np.asarray((tfidf.transform(held) @ x_train.T).argmax(axis=1)).ravel()
    rng = np.random.default_rng(seed)
    return [
        (train[n], train[r]) for n, r in zip(nearest, rng.integers(0, len(train), len(held)), strict=True)
    ]


def evaluate(run_dir: Path, held: list[str], pairs: list[tuple[str, str]], seq_len: int) -> dict[str, float]:
    import torch

    from eval.trainer_backend import load_trainer_checkpoint

    torch.set_num_threads(2)
    scorer = load_trainer_checkpoint(run_dir, device="cpu")
    start = scorer.start_ids
    alone = [(start + scorer.encode(t))[:seq_len] for t in held]
    scores = scorer.score_tokens(alone, [1] * len(alone))
    heldout = sum(-s.total for s in scores) / sum(len(s.logprobs) for s in scores)
    nll = {"related": [0.0, 0], "random": [0.0, 0]}
    for doc, (related, random) in zip(held, pairs, strict=True):
        ids = scorer.encode(doc)[: seq_len // 2]
        if len(ids) < 32:
            continue
        first, second = ids[: len(ids) // 2], ids[len(ids) // 2 :]
        for name, other in (("related", related), ("random", random)):
            context = start + scorer.encode(other)[-(seq_len - len(ids) - 2) :] + start + first
            (score,) = scorer.score_tokens([context + second], [len(context)])
            nll[name][0] -= score.total
            nll[name][1] += len(score.logprobs)
    related, random = (nll[k][0] / nll[k][1] for k in ("related", "random"))
    return {"heldout_nll": heldout, "nll_after_related": related, "nll_after_random": random,
            "context_gain": random - related}  # fmt: skip


def write_results(results: dict, args: argparse.Namespace, documents: int, pack_stats: dict) -> None:
    lines = [
        SECTION,
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; each run pinned to one "
        f"core (two at a time). Command: `python benchmarks/order_ablation.py --steps {args.steps} --seeds "
        f"{' '.join(map(str, args.seeds))} --seq-len {args.seq_len}`.",
        f"Corpus: {documents} documents (WikiText-2 paragraphs, zh-Wikipedia paragraphs, EWT web documents, "
        "Gutenberg passages); 4,096-token BPE; 5% held out by id hash. Tiny Llama (configs/train/tiny.yaml), "
        f"{args.steps} steps x 8 x {args.seq_len} tokens, `data.doc_mask: false`, peak lr 1e-3, spike z-test off "
        "(see TRAIN_SETTINGS in the script: at 3e-3 both orders diverged and the guard before issue 16 then froze them). Similar order: "
        f"{pack_stats.get('chains')} chains, mean consecutive cosine {pack_stats.get('mean_consecutive_cosine')} "
        "(hashed LSA embedding).",
        "",
        "| order | seed | held-out NLL/token | NLL after related doc | after random doc | context gain |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for (order, seed), r in sorted(results.items()):
        lines.append(
            f"| {order} | {seed} | {r['heldout_nll']:.4f} | {r['nll_after_related']:.4f} | "
            f"{r['nll_after_random']:.4f} | {r['context_gain']:+.4f} |"
        )
    for order in ORDERS:
        rs = [r for (o, _), r in results.items() if o == order]
        lines.append(
            f"| **{order}, median** | | {statistics.median(r['heldout_nll'] for r in rs):.4f} | "
            f"{statistics.median(r['nll_after_related'] for r in rs):.4f} | "
            f"{statistics.median(r['nll_after_random'] for r in rs):.4f} | "
            f"{statistics.median(r['context_gain'] for r in rs):+.4f} |"
        )
    lines.append("")
    replace_section(SECTION, "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--work", type=Path, default=None, help="keep intermediate files here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="order_ablation_"))
    work.mkdir(parents=True, exist_ok=True)
    paths = prepare(work, args.seq_len)
    runs = train_all(work, paths, args.seeds, args.steps)
    held, train = heldout_docs(paths["shuffle"], paths["corpus"])
    pairs = context_pairs(held, train)
    results = {key: evaluate(run_dir, held, pairs, args.seq_len) for key, run_dir in runs.items()}
    for key, r in sorted(results.items()):
        print(key, {k: round(v, 4) for k, v in r.items()})
    manifest = json.loads((paths["similar"] / "manifest.json").read_text())
    documents = sum(1 for _ in open(paths["corpus"], encoding="utf-8"))
    write_results(results, args, documents, manifest["order"])
    (work / "results.json").write_text(json.dumps({f"{o}/{s}": r for (o, s), r in results.items()}, indent=1))


if __name__ == "__main__":
    main()
