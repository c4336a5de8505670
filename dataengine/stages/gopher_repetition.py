"""Gopher repetition rules (Rae et al. 2021, table A1) over the shared n-gram ids.

Duplicate lines and paragraphs (by count and by characters), the share of
text covered by the most frequent 2/3/4-gram, and the share covered by
duplicated 5..10-grams. Defaults are DataTrove's GopherRepetitionFilter.
For CJK the units are characters, so the n-grams are character n-grams with
larger n (a Chinese word averages 1.5-2 characters) and looser duplicate
limits: encyclopedic Chinese repeats full entity names where English uses
pronouns (limits near the 99th percentile of zh-Wikipedia paragraphs).

N-grams are counted with exact integer ids in numpy, for the whole batch at once
(`ngram_repeats.BatchRepeats`), instead of building and hashing joined strings for every n.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dataengine.stages.base import BatchStage
from dataengine.stages.by_lang import ByLangRules, RulesByLang, by_lang_field
from dataengine.stages.document import Document
from dataengine.stages.ngram_repeats import BatchRepeats


class GopherRepetitionRules(BaseModel):
    """Thresholds of one script family; a None threshold (or an empty dict) turns the rule off.

    `top_n_grams` / `dup_n_grams` map n to the largest allowed fraction of the text's characters.
    """

    model_config = ConfigDict(extra="forbid")

    dup_line_frac: float | None = 0.3
    dup_para_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    dup_para_char_frac: float | None = 0.2
    top_n_grams: dict[int, float] = Field(default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16})
    dup_n_grams: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )


def _cjk_rules() -> GopherRepetitionRules:
    return GopherRepetitionRules(
        top_n_grams={3: 0.2, 5: 0.18, 6: 0.16},
        dup_n_grams={10: 0.2, 12: 0.17, 14: 0.15, 16: 0.13, 18: 0.12, 20: 0.11},
    )


class GopherRepetitionConfig(ByLangRules):
    """English (and other spaced languages) rules, CJK rules over character n-grams, per-language
    overrides (`by_lang`). Classical Chinese (lzh): a poem is short, so its most frequent 5- or 6-gram
    covers 20-25% of it even when it occurs once; only a repeated n-gram is a repetition there."""

    model_config = ConfigDict(extra="forbid")

    default: GopherRepetitionRules = Field(default_factory=GopherRepetitionRules)
    cjk: GopherRepetitionRules = Field(default_factory=_cjk_rules)
    BUILTIN_BY_LANG = {"lzh": {"top_n_grams": {3: 0.3, 5: 0.3}}}
    by_lang: dict[str, dict[str, Any]] = by_lang_field(BUILTIN_BY_LANG)


def duplicates(items: list[str]) -> tuple[int, int]:
    """Number and total characters of the items that repeat an earlier item."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


class GopherRepetition(BatchStage):
    """Signals: dup_para_frac, dup_para_char_frac, dup_line_frac, dup_line_char_frac,
    top_<n>_gram, dup_<n>_gram. Rules (in this order): dup_para_frac, dup_para_char_frac,
    dup_line_frac, dup_line_char_frac, top_<n>_gram, duplicated_<n>_grams."""

    name = "gopher_rep"
    config_class = GopherRepetitionConfig
    prose_only = True

    def __init__(self, cfg: GopherRepetitionConfig | None = None):
        super().__init__()
        self.cfg = cfg or GopherRepetitionConfig()
        self._rules = RulesByLang(self.cfg)

    def process_batch(self, docs: list[Document]) -> list[str | None]:
        """The n-gram measures of the whole batch at once (`BatchRepeats`), then each document's rules."""
        rules = [self._rules(doc) for doc in docs]
        repeats = BatchRepeats([doc.unit_ids for doc in docs], [doc.unit_length_cumsum for doc in docs])
        separators = np.array([0 if doc.is_cjk else 1 for doc in docs])  # top n-grams count joining spaces
        top = {
            n: repeats.top_ngram_chars(n, np.array([n in r.top_n_grams for r in rules]), separators)
            for n in sorted({n for r in rules for n in r.top_n_grams})
        }
        dup = {
            n: repeats.duplicated_ngram_chars(n, np.array([n in r.dup_n_grams for r in rules]))
            for n in sorted({n for r in rules for n in r.dup_n_grams})
        }
        return [
            self._decide(doc, doc_rules, {n: v[i] for n, v in top.items()}, {n: v[i] for n, v in dup.items()})
            for i, (doc, doc_rules) in enumerate(zip(docs, rules, strict=True))
        ]

    def _decide(
        self, doc: Document, rules: GopherRepetitionRules, top: dict[int, int], dup: dict[int, int]
    ) -> str | None:
        text_len = len(doc.text)
        if not text_len:
            return "empty"
        failed: str | None = None

        def check(signal: str, value: float, limit: float | None, rule: str) -> None:
            nonlocal failed
            self.signal(doc, signal, round(value, 4))
            if failed is None and limit is not None and value > limit:
                failed = rule

        paragraphs = doc.paragraphs
        n_dup, dup_chars = duplicates(paragraphs)
        check("dup_para_frac", n_dup / len(paragraphs), rules.dup_para_frac, "dup_para_frac")
        check("dup_para_char_frac", dup_chars / text_len, rules.dup_para_char_frac, "dup_para_char_frac")
        lines = doc.non_empty_lines or [""]
        n_dup, dup_chars = duplicates(lines)
        check("dup_line_frac", n_dup / len(lines), rules.dup_line_frac, "dup_line_frac")
        check("dup_line_char_frac", dup_chars / text_len, rules.dup_line_char_frac, "dup_line_char_frac")

        n_units = len(doc.unit_ids)
        for n, limit in sorted(rules.top_n_grams.items()):
            if n_units >= n:
                check(f"top_{n}_gram", int(top[n]) / text_len, limit, f"top_{n}_gram")
        for n, limit in sorted(rules.dup_n_grams.items()):
            check(f"dup_{n}_gram", int(dup[n]) / text_len, limit, f"duplicated_{n}_n_grams")
        return failed
