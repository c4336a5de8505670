"""`stages.quality.keep_top` → thresholds: keep the best token-weighted share of what the decision sees.

Nemotron-CC ranks a crawl by its classifiers' scores and cuts at percentiles of the crawl itself; a
fixed score means different shares in different corpora. Here the share is of the documents that
reach the quality decision, i.e. that every other rule keeps, per language (each has its own model)
and per category with its own rule, weighted by tokens (whitespace words + CJK characters, as
run.json counts them): `keep_top: 0.3` keeps the best-scored documents up to 30% of those tokens.

`dataengine run` resolves it on a sample of its inputs (`keep_top_sample` documents, spread over the
work units) before the workers start, and records the thresholds in run.json's config;
`dataengine decide` resolves it on every stored row; `dataengine.process` on the documents given.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from dataengine.classifiers.features import document_tokens
from dataengine.config import PipelineConfig
from dataengine.stages.quality import QualityConfig


def open_quality(cfg: PipelineConfig) -> PipelineConfig:
    """The config with every quality keep_top lifted (threshold rules stay): what reaches the decision."""
    quality: QualityConfig = cfg.stages.quality
    by_category = {c: r.model_copy(update={"keep_top": None}) for c, r in quality.by_category.items()}
    opened = quality.model_copy(
        update={"keep_top": None, "by_category": by_category, "keep_top_thresholds": None}
    )
    return cfg.model_copy(update={"stages": cfg.stages.model_copy(update={"quality": opened})})


def top_share_threshold(scores: np.ndarray, tokens: np.ndarray, share: float) -> float | None:
    """The lowest score that keeps the best-scored documents up to `share` of the tokens (at least one)."""
    if not len(scores):
        return None
    order = np.argsort(-scores, kind="stable")
    covered = np.cumsum(tokens[order])
    last = int(np.searchsorted(covered, share * covered[-1], side="left"))
    return float(scores[order[min(last, len(order) - 1)]])


def resolve_keep_top(
    cfg: PipelineConfig, batches: Iterable[list[dict]], replay: bool = False
) -> PipelineConfig:
    """`cfg` with `stages.quality.keep_top_thresholds` set from `batches` (input rows, or with `replay`
    a run's stored rows); `cfg` itself when no keep_top is set."""
    from dataengine.processor import DocumentProcessor

    quality = cfg.stages.quality
    if quality is None or not quality.uses_keep_top():
        return cfg
    opened = open_quality(cfg)
    # no MinHash signatures for rows only measured here
    rules = quality.rules()
    processor = DocumentProcessor(
        opened.model_copy(update={"write": opened.write.model_copy(update={"minhash": False})})
    )
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    weights: dict[tuple[str, str], list[int]] = defaultdict(list)
    for batch in batches:
        kept, _ = (processor.replay if replay else processor.process)(batch)
        for row in kept:
            if row.get("quality") is None:
                continue
            category = quality.rule_key(row.get("category"))
            if rules[category].keep_top is None:
                continue
            scores[row["lang"], category].append(row["quality"])
            weights[row["lang"], category].append(document_tokens(row["text"]))
    resolved = {
        lang: {
            category: top_share_threshold(
                np.asarray(scores[lang, category], dtype=np.float64),
                np.asarray(weights[lang, category], dtype=np.float64),
                rule.keep_top,
            )
            for category, rule in rules.items()
            if rule.keep_top is not None
        }
        for lang in quality.models
    }
    stages = cfg.stages.model_copy(
        update={"quality": quality.model_copy(update={"keep_top_thresholds": resolved})}
    )
    return cfg.model_copy(update={"stages": stages})
