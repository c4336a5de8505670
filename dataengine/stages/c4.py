"""C4 line cleaning and document rules (Raffel et al. 2020), CJK-aware.

Keeps only lines that end in terminal punctuation, have enough words, and do
not mention javascript or site policies; drops the whole document on "lorem
ipsum" or a curly bracket, or when fewer than `min_sentences` sentences are
left. Defaults are DataTrove's C4QualityFilter. For CJK, terminal punctuation
includes 。！？… and closing quotes, the per-line minimum counts characters,
sentences are counted by their end marks (CJK sentences need no space after),
and a line (often a whole paragraph) with an unterminated tail is cut back to
its last sentence end instead of being dropped. CJK text is read in both
punctuation styles: full-width 。！？ and half-width . ! ? directly followed by
the next sentence (as in Chinese paper abstracts), where a half-width period
inside a number (2.5, 1.2.3), an abbreviation or initials (Dr., U.S., J.K.),
a URL or file name (www.example.com, a.py), a list number (1.) or an ellipsis
(...) ends nothing.
The surviving lines replace the text (`doc.set_text`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import regex
from pydantic import BaseModel, ConfigDict, Field

from dataengine.stages.base import Facts, Stage
from dataengine.stages.by_lang import ByLangRules, RulesByLang, by_lang_field
from dataengine.stages.document import CJK_LANGS, Document
from dataengine.stages.reflow import join_lines, junction
from dataengine.stages.text_constants import (
    C4_CITATION,
    C4_CJK_END_PUNCTUATION,
    C4_CJK_POLICY_PHRASES,
    C4_END_PUNCTUATION,
    C4_POLICY_PHRASES,
    CJK_CLOSING_MARKS,
    CJK_FULL_STOPS,
    CJK_PERIODS,
    LINE_SPACES,
)

# Abbreviations whose period does not end a sentence (a short stand-in for Punkt's learned list).
_ABBREVIATIONS = (
    "mr|mrs|ms|dr|prof|st|jr|sr|vs|etc|e\\.g|i\\.e|inc|ltd|co|corp|no|fig|approx|dept|gen|gov|sen|rep"
    "|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|u\\.s|a\\.m|p\\.m"
)
# A sentence ends at ? or ! or a single period (not an ellipsis, an abbreviation or an
# initial such as "H.") followed by optional closing quotes and a space. An abbreviation or initial
# stands alone: a letter after a digit or an apostrophe ends a word ("the 1980s.", "didn't.").
_SENTENCE_BREAK = regex.compile(
    r"(?<!(?<![\p{L}\p{M}\p{N}.'’])(?:"
    + _ABBREVIATIONS
    + r"|\p{L}))(?:(?<!\.)\.(?!\.)|[?!]+)[\"'”’)\]]*\s+(?=\S)",
    regex.IGNORECASE,
)
_CJK_LETTER = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
_CLOSE = regex.escape(CJK_CLOSING_MARKS)
_FULL_STOPS = regex.escape(CJK_FULL_STOPS)
_PERIODS = regex.escape(CJK_PERIODS)
# A sentence end in CJK text, then the closing marks after it. Full-width 。！？ always end one. Half-width
# ! ? end one after a CJK character or closing mark, or when no ASCII word or URL query (?id=1) goes on.
# A period (. or ．) ends one after a CJK character or closing mark unless lower-case ASCII follows (a file
# name such as 报告.docx) or it is part of an ellipsis; after anything else (ASCII words, digits) only when
# no letter, digit or period follows (so 2.5, www.example.com and a.py never split), and then not after an
# abbreviation, initials (U.S., e.g., J.K.), a single letter before a space (J. Smith) or a list number
# at the start of the line or after a space or punctuation (1. 2.), though 3.14. ends one.
_CJK_SENTENCE_END = regex.compile(
    rf"""
    (?=[{_FULL_STOPS}{_PERIODS}!?])  # (fails fast where no end mark is)
    (?:[{_FULL_STOPS}][{_FULL_STOPS}!?]*[{_CLOSE}]*
  | (?<=[{_CJK_LETTER}{_CLOSE}])[!?]+[{_CLOSE}]*
  | [!?]+[{_CLOSE}]*+(?![A-Za-z0-9_=&/])
  | (?<![{_PERIODS}…])(?<=[{_CJK_LETTER}{_CLOSE}])[{_PERIODS}](?![{_PERIODS}])[{_CLOSE}]*+(?![a-z{_PERIODS}])
  | (?<![{_PERIODS}…{_CJK_LETTER}{_CLOSE}])
    (?<!(?<![A-Za-z])(?i:{_ABBREVIATIONS}))
    (?<![A-Za-z][{_PERIODS}][A-Za-z])
    (?<!(?:^|[\s\p{{P}}])(?<!\d[{_PERIODS},])\d{{1,3}})
    [{_PERIODS}](?![{_PERIODS}])[{_CLOSE}]*+
    (?:(?=\s)(?<!(?<![A-Za-z])[A-Za-z][{_PERIODS}][{_CLOSE}]*)|(?=$|[{_CJK_LETTER}\p{{P}}\p{{S}}])(?![{_PERIODS},;:，；：、])))
    """,
    regex.VERBOSE,
)
# End marks that need the text around them to tell whether they end a CJK sentence.
_CONTEXT_MARKS = frozenset(CJK_PERIODS + "!?")
_CJK_OR_SPACE = r"\s\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{P}"


def ends_sentence(line: str, end_punct: tuple[str, ...], closers: str = "") -> bool:
    """C4's test: the line ends in terminal punctuation (then maybe closing marks), not in "..."."""
    core = line.rstrip(closers) if closers else line
    return core.endswith(end_punct) and not core.endswith("...")


