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

from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dataengine.stages.base import BatchStage, Facts
from dataengine.stages.by_lang import ByLangRules, RulesByLang, by_lang_field
from dataengine.stages.document import CJK_LANGS, Document
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

    # the n-gram maps' limits are thresholds; their n's name the signals measured (`signal_settings`)
    THRESHOLDS: ClassVar[frozenset[str]] = frozenset(
        {
            "dup_line_frac",
            "dup_para_frac",
            "dup_line_char_frac",
            "dup_para_char_frac",
            "top_n_grams",
            "dup_n_grams",
        }
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
    decision_keys = GopherRepetitionRules.THRESHOLDS | {"by_category"}

    def __init__(self, cfg: GopherRepetitionConfig | None = None):
        super().__init__()
        self.cfg = cfg or GopherRepetitionConfig()
        self._rules = RulesByLang(self.cfg)

    @classmethod
    def signal_settings(cls, cfg: GopherRepetitionConfig) -> Any:
        """Also the n's each rule set measures, under that set's own key (`cjk.top_n_grams`; a language's
        only where they differ from its variant's): a rule on an n without its signal cannot be decided."""
        settings = super().signal_settings(cfg)
        rules = RulesByLang(cfg)
        for name, r in rules.all().items():
            if name in ("default", "cjk"):
                place = settings.setdefault(name, {})
            else:
                variant = cfg.variant(name, name in CJK_LANGS)
                if (r.top_n_grams.keys(), r.dup_n_grams.keys()) == (
                    variant.top_n_grams.keys(),
                    variant.dup_n_grams.keys(),
                ):
                    continue
                place = settings.setdefault("by_lang", {}).setdefault(name, {})
            place.update(top_n_grams=sorted(r.top_n_grams), dup_n_grams=sorted(r.dup_n_grams))
        return settings

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
        for i, (doc, doc_rules) in enumerate(zip(docs, rules, strict=True)):
            self._measure(
                doc, doc_rules, {n: v[i] for n, v in top.items()}, {n: v[i] for n, v in dup.items()}
            )
        return [self.decide(Facts(doc)) for doc in docs]

    def _measure(
        self, doc: Document, rules: GopherRepetitionRules, top: dict[int, int], dup: dict[int, int]
    ) -> None:
        text_len = len(doc.text)
        if not text_len:  # no signals: `decide` reads their absence as "empty"
            return
        paragraphs = doc.paragraphs
        n_dup, dup_chars = duplicates(paragraphs)
        self.signal(doc, "dup_para_frac", round(n_dup / len(paragraphs), 4))
        self.signal(doc, "dup_para_char_frac", round(dup_chars / text_len, 4))
        lines = doc.non_empty_lines or [""]
        n_dup, dup_chars = duplicates(lines)
        self.signal(doc, "dup_line_frac", round(n_dup / len(lines), 4))
        self.signal(doc, "dup_line_char_frac", round(dup_chars / text_len, 4))
        n_units = len(doc.unit_ids)
        for n in rules.top_n_grams:
            if n_units >= n:  # a text shorter than n has no n-gram: no signal, the rule is skipped
                self.signal(doc, f"top_{n}_gram", round(int(top[n]) / text_len, 4))
        for n in rules.dup_n_grams:
            self.signal(doc, f"dup_{n}_gram", round(int(dup[n]) / text_len, 4))

    def decide(self, facts: Facts) -> str | None:
        s = facts.signals
        if s.get("gopher_rep.dup_para_frac") is None:
            return "empty"
        rules: GopherRepetitionRules = self._rules.deciding(facts)
        for name, limit in (
            ("dup_para_frac", rules.dup_para_frac),
            ("dup_para_char_frac", rules.dup_para_char_frac),
            ("dup_line_frac", rules.dup_line_frac),
            ("dup_line_char_frac", rules.dup_line_char_frac),
        ):
            if limit is not None and s[f"gopher_rep.{name}"] > limit:
                return name
        for n, limit in sorted(rules.top_n_grams.items()):
            value = s.get(f"gopher_rep.top_{n}_gram")
            if value is not None and value > limit:
                return f"top_{n}_gram"
        for n, limit in sorted(rules.dup_n_grams.items()):
            value = s.get(f"gopher_rep.dup_{n}_gram")
            if value is not None and value > limit:
                return f"duplicated_{n}_n_grams"
        return None
