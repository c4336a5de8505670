"""Quality: a model's score per document, its percentile bin, and an optional keep decision.

The score is P(hq) of a fastText classifier trained, as in DCLM, on reference-quality text against
random crawl (scripts/train_quality_models.py; `dataengine quality train` for a user's own labels or
a distilled score). One model per language; a language without one is not scored. A prose scorer
rates code, Markdown and LaTeX low for being what they are, so those are never scored by it: code
skips the stage, the categories in `exempt_categories` and Markup-heavy text are left unscored.

`quality_bin` (0-19) is the score's 5-percentile bucket among the model's reference crawl, token
weighted (Nemotron-CC's buckets; the edges are in the model's card). Decisions: `threshold` (keep
P(hq) at or above it) or `keep_top` (keep the best share, read off the same edges), per category
through `by_category`. By default nothing is rejected: the score ranks dedup survivors and awaits a
user's decision.
"""

from __future__ import annotations

import bisect

import numpy as np
import regex
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dataengine.classifiers.model import label_probabilities, model_labels, packaged_model_path, read_card
from dataengine.stages.base import BatchStage
from dataengine.stages.document import Document
from dataengine.stages.fasttext_models import load_model, require_model_file

POSITIVE = "hq"
BIN_QUANTILES = np.linspace(0.05, 0.95, 19)
_LATEX_COMMAND = regex.compile(
    r"\\(?:begin|end|section|subsection|cite|ref|label|frac|mathbf|mathrm|emph|textbf|item|usepackage)\b"
)
_MARKDOWN_LINE = regex.compile(r"^(?:```|#{1,6}\s|\s*\|.*\|\s*$)", regex.MULTILINE)
MIN_MARKUP_LINES = 3


def is_markup(text: str) -> bool:
    """LaTeX source or Markdown: a few LaTeX commands, or fences, headings and table rows."""
    return (
        len(_LATEX_COMMAND.findall(text, endpos=20_000)) >= MIN_MARKUP_LINES
        or len(_MARKDOWN_LINE.findall(text, endpos=20_000)) >= MIN_MARKUP_LINES
    )


class QualityRule(BaseModel):
    """Keep P(hq) >= threshold, or the best `keep_top` share (by the model's reference percentiles)."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(None, ge=0.0, le=1.0)
    keep_top: float | None = Field(None, gt=0.0, le=1.0, description="resolution: 5-percentile bins")

    @model_validator(mode="after")
    def _one_rule(self) -> QualityRule:
        if self.threshold is not None and self.keep_top is not None:
            raise ValueError("set threshold or keep_top, not both")
        return self


def _default_models() -> dict[str, str | None]:
    return {lang: None for lang in ("en", "zh") if packaged_model_path(f"quality_{lang}.ftz").is_file()}


class QualityConfig(QualityRule):
    models: dict[str, str | None] = Field(
        default_factory=_default_models,
        description="language -> fastText quality model (null: the packaged quality_<lang>.ftz); "
        "other languages are not scored",
    )
    by_category: dict[str, QualityRule] = Field(
        default_factory=dict, description="category -> its own threshold or keep_top"
    )
    exempt_categories: list[str] = Field(
        default_factory=lambda: ["code", "technical", "math"],
        description="categories a prose scorer must not judge (left unscored)",
    )
    exempt_markup: bool = Field(True, description="leave LaTeX and Markdown source unscored")


class _LanguageModel:
    """One language's model path and the score edges of its 20 bins."""

    def __init__(self, lang: str, path: str | None):
        self.path = path or str(packaged_model_path(f"quality_{lang}.ftz"))
        require_model_file(self.path, f"stages.quality.models.{lang}")
        labels = model_labels(load_model(self.path))
        if POSITIVE not in labels:
            raise ValueError(f"{self.path}: a quality model needs the label {POSITIVE!r}, it has {labels}")
        edges = read_card(self.path).get("bin_edges")
        if edges is not None and (len(edges) != 19 or sorted(edges) != edges):
            raise ValueError(f"{self.path}.json: bin_edges must be 19 ascending numbers")
        self.edges: list[float] | None = edges

    def threshold_for(self, rule: QualityRule) -> float | None:
        if rule.threshold is not None:
            return rule.threshold
        if rule.keep_top is None:
            return None
        if self.edges is None:
            raise ValueError(f"keep_top needs the bin_edges of {self.path}.json (its model card)")
        return float(np.interp(1.0 - rule.keep_top, BIN_QUANTILES, self.edges))


class QualityScorer(BatchStage):
    """Writes `quality` and `quality_bin`; signals: scored (0 when exempt or no model for the language).
    Rules: below_threshold, below_keep_top."""

    name = "quality"
    config_class = QualityConfig
    prose_only = True

    def __init__(self, cfg: QualityConfig | None = None):
        super().__init__()
        self.cfg = cfg or QualityConfig()
        self.models = {lang: _LanguageModel(lang, path) for lang, path in self.cfg.models.items()}
        # each language's threshold per category ("" = the default rule), resolved once at set-up (a
        # keep_top without bin edges fails here, not on the first document)
        self.thresholds = {
            lang: {
                category: model.threshold_for(rule)
                for category, rule in {"": self.cfg, **self.cfg.by_category}.items()
            }
            for lang, model in self.models.items()
        }

    def _scored(self, doc: Document) -> bool:
        if doc.lang not in self.models or doc.category in self.cfg.exempt_categories:
            return False
        return not (self.cfg.exempt_markup and is_markup(doc.text))

    def process_batch(self, docs: list[Document]) -> list[str | None]:
        rules: list[str | None] = [None] * len(docs)
        by_lang: dict[str, list[int]] = {}
        for i, doc in enumerate(docs):
            scored = self._scored(doc)
            self.signal(doc, "scored", int(scored))
            if scored:
                by_lang.setdefault(doc.lang, []).append(i)
        for lang, indices in by_lang.items():
            model = self.models[lang]
            labels, probs = label_probabilities(load_model(model.path), [docs[i].text for i in indices])
            scores = probs[:, labels.index(POSITIVE)]
            for i, score in zip(indices, scores, strict=True):
                rules[i] = self._decide(docs[i], model, float(score))
        return rules

    def _decide(self, doc: Document, model: _LanguageModel, score: float) -> str | None:
        doc.quality = score
        doc.quality_bin = bisect.bisect_right(model.edges, score) if model.edges else None
        category = doc.category if doc.category in self.cfg.by_category else ""
        rule = self.cfg.by_category.get(category, self.cfg)
        threshold = self.thresholds[doc.lang][category]
        if threshold is None or score >= threshold:
            return None
        return "below_threshold" if rule.threshold is not None else "below_keep_top"
