"""The whole chain normalize -> langid -> gopher -> gopher_rep -> c4 -> fineweb on real data."""

from __future__ import annotations

from collections import Counter

import pytest
from stage_corpora import (
    boilerplate_docs,
    cmrc_paragraphs,
    english_web_docs,
    full_chain,
    gutenberg_english_passages,
    run_chain,
    wikitext_articles,
)

from dataengine.stages.gopher_quality import GopherQuality, GopherQualityConfig, GopherQualityRules


@pytest.fixture(scope="module")
def chain():
    return full_chain()


def kept_fraction(chain, texts: list[str]) -> tuple[float, Counter]:
    reasons = Counter(run_chain(chain, t)[1] for t in texts)
    return reasons[None] / len(texts), reasons


def test_chinese_wikipedia_paragraphs_are_kept(chain, corpus):
    paragraphs = cmrc_paragraphs(corpus, min_chars=200)
    fraction, reasons = kept_fraction(chain, paragraphs)
    print(f"CMRC paragraphs > 200 chars kept: {fraction:.3f} of {len(paragraphs)}", reasons.most_common(6))
    assert len(paragraphs) > 1000
    assert fraction >= 0.9
    assert not any(r and r.startswith("gopher:too_few_words") for r in reasons)


def test_kept_chinese_text_is_still_chinese_prose(chain, corpus):
    kept_shares = []
    for text in cmrc_paragraphs(corpus)[:100]:
        doc, reason = run_chain(chain, text)
        if reason is None:
            assert doc.lang == "zh"
            kept_shares.append(len(doc.text) / len(text.strip()))
    # C4's CJK trimming may cut an unterminated tail (e.g. a trailing list of aliases), never the body
    assert min(kept_shares) >= 0.3
    assert sum(share >= 0.5 for share in kept_shares) >= 0.95 * len(kept_shares)


def test_good_english_is_mostly_kept(chain, corpus):
    web = english_web_docs(corpus)
    sets = {
        "gutenberg": gutenberg_english_passages(corpus),
        "c4": web["c4"],
        "guardian": web["guardian"],
        "redpajama": web["redpajama"],
    }
    for name, texts in sets.items():
        fraction, reasons = kept_fraction(chain, texts)
        print(f"{name}: kept {fraction:.3f} of {len(texts)}", reasons.most_common(4))
        assert fraction >= 0.6, name
    assert kept_fraction(chain, sets["gutenberg"] + sets["c4"] + sets["guardian"])[0] >= 0.75


def test_wikipedia_is_kept_with_whitespace_alpha_words(corpus):
    """DataTrove's alpha-word count (punctuation counts as words) rejects most of WikiText; the paper's doesn't."""
    chain = full_chain()
    rules = GopherQualityRules(alpha_words_split="whitespace")
    chain[2] = GopherQuality(GopherQualityConfig(default=rules))
    fraction, reasons = kept_fraction(chain, wikitext_articles(corpus))
    print(f"wikitext kept {fraction:.3f}", reasons.most_common(4))
    assert fraction >= 0.75


def test_boilerplate_from_real_pages_is_rejected(chain, shared_data):
    """Junk cut from trafilatura's evaluation pages (third-party web pages, not bundled: extended tier)."""
    for name, texts in boilerplate_docs(shared_data).items():
        fraction, reasons = kept_fraction(chain, texts)
        print(f"{name}: {len(texts)} docs, kept {fraction:.3f}", reasons.most_common(4))
        assert len(texts) >= 50, name
        assert fraction <= 0.05, name


def test_repeated_line_spam_is_rejected(chain, corpus):
    lines = [line for t in english_web_docs(corpus)["c4"] for line in t.split("\n") if len(line) > 40]
    spam = ["\n".join(lines[k + (i % 3)] for i in range(30)) for k in range(0, 60, 3)]
    reasons = Counter(run_chain(chain, t)[1] for t in spam)
    print(reasons)
    assert reasons[None] == 0
    assert sum(n for r, n in reasons.items() if r.startswith("gopher_rep:")) >= 0.8 * len(spam)
    zh = cmrc_paragraphs(corpus)
    zh_spam = ["\n".join([zh[k].split("。")[0] + "。"] * 20 + [zh[k + 1]]) for k in range(20)]
    assert all(run_chain(chain, t)[1] is not None for t in zh_spam)
