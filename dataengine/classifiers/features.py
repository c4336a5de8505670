"""What a document classifier reads: one line of lower-cased tokens.

Spaced scripts give words (punctuation split off); CJK (Han, kana, Hangul) gives one token per
character, so fastText's word bigrams are character bigrams: the character n-grams CJK needs, with
no segmenter. Newlines stay as a token (line structure tells forums, lists and verse from prose).
"""

from __future__ import annotations

import regex

MAX_CHARS = 6000  # the opening of a document decides; longer documents cost no more
_TOKEN = regex.compile(
    r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]"  # one CJK character
    r"|[\p{L}\p{M}\p{N}_]+"  # a word or number
    r"|\n"  # a line break
    r"|[^\s\p{L}\p{M}\p{N}]"  # one symbol
)
_DIGITS = regex.compile(r"\d")


def classifier_features(text: str, max_chars: int = MAX_CHARS) -> str:
    """The tokens of the text's opening, space-joined (digits folded to 0, newlines as `__nl__`)."""
    tokens = _TOKEN.findall(_DIGITS.sub("0", text[:max_chars].lower()))
    return " ".join("__nl__" if t == "\n" else t for t in tokens)


_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")


def document_tokens(text: str) -> int:
    """A document's weight in token-weighted shares: whitespace words plus CJK characters."""
    return max(1, len(_CJK.findall(text)) + len(_CJK.sub(" ", text).split()))
