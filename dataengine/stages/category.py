"""Category: one coarse kind of text per document, from a fastText classifier.

The taxonomy is a contract (docs/design.md): `encyclopedia, news, academic, books, forum, technical,
code, math, web`. A document the code stage labelled code is `code` without asking the model. The
category feeds per-category decisions (`stages.quality.by_category`), `pack`'s channels, the trainer's
per-channel loss and the report's category mix. The packaged model is trained by
scripts/train_category_model.py; `dataengine category train` trains one on a user's labels.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dataengine.classifiers.model import document_probabilities, model_labels, packaged_model_path
from dataengine.stages.base import BatchStage, Facts
from dataengine.stages.code import CODE_LANG
from dataengine.stages.document import Document
from dataengine.stages.fasttext_models import load_model, require_model_file

CATEGORIES = ("encyclopedia", "news", "academic", "books", "forum", "technical", "code", "math", "web")
CODE_CATEGORY = "code"


class CategoryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_path: str | None = Field(None, description="fastText category model; default: the packaged one")
    reject: list[str] = Field(default_factory=list, description="categories whose documents are rejected")

    def path(self) -> str:
        """The model file: `model_path`, else the packaged one."""
        return self.model_path or str(packaged_model_path("category.ftz"))


class CategoryClassifier(BatchStage):
    """Writes `category` and `category_score` (the label's probability); rule: rejected_category."""

    name = "category"
    config_class = CategoryConfig
    decision_keys = frozenset({"reject"})

    def __init__(self, cfg: CategoryConfig | None = None):
        super().__init__()
        self.cfg = cfg or CategoryConfig()
        self.model_path = self.cfg.path()
        require_model_file(self.model_path, "stages.category.model_path")
        labels = model_labels(load_model(self.model_path))
        unknown = sorted(set(self.cfg.reject) - set(labels) - {CODE_CATEGORY})
        if unknown:
            raise ValueError(
                f"stages.category.reject: {unknown} are not labels of {self.model_path} ({labels})"
            )
        self.reject = frozenset(self.cfg.reject)

    def process_batch(self, docs: list[Document]) -> list[str | None]:
        prose = [doc for doc in docs if doc.lang != CODE_LANG]
        labels, probs = document_probabilities(load_model(self.model_path), prose)
        for doc, row in zip(prose, probs, strict=True):
            best = int(row.argmax())
            doc.category, doc.category_score = labels[best], float(row[best])
        for doc in docs:
            if doc.lang == CODE_LANG:
                doc.category, doc.category_score = CODE_CATEGORY, 1.0
        return [self.decide(Facts(doc)) for doc in docs]

    def decide(self, facts: Facts) -> str | None:
        return "rejected_category" if facts.category in self.reject else None