def trim_to_last_sentence_end(
    line: str, end_punct: tuple[str, ...], closers: str = "", cjk: bool = False
) -> str:
    """The line up to its last sentence end (with the closing marks after it), or "" if none.

    A CJK paragraph is one long line; when only its tail is unterminated (cut
    off, or a caption), the finished sentences before it are kept. With `cjk`, a
    half-width . ! ? (or ．) is a cut only where it ends a CJK sentence (not in
    2.5, U.S. or www.example.com).
    """
    cut = len(line)
    while cut > 0:
        cut = max(line.rfind(p, 0, cut) + len(p) for p in end_punct)
        if cut <= 0:
            return ""
        if line.endswith("..", 0, cut):  # an ellipsis is not a sentence end: look before it
            cut = len(line[:cut].rstrip("."))
            continue
        if cjk and line[cut - 1] in _CONTEXT_MARKS and not _CJK_SENTENCE_END.match(line, cut - 1):
            cut -= 1
            continue
        stop = cut
        while stop < len(line) and line[stop] in closers:
            stop += 1
        candidate = line[:stop].rstrip()
        if ends_sentence(candidate, end_punct, closers):
            return candidate
        cut -= 1
    return ""


def count_sentences(lines: list[str]) -> int:
    """Sentences in lines of spaced text: each non-empty line is one, plus one per break after . ? !
    followed by space (not after an abbreviation). One scan for all lines: a break needs space and
    then a non-space, so with trailing space cut, no break can span the NUL that joins two lines."""
    joined = "\x00".join(line.rstrip(LINE_SPACES) for line in lines)
    return sum(1 for line in lines if line) + len(_SENTENCE_BREAK.findall(joined))


def cjk_sentence_ends(line: str) -> list[int]:
    """Offsets in a CJK line just after each sentence end (and the closing marks after it)."""
    return [m.end() for m in _CJK_SENTENCE_END.finditer(line)]


def count_cjk_sentences(line: str) -> int:
    """Sentences in a CJK line: its sentence ends (full-width 。！？ runs, or half-width . ! ? read in
    context: not in 2.5, U.S., www.example.com, a list number or an ellipsis), plus an unterminated tail."""
    ends = cjk_sentence_ends(line)
    tail = line[ends[-1] :].strip() if ends else line.strip()
    return len(ends) + (1 if tail else 0)


def wrapped_paragraphs(doc: Document) -> list[tuple[str, list[str]]] | None:
    """A hard-wrapped document (`Document.paragraph_groups`) as (paragraph, its wrapped lines) pairs, the
    paragraph its stripped lines joined (`reflow.join_lines`); None when the text does not look wrapped."""
    groups = doc.paragraph_groups
    if groups is None:
        return None
    return [(join_lines([line.strip() for line in group], doc.is_cjk), group) for group in groups]


def _pieces_of(line: str, pieces: list[str], cjk: bool) -> list[str]:
    """The wrapped pieces that make up `line` (their join, possibly cut back to a sentence end): a
    paragraph trimmed to its last sentence keeps its own line breaks up to the cut."""
    out: list[str] = []
    end = 0
    for k, piece in enumerate(pieces):
        if k:
            end += len(junction(pieces[k - 1], piece, cjk))
        if end >= len(line):
            break
        out.append(piece[: len(line) - end].rstrip())
        end += len(piece)
    return [piece for piece in out if piece]


