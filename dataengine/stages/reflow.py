"""Re-flowing hard-wrapped text, so that line rules see paragraphs rather than wrapped lines.

Books and plain-text files (Project Gutenberg, RFCs, e-mail) are wrapped at a fixed width: one
sentence spreads over several lines of 60-80 characters, most of which end mid-sentence. Line
rules tuned on web text (FineWeb's share of lines ending a sentence, Gopher's ellipsis lines, C4's
words per line) then judge wrapped pieces instead of paragraphs and reject good prose.

A greedy wrapper breaks a line only where the next word would not fit in the width W, so at a
*soft* break the line is long (at least W/2) and its length plus a space plus the next line's first
word exceeds W (less a tolerance of 3 characters: wrappers differ). A real line break (a menu item, a list entry, the end of a paragraph, a short line
of verse) almost never has that property: "Home" + " News" fits easily. A text is re-flowed only
when it looks wrapped as a whole: the line widths have a ceiling W of at most `MAX_WRAP_WIDTH`
characters, at least half of the breaks between two non-blank lines are soft, and at most half of the soft
lines end a sentence (a wrapped line ends mid-sentence; a list of questions does not). Web text (one
paragraph per line, of any length; menus and lists of short lines) stays as it is, so its line
statistics are exactly those of DataTrove.

Only soft breaks are joined (with one space); blank lines, paragraph ends and short lines stay, so
the re-flowed text has one line per paragraph (or per verse line, heading, list entry).

CJK has no spaces to tell a wrap from a break, but two other things do. Its clause marks: a line
that ends in ，、；： (or half-width , ; :) stops mid-sentence, as in news or transcripts written one
clause a line (SIGHAN's Academia Sinica test file). And a fixed width: a CJK wrapper cuts after
exactly W characters (W ± 1 where it keeps punctuation off a line start), so when most breaks
follow a line of the text's most common length, those breaks are wraps. Such lines are joined to
the next (with nothing between), so that the line rules see the sentence instead of dropping
every piece that has no sentence end.
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import regex

from dataengine.stages.text_constants import ELLIPSES, LINE_SPACES

MIN_SOFT_BREAKS = 3  # fewer soft breaks than this: too little evidence of wrapping
MIN_SOFT_SHARE = 0.5  # share of breaks between two non-blank lines that must be soft
MAX_TERMINAL_SHARE = 0.5  # share of soft lines that may end a sentence (wrapped lines mostly do not)
MAX_WRAP_WIDTH = 120  # a ceiling wider than this is not a wrap width (web paragraphs)
MIN_WRAP_WIDTH = 30
WIDTH_QUANTILE = 0.9  # W: this quantile of the non-blank line lengths (a few wide lines ignored)
WIDTH_SLACK = 1.1  # lines up to W x this are still wrapped lines (the quantile is below the true width)
FIT_TOLERANCE = 3  # characters: wrappers differ (break before W, at W - 1, ragged re-wraps)
_STRIP = LINE_SPACES + "\r"
# A sentence end, possibly inside closing quotes or brackets: `end."` `end?”` `end.)`
ENDS_SENTENCE = regex.compile(r"\p{Sentence_Terminal}[\"'”’»)\]]*$")
LINE_ENDS_SENTENCE = regex.compile(ENDS_SENTENCE.pattern, regex.MULTILINE)  # counts such lines in a text
CJK_CLAUSE_MARKS = tuple("，、；：,;:")  # a CJK line ending in one of these goes on in the next line
MIN_CJK_WRAP_WIDTH = 20  # characters: narrower equal lines are verse, not a wrap
_SPACED_WORD_CHAR = regex.compile(r"[\p{Latin}\p{Greek}\p{Cyrillic}\p{Nd}]")


def _first_word_length(line: str) -> int:
    word = line.lstrip(_STRIP).split(maxsplit=1)
    return len(word[0]) if word else 0


def soft_breaks(lines: list[str]) -> list[int] | None:
    """Indices i whose break to line i + 1 is a wrap, or None when the text does not look wrapped."""
    lengths = [len(line.rstrip(_STRIP)) for line in lines]
    widths = sorted(n for n in lengths if n)
    if len(widths) <= MIN_SOFT_BREAKS:
        return None
    width = widths[int(WIDTH_QUANTILE * (len(widths) - 1))]
    if not MIN_WRAP_WIDTH <= width <= MAX_WRAP_WIDTH:
        return None
    ceiling = width * WIDTH_SLACK
    breaks = 0
    soft: list[int] = []
    for i in range(len(lines) - 1):
        n, following = lengths[i], lengths[i + 1]
        if not n or not following:
            continue
        breaks += 1
        if (
            width / 2 <= n <= ceiling
            and n + 1 + _first_word_length(lines[i + 1]) > width - FIT_TOLERANCE
            and not lines[i].rstrip(_STRIP).endswith(ELLIPSES)  # a truncated title, not a wrap
        ):
            soft.append(i)
    if len(soft) < MIN_SOFT_BREAKS or len(soft) < MIN_SOFT_SHARE * breaks:
        return None
    ending = sum(1 for i in soft if ENDS_SENTENCE.search(lines[i].rstrip(_STRIP)))
    if ending > MAX_TERMINAL_SHARE * len(soft):  # lines that are sentences of similar length
        return None
    return soft


def _cjk_wrap_width(lines: list[str], lengths: list[int], breaks: list[int]) -> int | None:
    """The width W a CJK text is wrapped at, or None. W is the most common line length; the text is
    wrapped at W when few lines are wider, enough breaks follow a line of W ± 1 characters, and those
    lines mostly end mid-sentence (lines that are sentences of similar length are not a wrap)."""
    counts = Counter(n for n in lengths if n >= MIN_CJK_WRAP_WIDTH)
    if not counts:
        return None
    width = counts.most_common(1)[0][0]
    wider = sum(1 for n in lengths if n > width + 1)
    if wider > (1 - WIDTH_QUANTILE) * sum(1 for n in lengths if n):
        return None
    at_width = [i for i in breaks if abs(lengths[i] - width) <= 1]
    if len(at_width) < MIN_SOFT_BREAKS or len(at_width) < MIN_SOFT_SHARE * len(breaks):
        return None
    ending = sum(1 for i in at_width if ENDS_SENTENCE.search(lines[i].rstrip(_STRIP)))
    return None if ending > MAX_TERMINAL_SHARE * len(at_width) else width


def cjk_breaks(lines: list[str]) -> list[int] | None:
    """Indices i of CJK lines that go on in line i + 1 (they end in a clause mark, or the text is
    wrapped at a fixed width and line i has that width); None when there are none."""
    lengths = [len(line.rstrip(_STRIP)) for line in lines]
    breaks = [i for i in range(len(lines) - 1) if lengths[i] and lines[i + 1].strip(_STRIP)]
    width = _cjk_wrap_width(lines, lengths, breaks)
    joins = [
        i
        for i in breaks
        if lines[i].rstrip(_STRIP).endswith(CJK_CLAUSE_MARKS)
        or (width is not None and abs(lengths[i] - width) <= 1)
    ]
    return joins or None


def paragraph_groups(text: str, cjk: bool = False) -> list[list[str]] | None:
    """The lines of a hard-wrapped text grouped into paragraphs (the breaks inside a group are soft),
    or None when the text does not look wrapped: for spaced scripts by the wrap width, for CJK by the
    clause marks at line ends and a fixed wrap width."""
    if cjk:
        if "\n" not in text:
            return None
        lines = text.split("\n")
        breaks = cjk_breaks(lines)
    else:
        if text.count("\n") <= MIN_SOFT_BREAKS:
            return None
        lines = text.split("\n")
        breaks = soft_breaks(lines)
    if breaks is None:
        return None
    joins = set(breaks)
    groups: list[list[str]] = []
    start = 0
    for i in range(len(lines)):
        if i not in joins:  # line i ends a paragraph (or is a line of its own)
            groups.append(lines[start : i + 1])
            start = i + 1
    return groups


def junction(left: str, right: str, cjk: bool = False) -> str:
    """What joins two wrapped lines of one paragraph: a space; in CJK nothing, unless a Latin word or
    a number ends the one and begins the other (a wrap at the space of "John H. McArthur")."""
    if not cjk:
        return " "
    spaced = left and right and _SPACED_WORD_CHAR.match(left[-1]) and _SPACED_WORD_CHAR.match(right[0])
    return " " if spaced else ""


def join_lines(lines: list[str], cjk: bool = False) -> str:
    """Wrapped lines (their edges already stripped) joined into their paragraph."""
    parts = [lines[0]]
    for left, right in pairwise(lines):
        parts += [junction(left, right, cjk), right]
    return "".join(parts)


def join_paragraph(group: list[str], cjk: bool = False) -> str:
    """One paragraph's wrapped lines joined (the outer edges of the paragraph kept)."""
    if len(group) == 1:
        return group[0]
    inner = [line.strip(_STRIP) for line in group[1:-1]]
    return join_lines([group[0].rstrip(_STRIP), *inner, group[-1].lstrip(_STRIP)], cjk)
