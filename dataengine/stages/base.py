"""The contract of a per-document stage: annotate signals, then decide by thresholds."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from dataengine.stages.document import Document


class Facts:
    """What a stage's rules read: the document's language, script family, category, quality score and
    signals. Built from a Document while the chain runs, and from a stored row by `dataengine decide`
    (a Document holding the stored values), so that a decision is the same function of the same values
    either way. `is_cjk` is read only when asked: before language ID it scans the text."""

    __slots__ = ("lang", "category", "quality", "signals", "_doc")

    def __init__(self, doc: Document):
        self.lang = doc.lang
        self.category = doc.category
        self.quality = doc.quality
        self.signals: Mapping[str, Any] = doc.signals
        self._doc = doc

    @property
    def is_cjk(self) -> bool:
        return self._doc.is_cjk


class Stage(ABC):
    """One decision over a document, with its statistics.

    `process` writes signals into `doc.signals` under `"<name>.<signal>"` and
    returns `decide(Facts(doc))`: the name of the first failing rule (the row's reject reason becomes
    `"<name>:<rule>"`), or None to keep the document. `decide` reads only the facts, so the stored
    columns of a run are enough to decide again under other thresholds (`replay`, `dataengine
    decide`). A stage may rewrite `doc` through `doc.set_text`. Stages never raise on a bad document.

    The processor hands a stage a whole batch (`run`); a stage whose work is
    cheaper per batch derives from `BatchStage` instead.
    """

    name: str = "stage"  # its key under `stages:` in the config, and the prefix of its signals
    config_class: type[BaseModel]  # validated settings, passed to __init__
    prose_only: bool = False  # documents detected as code skip it (its rules describe prose)
    # config keys (at any depth of the stage's config) that only `decide` reads: changing them needs no
    # recompute
    decision_keys: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()
        self.seconds = 0.0

    @abstractmethod
    def process(self, doc: Document) -> str | None: ...

    @abstractmethod
    def decide(self, facts: Facts) -> str | None:
        """The first rule the facts fail, or None."""

    def __call__(self, doc: Document) -> str | None:
        return self.run([doc])[0]

    def process_batch(self, docs: list[Document]) -> list[str | None]:
        return [self.process(doc) for doc in docs]

    def run(self, docs: list[Document]) -> list[str | None]:
        """`process_batch` with its time and counts recorded."""
        start = time.perf_counter()
        rules = self.process_batch(docs)
        self.seconds += time.perf_counter() - start
        return self._count(docs, rules)

    def replay(self, docs: list[Document]) -> list[str | None]:
        """The rules over documents whose signals are already stored (no model, no text split)."""
        start = time.perf_counter()
        rules = [self.decide(Facts(doc)) for doc in docs]
        self.seconds += time.perf_counter() - start
        return self._count(docs, rules)

    def _count(self, docs: list[Document], rules: list[str | None]) -> list[str | None]:
        self.stats["seen"] += len(docs)
        for rule in rules:
            if rule is not None:
                self.stats[f"rejected:{rule}"] += 1
        return rules

    @classmethod
    def signal_settings(cls, cfg: BaseModel) -> Any:
        """The part of a config the signals depend on: two configs with equal signal settings differ only
        in what `decide` reads."""
        return _without_keys(cfg.model_dump(mode="json"), cls.decision_keys)

    def signal(self, doc: Document, key: str, value) -> None:
        doc.signals[f"{self.name}.{key}"] = value


class BatchStage(Stage):
    """A stage whose work is cheaper over a whole batch (one model call, one numpy pass): it
    writes `process_batch`; a single document is a batch of one."""

    @abstractmethod
    def process_batch(self, docs: list[Document]) -> list[str | None]: ...

    def process(self, doc: Document) -> str | None:
        return self.process_batch([doc])[0]


def _without_keys(value: Any, keys: frozenset[str]) -> Any:
    """`value` with every entry named in `keys` dropped, and the dicts this empties dropped with it."""
    if isinstance(value, list):
        return [_without_keys(v, keys) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key not in keys:
            item = _without_keys(item, keys)
            if item != {}:
                out[key] = item
    return out
