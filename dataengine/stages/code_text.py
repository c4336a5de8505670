"""How code is shown to the code-vs-prose fastText model (shared by training and inference)."""

from __future__ import annotations

import regex

_SYMBOL = regex.compile(r"([^\w\s])")
MAX_CHARS = 4000


def code_features(text: str) -> str:
    """One line of space-separated tokens: symbols split out, newlines kept as a token."""
    spaced = _SYMBOL.sub(r" \1 ", text[:MAX_CHARS])
    return " ".join(spaced.replace("\n", " __nl__ ").split())
