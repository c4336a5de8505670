"""A trained classifier as the stages use it: where the packaged ones live, their cards, and the
probability of each label for a batch of texts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dataengine.classifiers.features import classifier_features

LABEL_PREFIX = "__label__"
MODEL_DIR = Path(__file__).resolve().parents[1] / "resources" / "models"


def packaged_model_path(name: str) -> Path:
    """A model shipped in the package (`dataengine/resources/models/<name>`)."""
    return MODEL_DIR / name


def card_path(model_path: str | Path) -> Path:
    """`<model>.json` beside the model: what it was trained on, its settings and held-out figures."""
    return Path(str(model_path) + ".json")


def read_card(model_path: str | Path) -> dict:
    """The model's card, or {} when it has none (a user's model trained elsewhere)."""
    path = card_path(model_path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def model_labels(model) -> list[str]:
    """The fastText model's labels without their `__label__` prefix."""
    return [label.removeprefix(LABEL_PREFIX) for label in model.get_labels()]


def label_probabilities(model, texts: list[str]) -> tuple[list[str], np.ndarray]:
    """The model's labels and a [len(texts), len(labels)] matrix of their probabilities (a fastText
    model, or an encoder head that computes them itself: `classifiers/encoder.py`)."""
    labels = model_labels(model)
    if hasattr(model, "probabilities"):
        return labels, model.probabilities(texts)
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(texts), len(labels)), dtype=np.float64)
    if texts:
        predicted, probs = model.predict([classifier_features(t) for t in texts], k=len(labels))
        for row, (names, values) in enumerate(zip(predicted, probs, strict=True)):
            for name, value in zip(names, values, strict=True):
                out[row, index[name.removeprefix(LABEL_PREFIX)]] = min(1.0, float(value))
    return labels, out


def label_probability(model, texts: list[str], label: str) -> np.ndarray:
    """P(label) of each text (e.g. P(hq), a quality score)."""
    labels, probs = label_probabilities(model, texts)
    return probs[:, labels.index(label)]
