"""C4 line cleaning and document rules, English (DataTrove's defaults) and CJK."""

from __future__ import annotations

from stage_corpora import cmrc_paragraphs

from dataengine.stages import Document
from dataengine.stages.c4 import C4Config, C4Quality, count_cjk_sentences, count_sentences, ends_sentence
from dataengine.stages.text_constants import C4_CJK_END_PUNCTUATION, CJK_CLOSING_MARKS

SENTENCES = [
    "The museum reopened on Saturday after two years of repairs.",
    "Visitors queued along the river to see the restored paintings.",
    "The director thanked the volunteers who cleaned the frames by hand.",
    "Tickets for the summer exhibition go on sale next week.",
    "Entry remains free for children under twelve.",
    "The café on the top floor will open in June.",
]


def clean(text: str, lang: str = "en", cfg: C4Config | None = None) -> tuple[str | None, Document]:
    doc = Document(text, lang=lang)
    return C4Quality(cfg).process(doc), doc


def test_clean_article_is_kept_unchanged():
    rule, doc = clean("\n".join(SENTENCES))
    assert rule is None and doc.text == "\n".join(SENTENCES)
    assert doc.signals["c4.lines_kept"] == 6 and doc.signals["c4.sentences"] == 6


def test_menu_lines_without_punctuation_and_short_lines_are_dropped():
    text = "\n".join(["Home", "About us", "Contact", *SENTENCES, "Read more", "Quite so."])
    rule, doc = clean(text)
    assert rule is None
    assert doc.text == "\n".join(SENTENCES)
    assert doc.signals["c4.dropped_no_terminal_punct"] == 4
    assert doc.signals["c4.dropped_too_few_words"] == 1


def test_javascript_and_policy_lines_are_dropped():
    text = "\n".join(
        [
            *SENTENCES,
            "Please enable JavaScript to view the comments.",
            "By using this site you accept our privacy policy.",
        ]
    )
    rule, doc = clean(text)
    assert rule is None and doc.text == "\n".join(SENTENCES)
    assert doc.signals["c4.dropped_javascript"] == 1 and doc.signals["c4.dropped_policy"] == 1


def test_citations_are_removed():
    rule, doc = clean("\n".join(SENTENCES[:5]) + "\nThe building dates from 1870.[3][citation needed]")
    assert rule is None and doc.text.endswith("dates from 1870.")


def test_lorem_ipsum_rejects_the_document():
    assert (
        clean("\n".join([*SENTENCES, "Lorem ipsum dolor sit amet, consectetur adipiscing elit."]))[0]
        == "lorem_ipsum"
    )


def test_curly_bracket_rejects_the_document():
    assert clean("\n".join([*SENTENCES, "function f() { return window.location; }."]))[0] == "curly_bracket"


def test_too_few_sentences():
    assert clean("\n".join(SENTENCES[:3]))[0] == "too_few_sentences"


def test_line_with_a_huge_word_is_dropped():
    rule, doc = clean("\n".join([*SENTENCES, "Data: " + "x" * 1200 + "."]))
    assert rule is None and doc.signals["c4.dropped_long_word"] == 1


def test_sentence_counting():
    assert (
        count_sentences(
            ["Mr. Smith met Dr. Jones at 9 a.m. in the U.S. office. They talked. Why? Nobody knows!"]
        )
        == 4
    )
    assert count_sentences(["It was late... we left."]) == 1
    # lines are counted apart: a break never spans two lines, trailing space or not
    assert count_sentences(["One line ends.", "Next line [1] ", "", "Last! Done."]) == 4
    assert count_cjk_sentences("今天下雨了。我们没有出门！你呢？还在家") == 4


def test_chinese_paragraph_keeps_its_finished_sentences(corpus):
    """A zh paragraph is one line; its cut-off tail goes, its sentences stay (C4 would drop the paragraph)."""
    unfinished = [
        t for t in cmrc_paragraphs(corpus) if not ends_sentence(t, C4_CJK_END_PUNCTUATION, CJK_CLOSING_MARKS)
    ]
    paragraphs = [t for t in unfinished if t.count("。") >= 4][:50]
    assert paragraphs
    for text in paragraphs:
        rule, doc = clean(text, lang="zh")
        if rule is None:
            assert text.startswith(doc.text) and len(doc.text) < len(text)
            assert ends_sentence(doc.text, C4_CJK_END_PUNCTUATION, CJK_CLOSING_MARKS)
    kept = sum(clean(t, lang="zh")[0] is None for t in paragraphs)
    assert kept / len(paragraphs) >= 0.85
    # the English rules would have dropped the only line, and the document with it
    assert all(clean(t, lang="en")[0] == "too_few_sentences" for t in paragraphs[:10])


def test_chinese_closing_quotes_and_character_counts():
    text = "\n".join(
        [
            "首页",
            "他说：“今天的会议很重要。”",
            "会议在下午三点开始。",
            "大家都准时到了会场。",
            "会上讨论了明年的计划！",
        ]
    )
    rule, doc = clean(text, lang="zh")
    assert rule is None
    assert doc.text.split("\n")[0] == "他说：“今天的会议很重要。”"
    assert doc.signals["c4.dropped_no_terminal_punct"] == 1


def test_chinese_policy_line_is_dropped():
    text = (
        "我们的网站使用cookie以提升体验，继续浏览即表示同意隐私政策。\n"
        + "这是一段正常的中文文字。今天天气很好。我们去公园散步。"
    )
    rule, doc = clean(text, lang="zh")
    assert rule is None and "隐私政策" not in doc.text and doc.signals["c4.dropped_policy"] == 1
