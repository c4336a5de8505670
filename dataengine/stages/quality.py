"""Quality: a model's score per document, its percentile bin, and an optional keep decision.

The score is P(hq) of a fastText classifier trained, as in DCLM, on reference-quality text against
random crawl (scripts/train_quality_models.py; `dataengine quality train` for a user's own labels or
a distilled score). One model per language; a language without one is not scored. A prose scorer
rates code, Markdown and LaTeX low for being what they are, so those are never scored by it: code
skips the stage, the categories in `exempt_categories` and Markup-heavy text are left unscored.

`quality_bin` (0-19) is the score's 5-percentile bucket among the model's reference crawl, token
weighted (Nemotron-CC's buckets; the edges are in the model's card). Decisions: `threshold` (keep
P(hq) at or above it) or `keep_top` (keep the best token-weighted share of each language's documents
that reach this decision, and per category through `by_category`). A keep_top becomes a threshold
per language and category before the stage is built, from a sample of the run's own documents
(`dataengine.keep_top`; `dataengine decide` uses all of the stored run); the thresholds are recorded
in `keep_top_thresholds`. By default nothing is rejected: the score ranks dedup survivors and awaits
a user's decision.
"""

from __future__ import annotations

import bisect

import regex
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dataengine.classifiers.model import document_probabilities, model_labels, packaged_model_path, read_card
from dataengine.stages.base import BatchStage, Facts
from dataengine.stages.document import Document
from dataengine.stages.fasttext_models import load_model, require_model_file

POSITIVE = "hq"
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


DEFAULT_RULE = "*"  # the key of the rule for categories without their own (as in keep_top_thresholds)


class QualityRule(BaseModel):
    """Keep P(hq) >= threshold, or the best `keep_top` share (by the model's reference percentiles)."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(None, ge=0.0, le=1.0)
    keep_top: float | None = Field(
        None, gt=0.0, le=1.0, description="token-weighted share to keep, set from a sample of the run"
    )

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
    keep_top_sample: int = Field(
        5_000, ge=100, description="documents read (spread over the inputs) to turn keep_top into thresholds"
    )
    keep_top_thresholds: dict[str, dict[str, float | None]] | None = Field(
        None,
        description="written by the run: {lang: {category, or '*' for the default rule: threshold}} that "
        "keep_top resolved to (null: no sampled document of that kind, nothing rejected)",
    )

    def model_path(self, lang: str) -> str:
        """The language's model file: `models[lang]`, else the packaged `quality_<lang>.ftz`."""
        return self.models.get(lang) or str(packaged_model_path(f"quality_{lang}.ftz"))

    def rules(self) -> dict[str, QualityRule]:
        """The rule of each category key (`rule_key`)."""
        return {DEFAULT_RULE: self, **self.by_category}

    def rule_key(self, category: str | None) -> str:
        """The category's own rule, else DEFAULT_RULE."""
        return category if category in self.by_category else DEFAULT_RULE

    def uses_keep_top(self) -> bool:
        return any(rule.keep_top is not None for rule in self.rules().values())


class _LanguageModel:
    """One language's model path and the score edges of its 20 bins."""

    def __init__(self, lang: str, path: str):
        self.path = path
        require_model_file(self.path, f"stages.quality.models.{lang}")
        labels = model_labels(load_model(self.path))
        if POSITIVE not in labels:
            raise ValueError(f"{self.path}: a quality model needs the label {POSITIVE!r}, it has {labels}")
        edges = read_card(self.path).get("bin_edges")
        if edges is not None and (len(edges) != 19 or sorted(edges) != edges):
            raise ValueError(f"{self.path}.json: bin_edges must be 19 ascending numbers")
        self.edges: list[float] | None = edges


def _thresholds(cfg: QualityConfig, lang: str) -> dict[str, float | None]:
    """One language's threshold per category (DEFAULT_RULE for the others); a keep_top must have been
    resolved (`dataengine.keep_top`), so that a run fails at set-up, not on its first document."""
    out: dict[str, float | None] = {}
    for category, rule in cfg.rules().items():
        if rule.keep_top is None:
            out[category] = rule.threshold
        elif cfg.keep_top_thresholds is None:
            raise ValueError(
                "stages.quality keep_top is turned into thresholds from a sample of the run's documents "
                "(dataengine run, dataengine decide and dataengine.process do it, see dataengine.keep_top); "
                "set a threshold to build the stage on its own"
            )
        else:
            out[category] = cfg.keep_top_thresholds.get(lang, {}).get(category)
    return out


class QualityScorer(BatchStage):
    """Writes `quality` and `quality_bin`; signals: scored (0 when exempt or no model for the language).
    Rules: below_threshold, below_keep_top."""

    name = "quality"
    config_class = QualityConfig
    prose_only = True
    decision_keys = frozenset(
        {"threshold", "keep_top", "by_category", "keep_top_sample", "keep_top_thresholds"}
    )

    def __init__(self, cfg: QualityConfig | None = None):
        super().__init__()
        self.cfg = cfg or QualityConfig()
        self.models = {lang: _LanguageModel(lang, self.cfg.model_path(lang)) for lang in self.cfg.models}
        self.rules = self.cfg.rules()
        self.thresholds = {lang: _thresholds(self.cfg, lang) for lang in self.models}

    def _scored(self, doc: Document) -> bool:
        if doc.lang not in self.models or doc.category in self.cfg.exempt_categories:
            return False
        return not (self.cfg.exempt_markup and is_markup(doc.text))

    def process_batch(self, docs: list[Document]) -> list[str | None]:
        by_lang: dict[str, list[int]] = {}
        for i, doc in enumerate(docs):
            scored = self._scored(doc)
            self.signal(doc, "scored", int(scored))
            if scored:
                by_lang.setdefault(doc.lang, []).append(i)
        for lang, indices in by_lang.items():
            model = self.models[lang]
            labels, probs = document_probabilities(load_model(model.path), [docs[i] for i in indices])
            scores = probs[:, labels.index(POSITIVE)]
            for i, score in zip(indices, scores, strict=True):
                docs[i].quality = float(score)
                docs[i].quality_bin = bisect.bisect_right(model.edges, score) if model.edges else None
        return [self.decide(Facts(doc)) for doc in docs]

    def decide(self, facts: Facts) -> str | None:
        if facts.quality is None or facts.lang not in self.thresholds:  # unscored: exempt or no model
            return None
        key = self.cfg.rule_key(facts.category)
        threshold = self.thresholds[facts.lang][key]
        if threshold is None or facts.quality >= threshold:
            return None
        return "below_threshold" if self.rules[key].threshold is not None else "below_keep_top"