def _curly_line(line: str, wrapped: list[str] | None, rules: C4Rules) -> bool:
    """Whether a kept line with "{" in spaced text rejects the document (a CJK sentence with "{" always
    does, joined from clause lines or not). In a wrapped paragraph, only a line that C4
    would keep on its own (enough words, a sentence end where the rule is on) counts: code or JSON in
    an RFC ("{" alone, `"items": {`) is dropped line by line, as DataTrove does, not read as prose."""
    if wrapped is None:
        return True
    end_punct, closers = tuple(rules.end_punctuation), rules.closing_marks
    return any(
        "{" in piece
        and len(piece.split()) >= rules.min_words_per_line
        and (not rules.filter_no_terminal_punct or ends_sentence(piece.strip(), end_punct, closers))
        for piece in wrapped
    )


class C4Rules(BaseModel):
    """Thresholds of one script family (-1 or False turns a rule off)."""

    model_config = ConfigDict(extra="forbid")

    remove_citations: bool = True
    filter_no_terminal_punct: bool = True
    min_sentences: int = 5
    min_words_per_line: int = Field(3, description="words, or characters for CJK")
    max_word_length: int = Field(
        1000, description="a line with a longer word (run without spaces) is dropped"
    )
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True
    trim_unterminated_tail: bool = Field(
        False, description="cut a line back to its last sentence end instead of dropping it (CJK paragraphs)"
    )
    end_punctuation: list[str] = Field(default_factory=lambda: list(C4_END_PUNCTUATION))
    closing_marks: str = Field("", description="quotes/brackets that may follow the terminal punctuation")
    policy_phrases: list[str] = Field(default_factory=lambda: list(C4_POLICY_PHRASES))

    # every other setting decides which lines survive, which the signals and the text depend on
    THRESHOLDS: ClassVar[frozenset[str]] = frozenset({"min_sentences"})


def _cjk_rules() -> C4Rules:
    return C4Rules(
        min_sentences=3,
        min_words_per_line=5,
        trim_unterminated_tail=True,
        end_punctuation=list(C4_CJK_END_PUNCTUATION),
        closing_marks=CJK_CLOSING_MARKS,
        policy_phrases=list(C4_CJK_POLICY_PHRASES),
    )


class C4Config(ByLangRules):
    """English (and other spaced languages) rules, the CJK rules, per-language overrides (`by_lang`).
    Classical Chinese (lzh): verse lines end in ， or nothing, and one sentence
    (Gopher's 20-character floor judges the length)."""

    model_config = ConfigDict(extra="forbid")
    BUILTIN_BY_LANG = {
        "lzh": {"filter_no_terminal_punct": False, "min_sentences": 1, "min_words_per_line": 3}
    }

    default: C4Rules = Field(default_factory=C4Rules)
    cjk: C4Rules = Field(default_factory=_cjk_rules)
    by_lang: dict[str, dict[str, Any]] = by_lang_field(BUILTIN_BY_LANG)


