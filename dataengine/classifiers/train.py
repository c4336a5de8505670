"""Training and held-out evaluation of a fastText document classifier.

One recipe for every classifier the project ships or a user trains (`dataengine quality train`,
`dataengine category train`, scripts/train_*_model.py): examples are (label, text) pairs, a stable
hash of the text holds out a share of them, the model is trained on the rest (quantized to a few MB
by default) and judged on the held-out share: per-label precision and recall, and for two labels the
ROC-AUC of the positive label's probability.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from dataengine.classifiers.features import classifier_features
from dataengine.classifiers.model import LABEL_PREFIX, card_path, label_probabilities


@dataclass(frozen=True)
class TrainSettings:
    """fastText supervised settings; the defaults suit a few thousand documents on one core."""

    dim: int = 32
    epoch: int = 20
    word_ngrams: int = 2
    min_count: int = 2
    bucket: int = 200_000
    lr: float = 0.3
    quantize: bool = True
    cutoff: int = 100_000  # features kept by quantization
    seed: int = 0
    threads: int = 1


def is_held_out(text: str, fraction: float) -> bool:
    """Stable across runs and machines: a hash of the text's opening, not a random draw."""
    digest = hashlib.blake2b(text[:2000].encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < fraction


def split_held_out(
    examples: list[tuple[str, str]], fraction: float
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    train, held = [], []
    for label, text in examples:
        (held if is_held_out(text, fraction) else train).append((label, text))
    return train, held


def train_classifier(examples: list[tuple[str, str]], out: Path, settings: TrainSettings | None = None):
    """Train on (label, text) pairs and save the model at `out`; returns the fastText model.

    fastText trains in a fresh process: in a process that had already loaded and run fastText models
    (a test session, a notebook that scored documents first) its training raised "Encountered NaN"
    on data that trains cleanly on its own."""
    import fasttext

    settings = settings or TrainSettings()
    labels = Counter(label for label, _ in examples)
    if len(labels) < 2:
        raise ValueError(f"need at least two labels to train a classifier, got {dict(labels)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as fh:
        for label, text in examples:
            fh.write(f"{LABEL_PREFIX}{label} {classifier_features(text)}\n")
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            pool.submit(_train_file, fh.name, str(out), settings).result()
    finally:
        Path(fh.name).unlink(missing_ok=True)
    return fasttext.load_model(str(out))


def _train_file(path: str, out: str, settings: TrainSettings) -> None:
    import fasttext

    model = fasttext.train_supervised(
        path,
        dim=settings.dim,
        epoch=settings.epoch,
        wordNgrams=settings.word_ngrams,
        minCount=settings.min_count,
        bucket=settings.bucket,
        lr=settings.lr,
        seed=settings.seed,
        thread=settings.threads,
        verbose=0,
    )
    if settings.quantize:
        model.quantize(input=path, retrain=True, cutoff=settings.cutoff, qnorm=True)
    model.save_model(out)


def evaluate(model, held_out: list[tuple[str, str]], positive: str | None = None) -> dict:
    """Accuracy, per-label precision/recall/support on held-out pairs; ROC-AUC of `positive`'s
    probability when given."""
    from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

    labels, probs = label_probabilities(model, [text for _, text in held_out])
    truth = [label for label, _ in held_out]
    predicted = [labels[i] for i in probs.argmax(axis=1)] if held_out else []
    names = sorted(set(truth) | set(labels))
    precision, recall, _, support = precision_recall_fscore_support(
        truth, predicted, labels=names, zero_division=np.nan
    )
    per_label = {
        name: {"precision": _round(p), "recall": _round(r), "support": int(n)}
        for name, p, r, n in zip(names, precision, recall, support, strict=True)
    }
    result = {
        "held_out": len(held_out),
        "accuracy": round(sum(t == p for t, p in zip(truth, predicted, strict=True)) / max(1, len(truth)), 4),
        "labels": per_label,
    }
    is_positive = [t == positive for t in truth]
    if positive in labels and 0 < sum(is_positive) < len(truth):
        result["roc_auc"] = round(float(roc_auc_score(is_positive, probs[:, labels.index(positive)])), 4)
    return result


def _round(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 4)


def write_model_card(out: Path, card: dict) -> Path:
    """Write the model's card (`model.card_path`): what it was trained on, settings, held-out figures."""
    path = card_path(out)
    path.write_text(
        json.dumps(card, indent=2, ensure_ascii=False, default=_jsonable) + "\n", encoding="utf-8"
    )
    return path


def _jsonable(value):
    if isinstance(value, TrainSettings):
        return asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def token_weighted_edges(scores: np.ndarray, tokens: np.ndarray, n_bins: int = 20) -> list[float]:
    """The n_bins - 1 inner edges of equal-token bins of `scores`: the score below which 5%, 10%, ... of
    the tokens lie (Nemotron-CC's percentile buckets, weighted by document length)."""
    order = np.argsort(scores, kind="stable")
    sorted_scores = np.asarray(scores, dtype=np.float64)[order]
    cumulative = np.cumsum(np.asarray(tokens, dtype=np.float64)[order])
    cumulative /= cumulative[-1]
    quantiles = np.arange(1, n_bins) / n_bins
    positions = np.minimum(np.searchsorted(cumulative, quantiles), len(sorted_scores) - 1)
    return [round(float(sorted_scores[i]), 6) for i in positions]
