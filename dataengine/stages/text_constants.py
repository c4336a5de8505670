"""Character classes and word lists shared by the quality rules (English and CJK).

Kept in one place so that every rule agrees on what punctuation, a bullet, an
ellipsis or a stop word is. Sets are frozensets and patterns are precompiled.
"""

from __future__ import annotations

import regex

# A token made only of these characters is a symbol, not a word (Gopher's
# "non-symbol words"): all Unicode punctuation, symbols and control characters.
SYMBOL_CHAR = regex.compile(r"[\p{P}\p{S}\p{Cc}]")
SYMBOL_ONLY = regex.compile(SYMBOL_CHAR.pattern + "+")

# Sentence-final punctuation in every script (Unicode Sentence_Terminal: . ! ? 。 ！ ？ । ۔ ...),
# anchored at a line end: counts lines that end a sentence without splitting the text.
LINE_ENDS_WITH_TERMINAL = regex.compile(r"\p{Sentence_Terminal}$", regex.MULTILINE)
# CJK prose often closes a sentence inside quotes or brackets (。」 ！』 ？”) or with an ellipsis.
LINE_ENDS_WITH_CJK_TERMINAL = regex.compile(
    r"(?:\p{Sentence_Terminal}|…)[」』”’）)〕】》〉\"']*$", regex.MULTILINE
)

# Stop words: Gopher (Rae et al. 2021, appendix A) requires two of these eight English
# words; other languages get their own most frequent function words, and CJK gets function
# characters (particles, copulas), counted as characters because CJK units are characters.
STOP_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("the", "be", "to", "of", "and", "that", "have", "with"),
    "de": ("der", "die", "und", "in", "den", "von", "zu", "das", "mit", "sich", "des", "ist"),
    "fr": ("le", "la", "les", "de", "et", "des", "en", "du", "un", "une", "est", "que"),
    "es": ("el", "la", "de", "que", "y", "en", "los", "del", "se", "las", "por", "con"),
    "it": ("il", "di", "che", "la", "in", "un", "per", "del", "una", "con", "non", "sono"),
    "pt": ("de", "que", "do", "da", "em", "um", "para", "com", "os", "uma", "no", "não"),
    "nl": ("de", "het", "een", "en", "van", "is", "dat", "op", "te", "met", "voor", "zijn"),
    "ru": ("и", "в", "не", "на", "что", "с", "по", "как", "это", "он", "к", "из"),
    "pl": ("i", "w", "nie", "na", "się", "z", "do", "że", "to", "jest", "jak", "od"),
    "zh": (
        "的",
        "了",
        "是",
        "在",
        "和",
        "有",
        "也",
        "不",
        "这",
        "就",
        "都",
        "与",
        "为",
        "而",
        "之",
        "其",
        "於",
        "于",
    ),
    "ja": ("の", "に", "は", "を", "た", "が", "で", "て", "と", "し", "も", "な", "る", "か"),
    "ko": ("이", "가", "은", "는", "을", "를", "에", "의", "고", "다", "도", "로"),
}
# For a CJK language without its own list (yue, wuu, ...): any CJK function character.
ALL_CJK_STOP_CHARS = tuple(sorted({c for lang in ("zh", "ja", "ko") for c in STOP_WORDS[lang]}))

# Line starts that mark a list item.
BULLETS = ("•", "-")
CJK_BULLETS = ("•", "-", "·", "・", "●", "○", "■", "□", "◆", "◇", "★", "☆", "※")

# Whitespace inside a line: Unicode White_Space (regex's \s) except the line break. One compiled
# pattern: `regex.match(r"\s", c)` looked the pattern up in regex's cache 12,289 times (50 ms of start-up).
_SPACE = regex.compile(r"\s")
LINE_SPACES = "".join(c for c in map(chr, range(0x3001)) if c != "\n" and _SPACE.match(c))

# Ellipses: a line ending in one is usually a truncated teaser.
ELLIPSES = ("...", "…")

# C4: a kept line ends in one of these (and not in "...").
C4_END_PUNCTUATION = (".", "?", "!", '"', "'")
# (for CJK, quotes are closing marks that may follow the terminal punctuation, not terminals)
C4_CJK_END_PUNCTUATION = (".", "?", "!", "。", "！", "？", "…", "．", "｡")
# Closing quotes and brackets that may follow a CJK sentence end: 。」 ！』 ？” …）
CJK_CLOSING_MARKS = "」』”’）)〕】》〉\"'"
# Marks that always end a CJK sentence (full-width, and the half-width ideographic full stop ｡).
CJK_FULL_STOPS = "。！？｡"
# Periods that end a CJK sentence only in context (not in 2.5, U.S., www.example.com, ...): the ASCII
# period of half-width punctuation and the full-width period ． of some Chinese and Japanese text.
CJK_PERIODS = ".．"
# C4 drops lines that talk about site policies.
C4_POLICY_PHRASES = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
C4_CJK_POLICY_PHRASES = C4_POLICY_PHRASES + (
    "隐私政策",
    "隱私權政策",
    "隐私条款",
    "使用条款",
    "服务条款",
    "使用cookie",
    "プライバシーポリシー",
    "利用規約",
    "개인정보처리방침",
    "이용약관",
)
# Wikipedia-style citation marks and edit links, removed from lines before the checks.
C4_CITATION = regex.compile(
    r"\[\d*\]|\[edit\]|\[citation needed\]|\[编辑\]|\[編輯\]|\[來源請求\]|\[来源请求\]"
)