class C4Quality(Stage):
    """Signals: lines, lines_kept, sentences, lines_trimmed, and dropped-line counts per reason
    (dropped_long_word, dropped_no_terminal_punct, dropped_too_few_words, dropped_javascript,
    dropped_policy), reflowed (1 when the text is hard-wrapped), lorem_ipsum and curly_bracket (1 when
    that line stopped the reading). Document rules: lorem_ipsum, curly_bracket, too_few_sentences.

    A hard-wrapped text (a book, a plain-text file: `Document.reflowed_text` differs from the text)
    is judged one paragraph at a time: the line rules (words per line, terminal punctuation, long
    words, javascript, policy) read each paragraph joined from its wrapped lines, and a kept
    paragraph is written as its own lines, so the text keeps its wrapping and the short last line
    of a paragraph ("said he.") is not dropped on its own.
    The `dropped_*`, `lines` and `lines_kept` counts are then of paragraphs. CJK written one clause a
    line (lines ending in ，、；：) is judged the same way, a sentence at a time, and a sentence cut back
    to its last sentence end keeps its own line breaks up to the cut. Web text is judged line by line,
    as DataTrove does. Spaced text's sentences are counted on the lines written out, as DataTrove
    counts them (each line, plus the breaks inside it): on paragraphs, 8k-character chunks of
    unpunctuated prose (the end of Joyce's Ulysses) count 3 and were lost. CJK sentences are counted
    on the joined sentences (a clause line is not a sentence)."""

    name = "c4"
    config_class = C4Config
    prose_only = True
    decision_keys = C4Rules.THRESHOLDS | {"by_category"}

    def __init__(self, cfg: C4Config | None = None):
        super().__init__()
        self.cfg = cfg or C4Config()
        self._rules = RulesByLang(self.cfg)
        self._long_word = {
            key: regex.compile(
                rf"[^{_CJK_OR_SPACE}]{{{r.max_word_length + 1},}}"
                if key == "cjk" or key in CJK_LANGS
                else rf"\S{{{r.max_word_length + 1},}}"
            )
            for key, r in self._rules.all().items()
        }

    def process(self, doc: Document) -> str | None:
        cjk = doc.is_cjk
        key = self._rules.key(doc)
        rules: C4Rules = self._rules.named(key)
        end_punct = tuple(rules.end_punctuation)
        policy = tuple(rules.policy_phrases)
        closers = rules.closing_marks
        long_word = self._long_word[key] if rules.max_word_length != -1 else None
        dropped = dict.fromkeys(
            ("long_word", "no_terminal_punct", "too_few_words", "javascript", "policy"), 0
        )
        kept: list[str] = []  # lines written out
        kept_units: list[str] = []  # the lines or joined paragraphs they came from
        trimmed = 0
        rule: str | None = None
        paragraphs = wrapped_paragraphs(doc)
        units = paragraphs or [(line, None) for line in doc.text.splitlines()]
        for raw, wrapped in units:
            line = raw.strip()
            if long_word is not None and long_word.search(line):
                dropped["long_word"] += 1
                continue
            n_words = len(line) - line.count(" ") if cjk else len(line.split())
            pieces = None if wrapped is None else [piece.strip() for piece in wrapped]
            if rules.remove_citations:
                line = C4_CITATION.sub("", line)
                if pieces is not None:
                    pieces = [C4_CITATION.sub("", piece) for piece in pieces]
                    line = join_lines(pieces, cjk)
            if rules.filter_no_terminal_punct and not ends_sentence(line, end_punct, closers):
                trim = rules.trim_unterminated_tail
                line = trim_to_last_sentence_end(line, end_punct, closers, cjk) if trim else ""
                if not line:
                    dropped["no_terminal_punct"] += 1
                    continue
                trimmed += 1
            if n_words < rules.min_words_per_line:
                dropped["too_few_words"] += 1
                continue
            lower = line.lower()
            if rules.filter_lorem_ipsum and "lorem ipsum" in lower:
                rule = "lorem_ipsum"
                break
            if rules.filter_javascript and "javascript" in lower:
                dropped["javascript"] += 1
                continue
            if rules.filter_curly_bracket and "{" in line and (cjk or _curly_line(line, wrapped, rules)):
                rule = "curly_bracket"
                break
            if rules.filter_policy and any(p in lower for p in policy):
                dropped["policy"] += 1
                continue
            kept_units.append(line)
            kept.extend([line] if pieces is None else _pieces_of(line, pieces, cjk))

        # sentences are counted whatever min_sentences is, and the surviving lines replace the text also
        # when too few are left: `decide` under another min_sentences then sees what a run would have
        if rule is None:
            n_sentences = sum(map(count_cjk_sentences, kept_units)) if cjk else count_sentences(kept)
            text = "\n".join(kept).strip()
            if text != doc.text:
                doc.set_text(text)
        else:  # the loop stopped at the line that rejects the document: its lines were not all read
            n_sentences = 0
        self.signal(doc, "lines", len(units))
        self.signal(doc, "lines_kept", len(kept_units))
        self.signal(doc, "reflowed", int(paragraphs is not None))
        self.signal(doc, "sentences", n_sentences)
        self.signal(doc, "lines_trimmed", trimmed)
        for reason, count in dropped.items():
            self.signal(doc, f"dropped_{reason}", count)
        self.signal(doc, "lorem_ipsum", int(rule == "lorem_ipsum"))
        self.signal(doc, "curly_bracket", int(rule == "curly_bracket"))
        return self.decide(Facts(doc))

    def decide(self, facts: Facts) -> str | None:
        s = facts.signals
        if s["c4.lorem_ipsum"]:
            return "lorem_ipsum"
        if s["c4.curly_bracket"]:
            return "curly_bracket"
        min_sentences = self._rules.deciding(facts).min_sentences
        if min_sentences != -1 and s["c4.sentences"] < min_sentences:
            return "too_few_sentences"
        return None
