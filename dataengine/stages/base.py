"""The contract of a per-document stage: annotate signals, then decide by thresholds."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import Counter

from pydantic import BaseModel

from dataengine.stages.document import Document


class Stage(ABC):
    """One decision over a document, with its statistics.

    `process` writes signals into `doc.signals` under `"<name>.<signal>"` and
    returns the name of the first failing rule (the row's reject reason becomes
    `"<name>:<rule>"`), or None to keep the document. A stage may rewrite
    `doc` through `doc.set_text`. Stages never raise on a bad document.

    The processor hands a stage a whole batch (`run`); a stage whose work is
    cheaper per batch derives from `BatchStage` instead.
    """

    name: str = "stage"  # its key under `stages:` in the config, and the prefix of its signals
    config_class: type[BaseModel]  # validated settings, passed to __init__
    prose_only: bool = False  # documents detected as code skip it (its rules describe prose)

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()
        self.seconds = 0.0

    @abstractmethod
    def process(self, doc: Document) -> str | None: ...

    def __call__(self, doc: Document) -> str | None:
        return self.run([doc])[0]

    def process_batch(self, docs: list[Document]) -> list[str | None]:
        return [self.process(doc) for doc in docs]

    def run(self, docs: list[Document]) -> list[str | None]:
        """`process_batch` with its time and counts recorded."""
        start = time.perf_counter()
        rules = self.process_batch(docs)
        self.seconds += time.perf_counter() - start
        self.stats["seen"] += len(docs)
        for rule in rules:
            if rule is not None:
                self.stats[f"rejected:{rule}"] += 1
        return rules

    def signal(self, doc: Document, key: str, value) -> None:
        doc.signals[f"{self.name}.{key}"] = value


class BatchStage(Stage):
    """A stage whose work is cheaper over a whole batch (one model call, one numpy pass): it
    writes `process_batch`; a single document is a batch of one."""

    @abstractmethod
    def process_batch(self, docs: list[Document]) -> list[str | None]: ...

    def process(self, doc: Document) -> str | None:
        return self.process_batch([doc])[0]
