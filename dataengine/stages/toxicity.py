"""Toxicity by bad-word lists: count profane, pornographic and slur terms; reject above a fraction.

Word lists (not a model) keep the stage cheap, deterministic and offline. English
terms match whole words of `Document.words` (lower-cased), so "Scunthorpe" and
"cocktail" are safe; Chinese has no spaces, so its terms match as substrings of
the text through one compiled alternation. Every loaded list applies to every
document: an English slur inside a Chinese page is still a slur.

The fraction is flagged units over all units, with the unit of the document's
language (as `Document.units`): non-space characters for CJK documents, words
with a letter or digit otherwise. A CJK match flags as many units as it has
characters in a CJK document and one unit elsewhere; a word match flags one.
"""

from __future__ import annotations

import re
from operator import itemgetter
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dataengine.stages.base import Facts, Stage
from dataengine.stages.document import Document

_CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_first_char = itemgetter(0)
# Shipped as package data (pyproject: dataengine = ["resources/**/*"]).
LIST_DIR = Path(__file__).resolve().parent.parent / "resources" / "badwords"


def builtin_languages() -> list[str]:
    """Languages that have a list shipped in `dataengine/resources/badwords/<lang>.txt`."""
    return sorted(p.stem for p in LIST_DIR.glob("*.txt"))


class ToxicityConfig(BaseModel):
    """Which lists to load and when a document counts as toxic."""

    model_config = ConfigDict(extra="forbid")

    languages: list[str] = Field(
        default_factory=lambda: ["en", "zh"],
        description="built-in lists to load (all apply to every document)",
    )
    extra_lists: list[Path] = Field(
        default_factory=list,
        description="user lists: UTF-8, one term per line, '#' comments; CJK terms match as substrings",
    )
    max_bad_word_fraction: float = Field(
        0.02, ge=0.0, le=1.0, description="reject above this flagged fraction"
    )
    min_bad_words: int = Field(2, ge=1, description="the fraction rule needs at least this many matches")
    max_bad_words: int | None = Field(
        None, ge=0, description="also reject above this many matches, any length"
    )

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, langs: list[str]) -> list[str]:
        known = builtin_languages()
        unknown = [lang for lang in langs if lang not in known]
        if unknown:
            raise ValueError(f"no built-in bad-word list for {unknown}; available: {known}")
        return langs


def _parse_terms(source: object, text: str) -> list[str]:
    """The terms of a list file: stripped, lower-cased lines that are neither blank nor '#' comments."""
    terms = []
    for line in text.splitlines():
        term = line.strip().lower()
        if term and not term.startswith("#"):
            terms.append(term)
    if not terms:
        raise ValueError(f"bad-word list {source} has no terms")
    return terms


class BadWordMatcher:
    """Counts list terms in a document: word terms on its words, CJK terms as substrings of its text."""

    def __init__(self, terms: list[str]):
        word_terms: set[tuple[str, ...]] = set()
        cjk_terms: set[str] = set()
        for term in terms:
            if _CJK_CHAR.search(term):
                cjk_terms.add(term)
            else:
                word_terms.add(tuple(w.lower() for w in Document(term).words))
        self.single_words = frozenset(t[0] for t in word_terms if len(t) == 1)
        # A phrase containing a listed single word is already counted through that word.
        phrases = sorted(t for t in word_terms if len(t) > 1 and not self.single_words.intersection(t))
        self.phrases_by_first: dict[str, list[tuple[str, ...]]] = {}
        for phrase in phrases:
            self.phrases_by_first.setdefault(phrase[0], []).append(phrase)
        self.phrase_starts = frozenset(self.phrases_by_first)
        # Longest first, so that at one position the longest term wins; matches do not overlap.
        ordered = sorted(cjk_terms, key=lambda t: (-len(t), t))
        self.cjk_pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def count_words(self, lowered: list[str]) -> int:
        """Matches of word terms and phrases in a lower-cased word sequence."""
        vocabulary = set(lowered)
        present = self.single_words & vocabulary
        hits = sum(1 for w in lowered if w in present) if present else 0
        for first in self.phrase_starts & vocabulary:
            for phrase in self.phrases_by_first[first]:
                hits += _count_phrase(lowered, phrase)
        return hits

    def cjk_matches(self, text: str) -> list[str]:
        """Non-overlapping CJK term matches in the (lower-cased) text."""
        if self.cjk_pattern is None:
            return []
        return self.cjk_pattern.findall(text.lower())


def _count_phrase(words: list[str], phrase: tuple[str, ...]) -> int:
    n, hits, i = len(phrase), 0, -1
    first = phrase[0]
    while True:
        try:
            i = words.index(first, i + 1)
        except ValueError:
            return hits
        if tuple(words[i : i + n]) == phrase:
            hits += 1


class ToxicityFilter(Stage):
    """Signals `bad_words` (matches) and `bad_word_fraction`; rejects with rule "bad_words"."""

    name = "toxicity"
    config_class = ToxicityConfig
    decision_keys = frozenset({"max_bad_word_fraction", "min_bad_words", "max_bad_words"})
    prose_only = True

    def __init__(self, cfg: ToxicityConfig | None = None):
        super().__init__()
        self.cfg = cfg or ToxicityConfig()
        terms: list[str] = []
        for lang in self.cfg.languages:
            path = LIST_DIR / f"{lang}.txt"
            terms += _parse_terms(path, path.read_text(encoding="utf-8"))
        for path in self.cfg.extra_lists:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"toxicity.extra_lists: cannot read bad-word list {path}: {exc}") from exc
            terms += _parse_terms(path, text)
        self.matcher = BadWordMatcher(terms)

    def process(self, doc: Document) -> str | None:
        lowered = " ".join(doc.words).lower().split(" ") if doc.words else []
        word_hits = self.matcher.count_words(lowered)
        cjk = self.matcher.cjk_matches(doc.text) if _CJK_CHAR.search(doc.text) else []
        n_bad = word_hits + len(cjk)
        if doc.is_cjk:
            flagged = word_hits + sum(len(m) for m in cjk)
            total = len(doc.non_space_chars)  # == len(doc.units), without building the list
        else:
            flagged = n_bad
            total = sum(map(str.isalnum, map(_first_char, lowered)))  # words, not punctuation
        fraction = min(1.0, flagged / total) if total else 0.0
        self.signal(doc, "bad_words", n_bad)
        self.signal(doc, "bad_word_fraction", fraction)
        return self.decide(Facts(doc))

    def decide(self, facts: Facts) -> str | None:
        cfg = self.cfg
        n_bad, fraction = facts.signals["toxicity.bad_words"], facts.signals["toxicity.bad_word_fraction"]
        if n_bad >= cfg.min_bad_words and fraction > cfg.max_bad_word_fraction:
            return "bad_words"
        if cfg.max_bad_words is not None and n_bad > cfg.max_bad_words:
            return "bad_words"
        return None
