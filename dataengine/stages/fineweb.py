"""FineWeb's line-level quality rules (Penedo et al. 2024), CJK-aware.

Rejects pages where few lines end a sentence, most lines are short, lines
repeat, or there are many newlines per word (lists, menus). Defaults are
DataTrove's FineWebQualityFilter. For CJK, sentence ends include closing
quotes after 。！？ and ellipses, a short line is measured in characters of
denser script, and the newline ratio is per character.

The rules read `doc.reflowed_lines`: a hard-wrapped book or plain-text file is measured one
paragraph per line (`stages.reflow`), so a sentence spread over wrapped lines is not taken for
lines that fail to end a sentence; such a paragraph also ends a sentence when the terminal mark
sits inside closing quotes or brackets (dialogue: `"Go."`). Text that is not hard-wrapped (web
text, menus, lists) is measured on its own lines, exactly as DataTrove does; the signal `reflowed`
says which was used.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from dataengine.stages.base import Facts, Stage
from dataengine.stages.by_lang import ByLangRules, RulesByLang, by_lang_field
from dataengine.stages.document import Document
from dataengine.stages.gopher_repetition import duplicates
from dataengine.stages.reflow import LINE_ENDS_SENTENCE
from dataengine.stages.text_constants import LINE_ENDS_WITH_CJK_TERMINAL, LINE_ENDS_WITH_TERMINAL


class FineWebRules(BaseModel):
    """Thresholds of one script family; a None threshold turns its rule off."""

    model_config = ConfigDict(extra="forbid")

    line_punct_thr: float | None = Field(0.12, description="minimum share of lines ending a sentence")
    line_punct_exclude_zero: bool = Field(False, description="do not reject when no line ends a sentence")
    short_line_thr: float | None = Field(0.67, description="maximum share of short lines")
    short_line_length: int = Field(30, description="a line of at most this many characters is short")
    char_duplicates_ratio: float | None = Field(
        0.01, description="maximum share of characters in repeated lines"
    )
    new_line_ratio: float | None = Field(0.3, description="maximum newlines per word (per character for CJK)")

    THRESHOLDS: ClassVar[frozenset[str]] = frozenset(
        {
            "line_punct_thr",
            "line_punct_exclude_zero",
            "short_line_thr",
            "char_duplicates_ratio",
            "new_line_ratio",
        }
    )


def _cjk_rules() -> FineWebRules:
    return FineWebRules(short_line_length=12, new_line_ratio=0.2)


class FineWebConfig(ByLangRules):
    """English (and other spaced languages) rules, the CJK rules, per-language overrides (`by_lang`).
    Classical Chinese (lzh): verse is short lines, often unpunctuated at the line end, with refrains."""

    model_config = ConfigDict(extra="forbid")
    BUILTIN_BY_LANG = {
        "lzh": {
            "line_punct_thr": None,
            "short_line_thr": None,
            "new_line_ratio": None,
            "char_duplicates_ratio": 0.2,
        }
    }

    default: FineWebRules = Field(default_factory=FineWebRules)
    cjk: FineWebRules = Field(default_factory=_cjk_rules)
    by_lang: dict[str, dict[str, Any]] = by_lang_field(BUILTIN_BY_LANG)


class FineWebQuality(Stage):
    """Signals: lines (non-empty), line_punct_ratio, short_line_ratio, char_dup_ratio, newline_ratio, reflowed (1 when
    the line statistics were measured on the re-flowed paragraphs of hard-wrapped text).
    Rules (in this order): empty, line_punct_ratio, short_line_ratio, char_dup_ratio, list_ratio."""

    name = "fineweb"
    config_class = FineWebConfig
    prose_only = True
    decision_keys = FineWebRules.THRESHOLDS | {"by_category"}

    def __init__(self, cfg: FineWebConfig | None = None):
        super().__init__()
        self.cfg = cfg or FineWebConfig()
        self._rules = RulesByLang(self.cfg)

    def process(self, doc: Document) -> str | None:
        cjk = doc.is_cjk
        rules: FineWebRules = self._rules(doc)
        lines = doc.non_empty_reflowed_lines
        self.signal(doc, "lines", len(lines))
        if lines:
            text = doc.reflowed_text
            reflowed = text is not doc.text
            if cjk:
                ends = LINE_ENDS_WITH_CJK_TERMINAL
            else:  # a re-flowed paragraph of dialogue ends in a closing quote: `"Yes," he said. "Go."`
                ends = LINE_ENDS_SENTENCE if reflowed else LINE_ENDS_WITH_TERMINAL
            punct_ratio = len(ends.findall(text)) / len(lines)
            short_ratio = sum(1 for line in lines if len(line) <= rules.short_line_length) / len(lines)
            dup_ratio = duplicates(lines)[1] / max(1, len(text) - text.count("\n"))
            newline_ratio = text.count("\n") / max(1, len(doc.units))
            self.signal(doc, "line_punct_ratio", round(punct_ratio, 4))
            self.signal(doc, "short_line_ratio", round(short_ratio, 4))
            self.signal(doc, "char_dup_ratio", round(dup_ratio, 4))
            self.signal(doc, "newline_ratio", round(newline_ratio, 4))
            self.signal(doc, "reflowed", int(reflowed))
        return self.decide(Facts(doc))

    def decide(self, facts: Facts) -> str | None:
        s = facts.signals
        if not s["fineweb.lines"]:
            return "empty"
        rules: FineWebRules = self._rules.deciding(facts)
        punct_ratio = s["fineweb.line_punct_ratio"]
        if (
            rules.line_punct_thr is not None
            and punct_ratio < rules.line_punct_thr
            and not (punct_ratio == 0 and rules.line_punct_exclude_zero)
        ):
            return "line_punct_ratio"
        if rules.short_line_thr is not None and s["fineweb.short_line_ratio"] > rules.short_line_thr:
            return "short_line_ratio"
        if (
            rules.char_duplicates_ratio is not None
            and s["fineweb.char_dup_ratio"] > rules.char_duplicates_ratio
        ):
            return "char_dup_ratio"
        if rules.new_line_ratio is not None and s["fineweb.newline_ratio"] > rules.new_line_ratio:
            return "list_ratio"
        return None
