"""Gopher quality rules (Rae et al. 2021, appendix A) with a character-based CJK variant.

English defaults follow DataTrove's GopherQualityFilter. CJK text has no
spaces, so its units are characters: the length bounds count characters, the
mean-word-length rule is off, and the stop words are function characters
(的 了 是 在 和 ...). Other languages use their own stop words, so Spanish is
not rejected for lacking "the"; a language without a list skips the rule (never the English
list on another language). The variant is picked by `doc.is_cjk` (from language ID), then
`by_lang` overrides it per language (see `stages/by_lang.py`). Classical Chinese (`lzh`, poetry and
the classics) is judged without the modern function-character rule and with a length floor of a
quatrain (20 characters).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar, Literal

import regex
from pydantic import BaseModel, ConfigDict, Field

from dataengine.stages.base import Facts, Stage
from dataengine.stages.by_lang import ByLangRules, RulesByLang, by_lang_field
from dataengine.stages.document import Document
from dataengine.stages.text_constants import (
    ALL_CJK_STOP_CHARS,
    BULLETS,
    CJK_BULLETS,
    ELLIPSES,
    LINE_SPACES,
    STOP_WORDS,
    SYMBOL_CHAR,
    SYMBOL_ONLY,
)

_HAS_LETTER = regex.compile(r"\p{L}")


class GopherQualityRules(BaseModel):
    """Thresholds of one script family; a None threshold turns its rule off.

    "Words" are the document's units: words, or non-space characters for CJK.
    """

    model_config = ConfigDict(extra="forbid")

    min_words: int | None = 50
    max_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    min_alpha_words_ratio: float | None = 0.8
    alpha_words_split: Literal["tokens", "whitespace"] = Field(
        "tokens",
        description="tokens: punctuation marks count as words, as in DataTrove (strict on number-dense text "
        "such as Wikipedia); whitespace: space-separated words, as the Gopher paper describes",
    )
    min_stop_words: int | None = 2
    stop_words: list[str] | None = Field(
        None,
        description="None: the detected language's list (English before language ID); rule off if it has none",
    )
    bullets: list[str] = Field(default_factory=lambda: list(BULLETS))

    THRESHOLDS: ClassVar[frozenset[str]] = frozenset(
        {
            "min_words",
            "max_words",
            "min_avg_word_length",
            "max_avg_word_length",
            "max_symbol_word_ratio",
            "max_bullet_lines_ratio",
            "max_ellipsis_lines_ratio",
            "min_alpha_words_ratio",
            "min_stop_words",
        }
    )


def _cjk_rules() -> GopherQualityRules:
    return GopherQualityRules(
        min_words=80,
        max_words=200_000,
        min_avg_word_length=None,
        max_avg_word_length=None,
        min_alpha_words_ratio=0.6,
        bullets=list(CJK_BULLETS),
    )


# Classical Chinese: a five-character quatrain (五言绝句) is 20 characters, and poems use few of the
# modern function characters (的 了 是 ...) that the CJK stop-word rule counts.
_LZH_RULES: dict[str, Any] = {"min_words": 20, "min_stop_words": None}
# Scripts that write no space between words (Thai, Lao, Khmer, Burmese, Tibetan, Dzongkha): a
# space-separated "word" is a phrase, so the mean-word-length rule cannot judge them.
_NO_WORD_SPACE_RULES: dict[str, Any] = {"min_avg_word_length": None, "max_avg_word_length": None}


class GopherQualityConfig(ByLangRules):
    """English (and other spaced languages) rules, the CJK character-based rules, per-language overrides."""

    model_config = ConfigDict(extra="forbid")
    BUILTIN_BY_LANG = {"lzh": _LZH_RULES} | {
        lang: _NO_WORD_SPACE_RULES for lang in ("th", "lo", "km", "my", "bo", "dz")
    }

    default: GopherQualityRules = Field(default_factory=GopherQualityRules)
    cjk: GopherQualityRules = Field(default_factory=_cjk_rules)
    by_lang: dict[str, dict[str, Any]] = by_lang_field(BUILTIN_BY_LANG)


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


class GopherQuality(Stage):
    """Signals: word_count, mean_word_length, hash_ratio, ellipsis_ratio, bullet_lines_ratio,
    ellipsis_lines_ratio, alpha_words_ratio, stop_words. Rules, checked in this order:
    too_few_words, too_many_words, mean_word_length, hash_ratio, ellipsis_ratio,
    bullet_lines, ellipsis_lines, alpha_words, stop_words (signal -1 and rule skipped for a
    language without a stop-word list)."""

    name = "gopher"
    config_class = GopherQualityConfig
    prose_only = True
    decision_keys = GopherQualityRules.THRESHOLDS | {"by_category"}

    def __init__(self, cfg: GopherQualityConfig | None = None):
        super().__init__()
        self.cfg = cfg or GopherQualityConfig()
        self._stop_words = {lang: frozenset(words) for lang, words in STOP_WORDS.items()}
        self._all_cjk_stop_chars = frozenset(ALL_CJK_STOP_CHARS)
        self._rules = RulesByLang(self.cfg)
        self._configured_stop_words = {
            key: frozenset(rules.stop_words) if rules.stop_words is not None else None
            for key, rules in self._rules.all().items()
        }
        self._bullets = {key: tuple(rules.bullets) for key, rules in self._rules.all().items()}

    def _stop_words_for(self, key: str, doc: Document) -> frozenset[str] | None:
        """The configured list, else the language's own, else None (the rule cannot judge).

        Only a document not yet through language ID (lang None) is read as English; a CJK
        language without a list (yue, wuu, ...) counts any CJK function character."""
        if self._configured_stop_words[key] is not None:
            return self._configured_stop_words[key]
        lang = doc.lang
        if lang is None:
            return self._all_cjk_stop_chars if doc.is_cjk else self._stop_words["en"]
        if doc.is_cjk:
            return self._stop_words.get(lang, self._all_cjk_stop_chars)
        return self._stop_words.get(lang)

    def process(self, doc: Document) -> str | None:
        key = self._rules.key(doc)
        rules: GopherQualityRules = self._rules.named(key)
        text = doc.text
        units = doc.units
        n_units = len(units)
        if doc.is_cjk:  # units are single characters: count classes with one scan, no loop
            chars = doc.non_space_chars
            n_content = content_chars = n_units - len(SYMBOL_CHAR.findall(chars))
        else:  # each distinct word judged once (a text repeats its words: a third as many to test),
            # str methods first (most tokens end in / start with a letter), the regex for the rest
            counts = Counter(units)
            n_content = content_chars = 0
            for unit, count in counts.items():
                if unit[-1].isalnum() or not SYMBOL_ONLY.fullmatch(unit):
                    n_content += count
                    content_chars += count * len(unit)
        mean_len = _ratio(content_chars, n_content)
        hash_ratio = _ratio(text.count("#"), n_units)
        ellipsis_ratio = _ratio(text.count("...") + text.count("…"), n_units)
        # hard-wrapped text (books) is measured one paragraph per line: a wrapped line that happens
        # to start with "-" ("--" dashes) or end with "..." is not a bullet or an ellipsis line
        lines = doc.reflowed_lines
        n_lines = len(lines)
        bullets = self._bullets[key]
        n_bullet = sum(1 for line in lines if line.lstrip(LINE_SPACES).startswith(bullets))
        n_ellipsis = sum(1 for line in lines if line.rstrip(LINE_SPACES).endswith(ELLIPSES))
        bullet_ratio = _ratio(n_bullet, n_lines)
        ellipsis_lines_ratio = _ratio(n_ellipsis, n_lines)
        if doc.is_cjk:
            alpha_ratio = _ratio(len(_HAS_LETTER.findall(chars)), n_units)
        else:
            alpha_units = doc.text.split() if rules.alpha_words_split == "whitespace" else units
            alpha_counts = Counter(alpha_units) if alpha_units is not units else counts
            n_alpha = sum(c for u, c in alpha_counts.items() if u[0].isalpha() or _HAS_LETTER.search(u))
            alpha_ratio = _ratio(n_alpha, len(alpha_units))
        stop_words = self._stop_words_for(key, doc)
        n_stop = len(stop_words.intersection(units)) if stop_words is not None else -1
        for signal, value in (
            ("word_count", n_content),
            ("mean_word_length", round(mean_len, 4)),
            ("hash_ratio", round(hash_ratio, 4)),
            ("ellipsis_ratio", round(ellipsis_ratio, 4)),
            ("bullet_lines_ratio", round(bullet_ratio, 4)),
            ("ellipsis_lines_ratio", round(ellipsis_lines_ratio, 4)),
            ("alpha_words_ratio", round(alpha_ratio, 4)),
            ("stop_words", n_stop),
        ):
            self.signal(doc, signal, value)
        return self.decide(Facts(doc))

    def decide(self, facts: Facts) -> str | None:
        rules: GopherQualityRules = self._rules.deciding(facts)
        s = facts.signals
        n_words, mean_len = s["gopher.word_count"], s["gopher.mean_word_length"]
        if rules.min_words is not None and n_words < rules.min_words:
            return "too_few_words"
        if rules.max_words is not None and n_words > rules.max_words:
            return "too_many_words"
        if rules.min_avg_word_length is not None and mean_len < rules.min_avg_word_length:
            return "mean_word_length"
        if rules.max_avg_word_length is not None and mean_len > rules.max_avg_word_length:
            return "mean_word_length"
        if rules.max_symbol_word_ratio is not None:
            if s["gopher.hash_ratio"] > rules.max_symbol_word_ratio:
                return "hash_ratio"
            if s["gopher.ellipsis_ratio"] > rules.max_symbol_word_ratio:
                return "ellipsis_ratio"
        if (
            rules.max_bullet_lines_ratio is not None
            and s["gopher.bullet_lines_ratio"] > rules.max_bullet_lines_ratio
        ):
            return "bullet_lines"
        if (
            rules.max_ellipsis_lines_ratio is not None
            and s["gopher.ellipsis_lines_ratio"] > rules.max_ellipsis_lines_ratio
        ):
            return "ellipsis_lines"
        if (
            rules.min_alpha_words_ratio is not None
            and s["gopher.alpha_words_ratio"] < rules.min_alpha_words_ratio
        ):
            return "alpha_words"
        n_stop = s["gopher.stop_words"]
        if rules.min_stop_words is not None and n_stop >= 0 and n_stop < rules.min_stop_words:
            return "stop_words"
        return None
