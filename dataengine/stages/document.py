"""The one shared split of a document that every rule reads.

DataTrove re-tokenizes the text in each filter; here the lines, words,
characters and n-grams are computed once, lazily, and cached on the document.
A stage that rewrites the text (normalization, C4 line cleaning, PII masking)
calls `set_text`, which drops the cached splits.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import regex

CJK_LANGS = frozenset({"zh", "ja", "ko", "yue", "wuu", "lzh"})

# A word is a run of letters/marks/digits (with inner apostrophes or hyphens),
# or a single non-space symbol: close to NLTK's treebank split, at regex speed.
_WORD_RE = regex.compile(r"[\p{L}\p{M}\p{N}]+(?:['’\-][\p{L}\p{M}\p{N}]+)*|[^\s\p{L}\p{M}\p{N}]")
_HAN_KANA_HANGUL = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")


class Document:
    """A document under processing: text, detected language, signals, and cached splits."""

    def __init__(self, text: str, lang: str | None = None, lang_score: float | None = None):
        self.text = text
        self.lang = lang
        self.lang_score = lang_score
        self.signals: dict[str, Any] = {}

    def set_text(self, text: str) -> None:
        """Replace the text and forget every split computed from the old one."""
        self.text = text
        for name in ("lines", "words", "chars", "non_space_chars", "n_cjk_chars", "units"):
            self.__dict__.pop(name, None)
        self.__dict__.pop("_ngram_cache", None)

    @property
    def is_cjk(self) -> bool:
        """CJK rules apply when language ID says so (or, before it ran, when Han/kana/Hangul dominate)."""
        if self.lang is not None:
            return self.lang in CJK_LANGS
        return self.n_cjk_chars > 0.3 * max(1, len(self.non_space_chars))

    @cached_property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    @cached_property
    def words(self) -> list[str]:
        return _WORD_RE.findall(self.text)

    @cached_property
    def chars(self) -> list[str]:
        return list(self.text)

    @cached_property
    def non_space_chars(self) -> str:
        return "".join(self.text.split())

    @cached_property
    def n_cjk_chars(self) -> int:
        return len(_HAN_KANA_HANGUL.findall(self.text))

    @cached_property
    def units(self) -> list[str]:
        """The counting unit of the language: words, or non-space characters for CJK."""
        return list(self.non_space_chars) if self.is_cjk else self.words

    def ngrams(self, n: int) -> list[str]:
        """Space-joined n-grams of `units` (characters joined without space for CJK), cached per n."""
        cache = self.__dict__.setdefault("_ngram_cache", {})
        if n not in cache:
            units = self.units
            sep = "" if self.is_cjk else " "
            cache[n] = [sep.join(units[i : i + n]) for i in range(len(units) - n + 1)]
        return cache[n]
