"""Gopher quality rules: one decision per rule, the CJK character-based variant, other languages' stop words."""

from __future__ import annotations

from stage_corpora import cmrc_paragraphs, english_web_docs, read_jsonl, wikitext_articles

from dataengine.stages import Document
from dataengine.stages.gopher_quality import GopherQuality, GopherQualityConfig, GopherQualityRules
from dataengine.stages.text_constants import STOP_WORDS

PROSE = (
    "The committee met on Tuesday to discuss the new budget for the library. Members agreed that the "
    "reading room should stay open later in the evening, and that the children's section needs more "
    "books. The chair said that the town would have to find the money with the help of local donors, "
    "and the treasurer promised to report back with a plan before the next meeting of the board."
)


def decide(text: str, lang: str | None = "en", **rules) -> tuple[str | None, dict]:
    cfg = GopherQualityConfig(default=GopherQualityRules(**rules)) if rules else GopherQualityConfig()
    doc = Document(text, lang=lang)
    return GopherQuality(cfg).process(doc), doc.signals


def test_plain_prose_passes_with_signals():
    rule, signals = decide(PROSE)
    assert rule is None
    assert signals["gopher.word_count"] >= 60
    assert 3 < signals["gopher.mean_word_length"] < 10
    assert signals["gopher.stop_words"] >= 4


def test_too_few_words():
    assert decide("The library opens at nine on weekdays.")[0] == "too_few_words"


def test_too_many_words():
    assert decide(PROSE, max_words=20)[0] == "too_many_words"


def test_mean_word_length_too_short_and_too_long():
    short = " ".join(["a an to of is it be"] * 12) + " the and with that have"
    assert decide(short)[0] == "mean_word_length"
    long = " ".join(["internationalization telecommunications"] * 30) + " the and of"
    assert decide(long)[0] == "mean_word_length"


def test_hash_ratio():
    tags = " ".join(f"#tag{i}" for i in range(60))
    assert decide(PROSE + "\n" + tags)[0] == "hash_ratio"


def test_ellipsis_ratio():
    teaser = " ".join(w + "..." if i % 5 == 0 else w for i, w in enumerate(PROSE.split()))
    assert decide(teaser)[0] == "ellipsis_ratio"


def test_bullet_lines():
    items = "\n".join(f"- {sentence.strip()}" for sentence in PROSE.split(". "))
    assert decide(items)[0] == "bullet_lines"


def test_ellipsis_lines():
    lines = "\n".join(s.strip() + " ..." for s in PROSE.split(". ") if s) + "\nThe end of the report."
    assert decide(lines, max_symbol_word_ratio=None)[0] == "ellipsis_lines"


def test_alpha_words():
    table = PROSE + "\n" + "\n".join(f"{i} | {i * 7} | {i * 13}.5 | {i * 2}%" for i in range(30))
    assert decide(table)[0] == "alpha_words"


def test_stop_words():
    keywords = " ".join(["cheap flights", "hotel deals", "car rental", "best price", "travel insurance"] * 12)
    assert decide(keywords)[0] == "stop_words"


def test_alpha_words_whitespace_split_keeps_number_dense_prose(corpus):
    """Wikipedia is dense in numbers and punctuation: DataTrove's token count rejects most of it."""
    articles = wikitext_articles(corpus)
    by_tokens = sum(decide(t)[0] == "alpha_words" for t in articles)
    by_whitespace = sum(decide(t, alpha_words_split="whitespace")[0] == "alpha_words" for t in articles)
    assert by_tokens > len(articles) / 2
    assert by_whitespace < len(articles) / 10


def test_other_languages_use_their_own_stop_words(corpus):
    spanish = read_jsonl(corpus / "langid" / "udhr2_docs.jsonl.gz")
    text = next(t for t in spanish if "Considerando que la libertad" in t)
    assert decide(text, lang="es")[0] is None
    assert decide(text, lang="en")[0] == "stop_words"  # DataTrove's English list would delete it
    rule, signals = decide(text, lang="xx")  # no list for the language: the rule cannot judge
    assert rule is None and signals["gopher.stop_words"] == -1


def test_chinese_paragraphs_use_characters_not_words(corpus):
    paragraphs = cmrc_paragraphs(corpus)[:300]
    stage = GopherQuality()
    kept = 0
    for text in paragraphs:
        doc = Document(text, lang="zh")
        kept += stage.process(doc) is None
        assert doc.signals["gopher.word_count"] >= len(text) / 2  # characters, not regex "words"
    assert kept / len(paragraphs) >= 0.97
    # the same paragraph judged by the English rules would lose on word count
    short_zh = next(t for t in paragraphs if len(Document(t).words) < 50)
    assert decide(short_zh, lang="zh")[0] is None
    assert decide(short_zh, lang="en")[0] is not None


def test_chinese_rules_reject_chinese_junk():
    assert decide("首页 新闻 体育 娱乐", lang="zh")[0] == "too_few_words"
    no_function_chars = "，".join(["北京烤鸭", "上海小笼包", "广州早茶", "成都火锅", "重庆小面"] * 8)
    assert decide(no_function_chars, lang="zh")[0] == "stop_words"


def test_english_web_text_mostly_passes(corpus):
    docs = english_web_docs(corpus)["guardian"]
    assert all(decide(t)[0] is None for t in docs)


def test_japanese_and_korean_count_their_own_function_characters(corpus):
    docs = {t[:40]: t for t in read_jsonl(corpus / "langid" / "udhr2_docs.jsonl.gz")}
    ja = next(t for t in docs.values() if "世界人権宣言" in t[:40])
    ko = next(t for t in docs.values() if "모든 인류 구성원" in t)
    for text, lang in ((ja, "ja"), (ko, "ko")):
        rule, signals = decide(text, lang=lang)
        assert rule is None
        assert signals["gopher.stop_words"] == len(set(STOP_WORDS[lang]).intersection(text)) >= 5


def test_classical_chinese_rules_and_by_lang_override(corpus):
    """lzh (recognised by language ID) drops the modern function-character rule and allows a quatrain;
    a by_lang override changes one language and keeps the rest of its variant."""
    poem = "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"
    assert decide(poem, lang="lzh")[0] is None
    assert decide(poem, lang="zh")[0] == "too_few_words"
    spanish = next(t for t in read_jsonl(corpus / "langid" / "udhr2_docs.jsonl.gz") if "Considerando" in t)
    cfg = GopherQualityConfig(by_lang={"es": {"max_words": 100}})
    doc = Document(spanish, lang="es")
    assert GopherQuality(cfg).process(doc) == "too_many_words"
    assert GopherQuality(cfg).process(Document(spanish, lang="pt")) is None
