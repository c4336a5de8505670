"""Gopher repetition rules: exact n-gram counting against a plain scan, one decision per rule, CJK."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from stage_corpora import cmrc_paragraphs, english_web_docs

from dataengine.stages import Document
from dataengine.stages.gopher_repetition import (
    GopherRepetition,
    GopherRepetitionConfig,
    GopherRepetitionRules,
)
from dataengine.stages.ngram_repeats import BatchRepeats


def scan_duplicated_chars(units: list[str], n: int) -> int:
    """Gopher's definition, written as the plain left-to-right scan."""
    seen, total, i = set(), 0, 0
    while i < len(units) - n + 1:
        gram = tuple(units[i : i + n])
        if gram in seen:
            total += sum(map(len, gram))
            i += n
        else:
            seen.add(gram)
            i += 1
    return total


def scan_top_chars(units: list[str], n: int, sep: str) -> int:
    grams = [sep.join(units[i : i + n]) for i in range(len(units) - n + 1)]
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count


def real_docs(data) -> list[Document]:
    web = english_web_docs(data)
    english = [Document(t, lang="en") for t in web["c4"] + web["cc_en_head"] + web["ewt"][:100]]
    chinese = [Document(t, lang="zh") for t in cmrc_paragraphs(data)[:100]]
    spam = Document("\n".join([web["c4"][0].split("\n")[0]] * 5 + web["c4"][1].split("\n")), lang="en")
    return english + chinese + [spam]


def test_ngram_counting_matches_the_plain_scan_on_real_text(corpus):
    """English and Chinese documents in one batch: each one's measures equal a plain scan of it alone."""
    docs = real_docs(corpus)
    repeats = BatchRepeats([d.unit_ids for d in docs], [d.unit_length_cumsum for d in docs])
    every = np.ones(len(docs), dtype=bool)
    separators = np.array([0 if d.is_cjk else 1 for d in docs])
    checked = 0
    for n in (2, 3, 4, 5, 6, 8, 10, 13):
        dup = repeats.duplicated_ngram_chars(n, every)
        top = repeats.top_ngram_chars(n, every, separators)
        for i, doc in enumerate(docs):
            if len(doc.units) < n:
                continue
            assert dup[i] == scan_duplicated_chars(doc.units, n)
            assert top[i] == scan_top_chars(doc.units, n, "" if doc.is_cjk else " ")
            checked += 1
    assert checked > 1000


def test_repeated_ngram_ids_are_exact():
    doc = Document("a b a b a b c a b c d")
    grams = doc.ngrams(2)
    positions, ids = BatchRepeats([doc.unit_ids], [doc.unit_length_cumsum]).level(2)
    assert positions.tolist() == [i for i, g in enumerate(grams) if grams.count(g) > 1]
    by_position = dict(zip(positions.tolist(), ids.tolist(), strict=True))
    assert all(
        (by_position[i] == by_position[j]) == (grams[i] == grams[j]) for i in by_position for j in by_position
    )
    assert BatchRepeats([doc.unit_ids], [doc.unit_length_cumsum]).level(6)[0].size == 0


@pytest.fixture(scope="module")
def lines(corpus) -> list[str]:
    """Distinct real sentences-long lines from C4 documents."""
    out = []
    for text in english_web_docs(corpus)["c4"]:
        out += [line for line in text.split("\n") if 60 < len(line) < 400 and line not in out]
    return out


def decide(text: str, lang: str = "en", **rules) -> str | None:
    cfg = (
        GopherRepetitionConfig(default=GopherRepetitionRules(**rules)) if rules else GopherRepetitionConfig()
    )
    return GopherRepetition(cfg).process(Document(text, lang=lang))


def test_real_article_passes(lines):
    assert decide("\n".join(lines[:20])) is None


def test_dup_para_frac(lines):
    text = "\n\n".join(lines[:3] + [lines[0]] * 2)
    assert decide(text) == "dup_para_frac"


def test_dup_para_char_frac(lines):
    text = "\n\n".join(lines[:8] + [lines[0]] * 2)
    assert decide(text, dup_para_frac=None) == "dup_para_char_frac"


def test_dup_line_frac(lines):
    text = "\n".join(lines[:3] + ["Home", "Home", "Home"])
    assert decide(text) == "dup_line_frac"


def test_dup_line_char_frac(lines):
    longest = max(lines[:6], key=len)
    text = "\n".join(lines[:6] + [longest] * 2)  # repeats >= 2/8 of the characters
    assert decide(text, dup_line_frac=None) == "dup_line_char_frac"


def test_top_2_gram(lines):
    text = lines[0] + " " + "buy now " * 40
    assert decide(text) == "top_2_gram"


def test_duplicated_5_n_grams(lines):
    text = lines[0] + " " + " ".join([lines[1]] * 3)
    assert decide(text, top_n_grams={}) == "duplicated_5_n_grams"


def test_repeated_line_spam_is_rejected(lines):
    spam = "\n".join(lines[i % 4] for i in range(40))
    assert decide(spam) is not None


def test_chinese_uses_character_ngrams(corpus):
    paragraphs = cmrc_paragraphs(corpus)
    stage = GopherRepetition()
    kept = sum(stage.process(Document(t, lang="zh")) is None for t in paragraphs)
    assert kept / len(paragraphs) >= 0.97
    doc = Document(paragraphs[0], lang="zh")
    stage.process(doc)
    assert "gopher_rep.dup_10_gram" in doc.signals and "gopher_rep.dup_5_gram" not in doc.signals
    sentence = paragraphs[0].split("。")[0] + "。"
    assert stage.process(Document(paragraphs[1] + sentence * 6, lang="zh")) is not None
