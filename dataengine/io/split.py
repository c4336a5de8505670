"""Splitting long documents (whole books, long reports) into parts before the stages.

A whole book read as one document (`input.text_mode: file`, or a long JSONL record) has 50k-500k
words: Gopher rejects it whole (`too_many_words`, over 100k words) and the other rules, tuned on web
pages of a few thousand words, measure it at a scale they were not calibrated for (repetition
fractions grow with length). So a document of more than `input.split_words` words is cut at
paragraph breaks (blank lines; else line breaks; else spaces) into ceil(words / split_words) parts of
about equal size, each then judged as a document of its own.

Nothing is lost or rewritten: the parts are consecutive slices of the text (a cut falls at the start
of a paragraph), so joining them gives the text back. Part k of n gets id `<id>#<k>` and source
`<source>#part <k>/<n>`. A "word" is a whitespace-separated word, or two CJK characters (Gopher's
limits, 100k words and 200k CJK characters, in the same ratio).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

import regex

from dataengine.io.config import InputConfig

_PARAGRAPH_START = regex.compile(r"\n[^\S\n]*\n\s*(?=\S)")  # ends where the next paragraph begins
_LINE_START = regex.compile(r"\n\s*(?=\S)")
_WORD_START = regex.compile(r"\s+(?=\S)")
_WORD = regex.compile(r"\S+")
_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")


def word_count(text: str) -> float:
    """Whitespace words, a run of CJK characters counting half a word per character."""
    n_cjk = len(_CJK.findall(text))
    if not n_cjk:
        return len(text.split())
    no_cjk = _CJK.sub(" ", text)
    return len(no_cjk.split()) + n_cjk / 2


def _cut_points(text: str, n_parts: int, pattern: regex.Pattern) -> list[int]:
    """Up to n_parts - 1 offsets where `pattern` ends (a paragraph, line or word starts), each the one
    nearest to an equal share of the text's words; fewer when the text has fewer such places."""
    starts = [m.end() for m in pattern.finditer(text)]
    if not starts:
        return []
    # words before each candidate cut: non-CJK words (CJK characters blanked, same offsets) plus half
    # the CJK characters, counted once over the text
    cjk_at = [m.start() for m in _CJK.finditer(text)]
    word_ends = [m.end() for m in _WORD.finditer(_CJK.sub(" ", text) if cjk_at else text)]
    before = [bisect.bisect_right(word_ends, s) + bisect.bisect_left(cjk_at, s) / 2 for s in starts]
    total = len(word_ends) + len(cjk_at) / 2
    cuts: list[int] = []
    lo = 0
    for k in range(1, n_parts):
        target = total * k / n_parts
        i = bisect.bisect_left(before, target, lo)
        if i == len(before) or (i > lo and target - before[i - 1] < before[i] - target):
            i -= 1
        if i < lo:
            continue
        cuts.append(starts[i])
        lo = i + 1
        if lo >= len(starts):
            break
    return cuts


def split_text(text: str, max_words: int) -> list[str]:
    """The text as consecutive slices of at most about `max_words` words, cut at paragraph breaks
    (line breaks, then spaces, inside a paragraph longer than that); [text] when it is short enough."""
    words = word_count(text)
    if words <= max_words:
        return [text]
    n_parts = -(-int(words) // max_words)
    cuts = _cut_points(text, n_parts, _PARAGRAPH_START)
    parts = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    out: list[str] = []
    for part in parts:  # a paragraph (or run of paragraphs) still too long: cut at lines, then words
        if word_count(part) <= max_words * 1.5:
            out.append(part)
            continue
        for pattern in (_LINE_START, _WORD_START):
            n = -(-int(word_count(part)) // max_words)
            inner = _cut_points(part, n, pattern)
            if inner:
                pieces = [part[a:b] for a, b in zip([0, *inner], [*inner, len(part)], strict=True)]
                if max(map(word_count, pieces)) <= max_words * 1.5 or pattern is _WORD_START:
                    out += pieces
                    break
        else:
            out.append(part)
    return out


def split_rows(rows: Iterable[dict], cfg: InputConfig, counters: dict | None = None) -> Iterator[dict]:
    """Rows as read, a long document's row replaced by its parts (rejected rows pass unchanged).
    `counters` (e.g. RunStats.stage_counters) gets `input.split_documents` and `input.split_parts`."""
    limit = cfg.split_words
    for row in rows:
        text = row.get("text")
        if limit is None or row.get("reject") or not isinstance(text, str) or len(text) <= limit:
            yield row
            continue
        parts = split_text(text, limit)
        if len(parts) == 1:
            yield row
            continue
        if counters is not None:
            counters["input.split_documents"] += 1
            counters["input.split_parts"] += len(parts)
        n = len(parts)
        for k, part in enumerate(parts, 1):
            yield {
                **row,
                "text": part,
                "id": f"{row.get('id')}#{k}",
                "source": f"{row.get('source')}#part {k}/{n}",
            }
