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
"""

from __future__ import annotations

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


def paragraph_groups(text: str) -> list[list[str]] | None:
    """The lines of a hard-wrapped text grouped into paragraphs (the breaks inside a group are soft),
    or None when the text does not look wrapped. Spaced scripts only: CJK wrapping has no spaces to
    tell a wrap from a break (see `Document`)."""
    if text.count("\n") <= MIN_SOFT_BREAKS:
        return None
    lines = text.split("\n")
    soft = soft_breaks(lines)
    if soft is None:
        return None
    joins = set(soft)
    groups: list[list[str]] = []
    start = 0
    for i in range(len(lines)):
        if i not in joins:  # line i ends a paragraph (or is a line of its own)
            groups.append(lines[start : i + 1])
            start = i + 1
    return groups


def join_paragraph(group: list[str]) -> str:
    """One paragraph's wrapped lines joined with one space (the outer edges of the paragraph kept)."""
    if len(group) == 1:
        return group[0]
    inner = (line.strip(_STRIP) for line in group[1:-1])
    return " ".join([group[0].rstrip(_STRIP), *inner, group[-1].lstrip(_STRIP)])
