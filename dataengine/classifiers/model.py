"""A trained classifier as the stages use it: where the packaged ones live, their cards, and the
probability of each label for a batch of texts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dataengine.classifiers.features import classifier_features

if TYPE_CHECKING:
    from dataengine.stages.document import Document

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
    if hasattr(model, "probabilities"):
        return model_labels(model), model.probabilities(texts)
    return _fasttext_probabilities(model, [classifier_features(t) for t in texts])


def document_probabilities(model, docs: Sequence[Document]) -> tuple[list[str], np.ndarray]:
    """`label_probabilities` of documents' texts, reading each document's cached features (the
    category and quality stages share them)."""
    if hasattr(model, "probabilities"):
        return model_labels(model), model.probabilities([doc.text for doc in docs])
    return _fasttext_probabilities(model, [doc.classifier_features for doc in docs])


def _fasttext_probabilities(model, features: list[str]) -> tuple[list[str], np.ndarray]:
    labels = model_labels(model)
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(features), len(labels)), dtype=np.float64)
    if features:
        predicted, probs = model.predict(features, k=len(labels))
        for row, (names, values) in enumerate(zip(predicted, probs, strict=True)):
            for name, value in zip(names, values, strict=True):
                out[row, index[name.removeprefix(LABEL_PREFIX)]] = min(1.0, float(value))
    return labels, out


def label_probability(model, texts: list[str], label: str) -> np.ndarray:
    """P(label) of each text (e.g. P(hq), a quality score)."""
    labels, probs = label_probabilities(model, texts)
    return probs[:, labels.index(label)]
