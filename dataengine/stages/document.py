"""The one shared split of a document that every rule reads.

DataTrove re-tokenizes the text in each filter; here the lines, words,
characters and n-grams are computed once, lazily, and cached on the document.
A stage that rewrites the text (normalization, C4 line cleaning, PII masking)
calls `set_text`, which drops the cached splits; language ID calls `set_lang`,
which drops the splits that depend on the language (units, n-grams).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import regex

from dataengine.classifiers.features import classifier_features
from dataengine.stages.reflow import join_paragraph, paragraph_groups

CJK_LANGS = frozenset({"zh", "ja", "ko", "yue", "wuu", "lzh"})

# Words as NLTK's treebank tokenizer (which Gopher/FineWeb were tuned with) cuts them, at
# regex speed: contraction suffixes ('s 'm 'll n't) stand alone; letters/digits joined by inner
# punctuation stay one word (3.50, 1,000, U.S, e-mail, www.example.com/a); runs of dots or
# dashes are one token; any other symbol is a token of its own.
_WORD_RE = regex.compile(
    r"""
    ['’](?i:s|m|d|ll|re|ve|t)(?![\p{L}\p{M}\p{N}])
    |[\p{L}\p{M}\p{N}]+
     (?:(?:[.,:/_+=~*\\|^\-]+|['’](?!(?i:s|m|d|ll|re|ve|t)(?![\p{L}\p{M}\p{N}])))[\p{L}\p{M}\p{N}]+)*
    |\.{2,}|-{2,}
    |[^\s\p{L}\p{M}\p{N}]
    """,
    regex.VERBOSE,
)
_TRAILING_MARKS = frozenset(",.;:!?)")
_SPLIT_ONLY_SEPARATORS = regex.compile(r"[\x1c-\x1f]")
_HAN_KANA_HANGUL = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")
_PARAGRAPH_BREAK = regex.compile(r"\n{2,}")

# Attributes that are state, not caches: everything else in __dict__ is a cached split.
_STATE = frozenset(
    {"text", "lang", "lang_score", "signals", "category", "category_score", "quality", "quality_bin"}
)
# Caches that depend on the language (through `is_cjk`), dropped by `set_lang`.
_LANG_DEPENDENT = (
    "units",
    "unit_ids",
    "unit_length_cumsum",
    "_ngram_cache",
    "paragraph_groups",
    "reflowed_text",
    "reflowed_lines",
    "non_empty_reflowed_lines",
)


class Document:
    """A document under processing: text, detected language, category and quality, signals, and cached
    splits."""

    def __init__(self, text: str, lang: str | None = None, lang_score: float | None = None):
        self.text = text
        self.lang = lang
        self.lang_score = lang_score
        self.signals: dict[str, Any] = {}
        self.category: str | None = None  # written by the category stage
        self.category_score: float | None = None
        self.quality: float | None = None  # written by the quality stage
        self.quality_bin: int | None = None

    def set_text(self, text: str) -> None:
        """Replace the text and forget every split computed from the old one."""
        self.text = text
        for name in [k for k in self.__dict__ if k not in _STATE]:
            del self.__dict__[name]

    def set_lang(self, lang: str | None, score: float | None) -> None:
        """Record the detected language; forget splits whose unit (word or character) it decides."""
        self.lang = lang
        self.lang_score = score
        for name in _LANG_DEPENDENT:
            self.__dict__.pop(name, None)

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
    def non_empty_lines(self) -> list[str]:
        """Lines with something other than whitespace, unstripped."""
        return [line for line in self.lines if line and not line.isspace()]

    @cached_property
    def paragraph_groups(self) -> list[list[str]] | None:
        """A hard-wrapped text's lines grouped into paragraphs (`stages.reflow`: by wrap width, or for
        CJK by clause marks at line ends and a fixed width); None when it is not wrapped."""
        return paragraph_groups(self.text, self.is_cjk)

    @cached_property
    def reflowed_text(self) -> str:
        """The text with hard-wrapped lines joined into paragraphs; the text itself (same object) when
        it is not wrapped."""
        groups = self.paragraph_groups
        if groups is None:
            return self.text
        return "\n".join(join_paragraph(group, self.is_cjk) for group in groups)

    @cached_property
    def reflowed_lines(self) -> list[str]:
        """Lines of `reflowed_text`: one per paragraph of a hard-wrapped book (or sentence of clause-per-line
        CJK); `lines` for other text."""
        return self.lines if self.reflowed_text is self.text else self.reflowed_text.split("\n")

    @cached_property
    def non_empty_reflowed_lines(self) -> list[str]:
        """`reflowed_lines` with something other than whitespace, unstripped."""
        if self.reflowed_text is self.text:
            return self.non_empty_lines
        return [line for line in self.reflowed_lines if line and not line.isspace()]

    @cached_property
    def paragraphs(self) -> list[str]:
        """Blocks separated by one or more blank lines (runs of two or more newlines)."""
        return _PARAGRAPH_BREAK.split(self.text.strip())

    @cached_property
    def words(self) -> list[str]:
        # No word crosses whitespace, so whitespace-separated tokens can be split one by one, and an
        # all-letter token (most of them) is a word as it is: the regex only sees the rest.
        # str.split also splits at \x1c-\x1f, which the regex's \s does not: such text goes whole.
        if _SPLIT_ONLY_SEPARATORS.search(self.text):
            return _WORD_RE.findall(self.text)
        words: list[str] = []
        for token in self.text.split():
            if token.isalpha():
                words.append(token)
            elif token[-1] in _TRAILING_MARKS and token[:-1].isalpha():  # "word," "word." -> 2 tokens
                words += (token[:-1], token[-1])
            else:
                words.extend(_WORD_RE.findall(token))
        return words

    @cached_property
    def classifier_features(self) -> str:
        """What the fastText classifiers read, once: category and quality both read it, and the text
        between them changes only where C4 drops lines (`set_text` then drops this too)."""
        return classifier_features(self.text)

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

    @cached_property
    def unit_ids(self) -> np.ndarray:
        """Dense integer id of each unit (equal units, equal ids), for exact n-gram counting in numpy."""
        if self.is_cjk:  # character units: their code points, densified
            code_points = np.frombuffer(self.non_space_chars.encode("utf-32-le", "surrogatepass"), "<u4")
            return np.unique(code_points, return_inverse=True)[1].astype(np.int64)
        vocab: dict[str, int] = {}
        return np.fromiter((vocab.setdefault(u, len(vocab)) for u in self.units), dtype=np.int64)

    @cached_property
    def unit_length_cumsum(self) -> np.ndarray:
        """Prefix sums of unit lengths: the characters of units[i:j] are cumsum[j] - cumsum[i]."""
        if self.is_cjk:  # every unit is one character
            return np.arange(len(self.units) + 1, dtype=np.int64)
        lengths = np.fromiter(map(len, self.units), dtype=np.int64, count=len(self.units))
        return np.concatenate(([0], np.cumsum(lengths)))

    def ngrams(self, n: int) -> list[str]:
        """Space-joined n-grams of `units` (characters joined without space for CJK), cached per n."""
        cache = self.__dict__.setdefault("_ngram_cache", {})
        if n not in cache:
            units = self.units
            sep = "" if self.is_cjk else " "
            cache[n] = [sep.join(units[i : i + n]) for i in range(len(units) - n + 1)]
        return cache[n]
