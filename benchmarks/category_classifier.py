"""The packaged category model on the held-out share of its own training sources, and its speed.

Reproduces scripts/train_category_model.py's examples and held-out split (a hash of each text), loads the
shipped dataengine/resources/models/category.ftz and prints Markdown tables: held-out precision / recall /
support per category, accuracy per language (en, zh, and the other languages present), the most frequent
confusions, the evaluation-only text the project may not ship (SIGHAN and NLTK ABC news, Brown), and the
classification speed on one core: documents per second for `classifier_features` + fastText `predict`.

Run:  python benchmarks/category_classifier.py [--data ../shared/data] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from train_category_model import DATA, eval_only_examples, labelled_examples, split  # noqa: E402

from dataengine.classifiers.features import classifier_features  # noqa: E402
from dataengine.classifiers.model import LABEL_PREFIX, packaged_model_path, read_card  # noqa: E402
from dataengine.stages.category import CATEGORIES  # noqa: E402
from dataengine.stages.fasttext_models import load_model  # noqa: E402


def predict(model, texts: list[str]) -> list[str]:
    labels, _ = model.predict([classifier_features(t) for t in texts], k=1)
    return [row[0].removeprefix(LABEL_PREFIX) for row in labels]


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def per_category_table(truth: list[str], pred: list[str], trained: set[str]) -> list[str]:
    rows = ["| category | precision | recall | support (held out) |", "| --- | ---: | ---: | ---: |"]
    for label in CATEGORIES:
        support = sum(t == label for t in truth)
        predicted = sum(p == label for p in pred)
        hits = sum(t == p == label for t, p in zip(truth, pred, strict=True))
        precision = hits / predicted if predicted else None
        recall = hits / support if support else None
        note = "" if label in trained else " (no training data)"
        rows.append(f"| {label}{note} | {_fmt(precision)} | {_fmt(recall)} | {support} |")
    correct = sum(t == p for t, p in zip(truth, pred, strict=True))
    rows.append(f"| **all** | | **{correct / max(1, len(truth)):.3f}** (accuracy) | {len(truth)} |")
    return rows


def per_language_table(examples, pred: list[str]) -> list[str]:
    rows = [
        "| language | accuracy | documents | per category (correct/support) |",
        "| --- | ---: | ---: | --- |",
    ]
    langs = Counter(e.lang for e in examples)
    for lang in sorted(langs, key=lambda x: (x not in ("en", "zh"), x)):
        pairs = [(e.label, p) for e, p in zip(examples, pred, strict=True) if e.lang == lang]
        correct = sum(t == p for t, p in pairs)
        cats = Counter(t for t, _ in pairs)
        detail = ", ".join(
            f"{c} {sum(t == p == c for t, p in pairs)}/{n}"
            for c, n in sorted(cats.items(), key=lambda x: -x[1])
        )
        rows.append(f"| {lang} | {correct / len(pairs):.3f} | {len(pairs)} | {detail} |")
    return rows


def confusion_rows(truth: list[str], pred: list[str], top: int = 12) -> list[str]:
    errors = Counter((t, p) for t, p in zip(truth, pred, strict=True) if t != p)
    rows = ["| true | predicted | documents |", "| --- | --- | ---: |"]
    rows += [f"| {t} | {p} | {n} |" for (t, p), n in errors.most_common(top)]
    if not errors:
        rows.append("| – | – | 0 |")
    return rows


def eval_only_rows(examples, pred: list[str]) -> list[str]:
    rows = [
        "| source | expected | accuracy | documents | predicted as |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    groups = sorted({(e.source, e.label, e.lang) for e in examples})
    for source, label, lang in groups:
        got = [
            p
            for e, p in zip(examples, pred, strict=True)
            if (e.source, e.label, e.lang) == (source, label, lang)
        ]
        mix = ", ".join(f"{c} {n}" for c, n in Counter(got).most_common())
        acc = sum(p == label for p in got) / len(got)
        rows.append(f"| {source} ({lang}) | {label} | {acc:.3f} | {len(got)} | {mix} |")
    return rows


def speed(model, texts: list[str], repeats: int) -> tuple[float, float]:
    """Documents per second (features + predict, one document at a time, one thread) and mean chars."""
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for text in texts:
            model.predict(classifier_features(text), k=1)
        best = max(best, len(texts) / (time.perf_counter() - start))
    return best, sum(len(t) for t in texts) / len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", type=Path, default=packaged_model_path("category.ftz"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model = load_model(str(args.model))
    trained = {label.removeprefix(LABEL_PREFIX) for label in model.get_labels()}
    _, held = split(labelled_examples(args.data))
    truth = [e.label for e in held]
    pred = predict(model, [e.text for e in held])
    card = read_card(args.model)

    size = args.model.stat().st_size
    print(f"# Category classifier: {args.model.name} ({size / 1e6:.2f} MB)\n")
    print(
        f"Held-out share of the training sources (split as in scripts/train_category_model.py), data {args.data}."
    )
    if card.get("held_out", {}).get("accuracy") is not None:
        print(f"Card's held-out accuracy: {card['held_out']['accuracy']:.4f} (this run reproduces it).")
    untrained = [c for c in CATEGORIES if c not in trained]
    if untrained:
        print(f"Categories with no training data (never predicted): {', '.join(untrained)}.")
    print("\n## Per category\n")
    print("\n".join(per_category_table(truth, pred, trained)))
    print("\n## Per language\n")
    print("\n".join(per_language_table(held, pred)))
    print("\n## Most frequent confusions (held out)\n")
    print("\n".join(confusion_rows(truth, pred)))

    extra = eval_only_examples(args.data)
    if extra:
        extra_pred = predict(model, [e.text for e in extra])
        print("\n## Evaluation-only text (not shippable, never trained on)\n")
        print("\n".join(eval_only_rows(extra, extra_pred)))

    texts = [e.text for e in held]
    docs_per_s, mean_chars = speed(model, texts, args.repeats)
    print("\n## Speed (one core, one document per call, features + predict)\n")
    print("| documents | mean chars | documents/s | MB/s of text |")
    print("| ---: | ---: | ---: | ---: |")
    print(f"| {len(texts)} | {mean_chars:,.0f} | {docs_per_s:,.0f} | {docs_per_s * mean_chars / 1e6:.2f} |")


if __name__ == "__main__":
    main()
