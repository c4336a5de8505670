"""FineWeb line rules: one decision per rule, CJK punctuation and line lengths."""

from __future__ import annotations

from stage_corpora import cmrc_paragraphs

from dataengine.stages import Document
from dataengine.stages.fineweb import FineWebConfig, FineWebQuality, FineWebRules

ARTICLE = [
    "The council voted on Monday to extend the bus service to the new housing estate on the hill.",
    "Residents had campaigned for two years, saying the nearest stop was a forty-minute walk away.",
    "The first buses will run in September, every twenty minutes during the morning and evening.",
    "A councillor said the route would be reviewed after six months to see how many people used it.",
]


def decide(text: str, lang: str = "en", **rules) -> tuple[str | None, dict]:
    cfg = FineWebConfig(default=FineWebRules(**rules)) if rules else FineWebConfig()
    doc = Document(text, lang=lang)
    return FineWebQuality(cfg).process(doc), doc.signals


def test_article_passes_with_signals():
    rule, signals = decide("\n".join(ARTICLE))
    assert rule is None
    assert signals["fineweb.line_punct_ratio"] == 1.0 and signals["fineweb.char_dup_ratio"] == 0.0


def test_line_punct_ratio():
    headlines = [line.rstrip(".") for line in ARTICLE] * 2
    headlines = [f"{h} ({i})" for i, h in enumerate(headlines)]
    assert decide("\n".join(headlines))[0] == "line_punct_ratio"
    assert decide("\n".join(headlines), line_punct_exclude_zero=True)[0] is None


def test_short_line_ratio():
    menu = ["Home", "News", "Sport", "Weather", "Contact us", ARTICLE[0]]
    assert decide("\n".join(menu), line_punct_thr=None)[0] == "short_line_ratio"


def test_char_dup_ratio():
    assert decide("\n".join(ARTICLE + [ARTICLE[0]]))[0] == "char_dup_ratio"


def test_list_ratio():
    items = [f"Item {i}." for i in range(20)]
    rule, signals = decide("\n".join(items), short_line_thr=None)
    assert rule == "list_ratio" and signals["fineweb.newline_ratio"] > 0.3


def test_empty():
    assert decide("\n \n")[0] == "empty"


def test_chinese_sentence_ends_include_closing_quotes():
    lines = [
        "他说：“今天的会议非常重要，请大家准时参加。”",
        "会议将在下午三点于三楼的大会议室开始。",
        "请各部门负责人提前准备好本季度的工作报告！",
    ]
    rule, signals = decide("\n".join(lines), lang="zh")
    assert rule is None and signals["fineweb.line_punct_ratio"] == 1.0
    # the English rules see a line ending in a quote as unterminated
    assert decide("\n".join(lines), lang="en")[1]["fineweb.line_punct_ratio"] < 1.0


def test_chinese_paragraphs_pass(corpus):
    paragraphs = [t for t in cmrc_paragraphs(corpus) if t.endswith("。")]
    stage = FineWebQuality()
    kept = sum(stage.process(Document(t, lang="zh")) is None for t in paragraphs)
    assert kept / len(paragraphs) >= 0.98
