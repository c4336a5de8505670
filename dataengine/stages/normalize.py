"""Unicode normalization: one canonical form, no control characters, tidy whitespace.

Every later rule counts characters, lines and blank lines, so they must see
one spelling of each: NFC (or NFKC) composed text, `\n` line ends, single
interior spaces, no trailing spaces and at most a few blank lines in a row.
Leading indentation is kept (code and poetry rely on it).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

import regex
from pydantic import BaseModel, ConfigDict, Field

from dataengine.stages.base import Facts, Stage
from dataengine.stages.document import Document

_LINE_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
# Invisible characters with no meaning in running text: byte-order marks, zero-width space,
# soft hyphen, and the noncharacters U+FFFE/U+FFFF.
_INVISIBLE = "\ufeff\u200b\u00ad\ufffe\uffff"
# Unicode space separators (category Zs) other than the ASCII space: no-break, en/em, ideographic...
_SPACES = "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"


def _translation_table() -> dict[int, str | None]:
    """One `str.translate` pass: line breaks -> \\n, exotic spaces -> ' ', controls and invisibles removed."""
    table: dict[int, str | None] = {}
    for code in [*range(0x00, 0x20), *range(0x7F, 0xA0)]:
        if chr(code) not in "\n\t":
            table[code] = None
    for code in range(0xD800, 0xE000):
        table[code] = None  # lone surrogates cannot be encoded as UTF-8
    for ch in _SPACES:
        table[ord(ch)] = " "
    for ch in _INVISIBLE:
        table[ord(ch)] = None
    for ch in _LINE_BREAKS:
        table[ord(ch)] = "\n"
    return table


def _character_class(codes: list[int]) -> str:
    """A regular-expression class matching exactly these code points (runs written as ranges)."""
    runs: list[list[int]] = []
    for code in sorted(codes):
        if runs and code == runs[-1][1] + 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return "[" + "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in runs) + "]"


_TABLE = _translation_table()
# Few texts hold any character of the table: a scan for one is far cheaper than `translate`.
_NEEDS_TABLE = re.compile(_character_class(list(_TABLE)))
# MediaWiki language-conversion markup, common in Chinese Wikipedia dumps:
# -{zh-hans:计算机;zh-hant:電腦}-  or  -{T|标题}-  or  -{原文}-  (only in text with Han characters,
# so that code is never rewritten)
_WIKI_CONVERSION = regex.compile(r"-\{(?:[A-Za-z]\|)?([^{}]*)\}-")
_WIKI_VARIANT = regex.compile(r"(zh(?:-[a-z]+)?)\s*:\s*([^;]*)")
_HAN = regex.compile(r"\p{Han}")
_PREFERRED_VARIANTS = ("zh-hans", "zh-cn", "zh", "zh-sg", "zh-hant", "zh-tw", "zh-hk")


def _resolve_wiki_conversion(match: regex.Match) -> str:
    """The simplified-Chinese variant of a conversion block, else its plain content."""
    body = match.group(1)
    variants = {k: v.strip() for k, v in _WIKI_VARIANT.findall(body)}
    if not variants:
        return body
    return next((variants[k] for k in _PREFERRED_VARIANTS if k in variants), next(iter(variants.values())))


_TRAILING_SPACE = regex.compile(r"[ \t]+$", regex.MULTILINE)
_INTERIOR_SPACES = regex.compile(r"(?<=\S) {2,}")


class NormalizeConfig(BaseModel):
    """Unicode form and whitespace policy."""

    model_config = ConfigDict(extra="forbid")

    form: Literal["NFC", "NFKC"] = "NFC"
    collapse_spaces: bool = True
    max_blank_lines: int = Field(2, ge=0, description="longest run of empty lines kept")
    resolve_wiki_conversion: bool = Field(
        True, description="replace MediaWiki -{zh-hans:…;zh-hant:…}- markup by one variant"
    )


class Normalizer(Stage):
    """Rewrites the text to its normal form; rejects a document with nothing left ("empty")."""

    name = "normalize"
    config_class = NormalizeConfig

    def __init__(self, cfg: NormalizeConfig | None = None):
        super().__init__()
        self.cfg = cfg or NormalizeConfig()
        self._blank_run = regex.compile(rf"\n{{{self.cfg.max_blank_lines + 2},}}")
        self._blank_repl = "\n" * (self.cfg.max_blank_lines + 1)

    def normalize(self, text: str) -> str:
        text = text.replace("\r\n", "\n")
        if _NEEDS_TABLE.search(text):
            text = text.translate(_TABLE)
        if self.cfg.resolve_wiki_conversion and "-{" in text and _HAN.search(text):
            text = _WIKI_CONVERSION.sub(_resolve_wiki_conversion, text)
        if not unicodedata.is_normalized(self.cfg.form, text):
            text = unicodedata.normalize(self.cfg.form, text)
            if self.cfg.form == "NFKC":  # NFKC maps some characters to spaces or controls again
                text = text.translate(_TABLE)
        text = _TRAILING_SPACE.sub("", text)
        if self.cfg.collapse_spaces and "  " in text:
            text = _INTERIOR_SPACES.sub(" ", text)
        text = self._blank_run.sub(self._blank_repl, text)
        return text.lstrip("\n").rstrip()

    def process(self, doc: Document) -> str | None:
        original = doc.text
        text = self.normalize(original)
        self.signal(doc, "changed", text != original)
        self.signal(doc, "chars_removed", len(original) - len(text))
        self.signal(doc, "chars", len(text))
        if text != original:
            doc.set_text(text)
        return self.decide(Facts(doc))

    def decide(self, facts: Facts) -> str | None:
        return "empty" if not facts.signals["normalize.chars"] else None
