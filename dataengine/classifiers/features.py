"""What a document classifier reads: one line of lower-cased tokens.

Spaced scripts give words (punctuation split off); CJK (Han, kana, Hangul) gives one token per
character, so fastText's word bigrams are character bigrams: the character n-grams CJK needs, with
no segmenter. Newlines stay as a token (line structure tells forums, lists and verse from prose).
"""

from __future__ import annotations

import re

import regex

MAX_CHARS = 6000  # the opening of a document decides; longer documents cost no more
_TOKEN = regex.compile(
    r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]"  # one CJK character
    r"|[\p{L}\p{M}\p{N}_]+"  # a word or number
    r"|\n"  # a line break
    r"|[^\s\p{L}\p{M}\p{N}]"  # one symbol
)
# `_TOKEN` restricted to ASCII text (no CJK, \p{L}\p{N} = letters and digits, regex's \s = these six),
# in the stdlib engine: three times faster on the ASCII openings that are most English documents.
_ASCII_TOKEN = re.compile(r"[A-Za-z0-9_]+|\n|[^\t\n\x0b\x0c\r A-Za-z0-9_]")
_DIGITS = regex.compile(r"\d")


def classifier_features(text: str, max_chars: int = MAX_CHARS) -> str:
    """The tokens of the text's opening, space-joined (digits folded to 0, newlines as `__nl__`)."""
    opening = _DIGITS.sub("0", text[:max_chars].lower())
    tokens = (_ASCII_TOKEN if opening.isascii() else _TOKEN).findall(opening)
    # no token but the newline itself contains "\n", so one replace names them all
    return " ".join(tokens).replace("\n", "__nl__")


_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")


def document_tokens(text: str) -> int:
    """A document's weight in token-weighted shares: whitespace words plus CJK characters (one pass:
    `subn` counts what it replaces; ASCII text has no CJK to look for)."""
    if text.isascii():
        return max(1, len(text.split()))
    spaced, n_cjk = _CJK.subn(" ", text)
    return max(1, n_cjk + len(spaced.split()))
