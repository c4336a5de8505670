"""`dataengine quality train` and `dataengine category train`: a classifier from a user's data.

`backend: fasttext` (default; fast on CPU actors) or `backend: encoder` (a sentence-transformers encoder
with a logistic head, `classifiers/encoder.py`; the packaged MiniLM by default, any local
sentence-transformers or Hugging Face encoder path through `encoder`).

Both read documents with `dataengine run`'s readers (JSONL, Parquet, text, WARC; phase-1 output
included), hold out a share by text hash, train, print the held-out precision and recall, and write
the model with its card (`<model>.json`: sources, settings, held-out figures; for quality also the
score's token-weighted percentile edges that `quality_bin` and `keep_top` read).

quality: DCLM's recipe (`positive` = reference-quality text, `negative` = random crawl), or a score a
user already has (`from_column`, e.g. an LLM grader's): documents at or above `positive_above`
(default: the column's median) are `hq`, the rest `crawl`.
category: labels from where documents come from (`labels: {news: [files], forum: [files]}`) or from a
column (`label_column`).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dataengine.classifiers.encoder import DEFAULT_ENCODER, train_head
from dataengine.classifiers.features import document_tokens
from dataengine.classifiers.model import label_probabilities
from dataengine.classifiers.train import (
    TrainSettings,
    evaluate,
    split_held_out,
    token_weighted_edges,
    train_classifier,
    write_model_card,
)
from dataengine.cli_support import OutputKey
from dataengine.io.config import InputConfig
from dataengine.io.paths import expand_inputs, is_uri
from dataengine.io.readers import read_unit
from dataengine.io.units import plan_units
from dataengine.stages.quality import POSITIVE

NEGATIVE = "crawl"


class TrainingKeys(BaseModel):
    """What every classifier training command shares."""

    model_config = ConfigDict(extra="forbid")

    heldout_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share held out (by text hash)")
    max_docs_per_label: int | None = Field(
        20_000, gt=0, description="at most this many documents of one label (the first ones read)"
    )
    input: InputConfig = Field(default_factory=InputConfig, description="reader settings, as in `run`")
    backend: Literal["fasttext", "encoder"] = Field(
        "fasttext", description="fasttext, or encoder: a sentence-transformers encoder with a logistic head"
    )
    encoder: str = Field(
        DEFAULT_ENCODER, description="backend encoder: a packaged model name or a local model path"
    )
    encoder_max_chars: int = Field(2000, ge=16, description="backend encoder: characters of each text read")
    dim: int = Field(32, gt=0)
    epoch: int = Field(20, gt=0)
    word_ngrams: int = Field(2, ge=1, description="word (CJK: character) n-grams")
    lr: float = Field(0.3, gt=0.0)
    quantize: bool = Field(True, description="a few MB instead of hundreds")

    def settings(self) -> TrainSettings:
        return TrainSettings(
            dim=self.dim, epoch=self.epoch, word_ngrams=self.word_ngrams, lr=self.lr, quantize=self.quantize
        )


class QualityTrainCommand(TrainingKeys, OutputKey):
    """`dataengine quality train`: output = the model file (.ftz), its card beside it."""

    positive: list[str] = Field(default_factory=list, description="reference-quality documents (label hq)")
    negative: list[str] = Field(default_factory=list, description="random crawl documents (label crawl)")
    inputs: list[str] = Field(default_factory=list, description="documents scored in from_column")
    from_column: str | None = Field(None, description="distil this numeric column (e.g. an LLM grade)")
    positive_above: float | None = Field(None, description="from_column at or above = hq; null = median")
    lang: str | None = Field(None, description="the language the model is for (recorded in its card)")

    @model_validator(mode="after")
    def _one_recipe(self) -> QualityTrainCommand:
        if self.from_column is None and not (self.positive and self.negative):
            raise ValueError("give positive and negative documents, or inputs and from_column")
        if self.from_column is not None and (self.positive or self.negative or not self.inputs):
            raise ValueError("from_column reads `inputs` only (positive/negative are the other recipe)")
        return self


class CategoryTrainCommand(TrainingKeys, OutputKey):
    """`dataengine category train`: output = the model file (.ftz), its card beside it."""

    labels: dict[str, list[str]] = Field(default_factory=dict, description="label -> its documents")
    inputs: list[str] = Field(default_factory=list, description="documents labelled in label_column")
    label_column: str = Field("category", description="the label of each of `inputs`")

    @model_validator(mode="after")
    def _one_recipe(self) -> CategoryTrainCommand:
        if bool(self.labels) == bool(self.inputs):
            raise ValueError("give labels (label -> documents) or inputs with a label_column, not both")
        return self


def read_documents(inputs: list[str], config: InputConfig, column: str | None = None) -> Iterator[dict]:
    """Documents of `inputs` as `run` reads them (rejected records skipped), with `column` carried."""
    if column is not None:
        config = config.model_copy(update={"carry_fields": (*config.carry_fields, column)})
    for unit in plan_units(expand_inputs(inputs), config):
        for row in read_unit(unit, config):
            if not row.get("reject") and row.get("text"):
                yield row


def _capped(rows: Iterator[dict], cap: int | None) -> list[dict]:
    out = []
    for row in rows:
        if cap is not None and len(out) >= cap:
            break
        out.append(row)
    return out


def _examples_from_column(cfg: QualityTrainCommand) -> tuple[list[tuple[str, str]], dict]:
    column = cfg.from_column
    rows = list(read_documents(cfg.inputs, cfg.input, column))
    scored = []
    for row in rows:
        try:
            scored.append((float(row[column]), row["text"]))
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"{row.get('source')}: `{column}` is not a number ({row.get(column)!r})"
            ) from None
    if not scored:
        raise ValueError(f"no documents with text in {cfg.inputs}")
    cut = cfg.positive_above if cfg.positive_above is not None else statistics.median(s for s, _ in scored)
    examples = [(POSITIVE if s >= cut else NEGATIVE, text) for s, text in scored]
    return examples, {"from_column": column, "positive_above": cut, "inputs": cfg.inputs}


def _labelled(groups: dict[str, list[str]], cfg: TrainingKeys) -> list[tuple[str, str]]:
    examples = []
    for label, inputs in groups.items():
        rows = _capped(read_documents(inputs, cfg.input), cfg.max_docs_per_label)
        if not rows:
            raise ValueError(f"no documents for label {label!r} in {inputs}")
        examples += [(label, row["text"]) for row in rows]
    return examples


def train_quality(cfg: QualityTrainCommand) -> dict:
    """Train, evaluate and write a quality model; returns its card."""
    _local_output(cfg.output)
    if cfg.from_column is not None:
        examples, recipe = _examples_from_column(cfg)
    else:
        examples = _labelled({POSITIVE: cfg.positive, NEGATIVE: cfg.negative}, cfg)
        recipe = {"positive": cfg.positive, "negative": cfg.negative}
    card = _train(examples, cfg, positive=POSITIVE)
    model = card.pop("_model")
    reference = [text for label, text in examples if label == NEGATIVE] or [text for _, text in examples]
    labels, probs = label_probabilities(model, reference)
    scores = probs[:, labels.index(POSITIVE)]
    card.update(
        recipe=recipe,
        lang=cfg.lang,
        positive=POSITIVE,
        bin_edges=token_weighted_edges(scores, np.array([document_tokens(t) for t in reference])),
        bin_reference=f"the {len(reference)} {NEGATIVE} documents (train and held out), token-weighted",
    )
    write_model_card(_local_output(cfg.output), card)
    return card


def train_category(cfg: CategoryTrainCommand) -> dict:
    """Train, evaluate and write a category model; returns its card."""
    _local_output(cfg.output)
    if cfg.labels:
        examples = _labelled(cfg.labels, cfg)
        recipe: dict = {"labels": cfg.labels}
    else:
        rows = read_documents(cfg.inputs, cfg.input, cfg.label_column)
        counts: Counter = Counter()
        examples = []
        for row in rows:
            label = row.get(cfg.label_column)
            if label is None or label == "":
                continue
            label = str(label)
            if cfg.max_docs_per_label is None or counts[label] < cfg.max_docs_per_label:
                counts[label] += 1
                examples.append((label, row["text"]))
        recipe = {"inputs": cfg.inputs, "label_column": cfg.label_column}
    card = _train(examples, cfg, positive=None)
    card.pop("_model")
    card["recipe"] = recipe
    write_model_card(_local_output(cfg.output), card)
    return card


def _local_output(output: str) -> Path:
    """The model file to write: local only, since fastText and the encoder head write (and the runner
    memory-maps) the file themselves. Refused before any reading, rather than writing a folder "s3:"."""
    if is_uri(output):
        raise ValueError(
            f"output {output!r}: the model must be written to a local path (fastText writes its file "
            "itself); copy it to object storage afterwards"
        )
    return Path(output)


def _train(examples: list[tuple[str, str]], cfg: TrainingKeys, positive: str | None) -> dict:
    train, held = split_held_out(examples, cfg.heldout_fraction)
    if not train or not held:
        raise ValueError(f"too few documents to hold out {cfg.heldout_fraction:.0%}: {len(examples)}")
    if cfg.backend == "encoder":
        model = train_head(train, _local_output(cfg.output), cfg.encoder, cfg.encoder_max_chars)
        settings: TrainSettings | dict = {
            "backend": "encoder",
            "encoder": cfg.encoder,
            "max_chars": cfg.encoder_max_chars,
        }
    else:
        settings = cfg.settings()
        model = train_classifier(train, _local_output(cfg.output), settings)
    return {
        "_model": model,
        "labels": sorted({label for label, _ in examples}),
        "documents": dict(Counter(label for label, _ in train)),
        "settings": settings,
        "held_out_fraction": cfg.heldout_fraction,
        "held_out": evaluate(model, held, positive=positive),
    }
