"""Bad-word toxicity filter: real clean English and Chinese text passes, text with planted bad words does not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from stage_corpora import read_jsonl

from dataengine.stages.document import Document
from dataengine.stages.toxicity import LIST_DIR, ToxicityConfig, ToxicityFilter, builtin_languages

SAMPLE = Path(__file__).resolve().parents[1] / "sample"


def _chunks(text: str, size: int = 3000) -> list[str]:
    """Paragraphs joined into documents of about `size` characters."""
    out, buf = [], ""
    for para in re.split(r"\n\s*\n", text):
        buf += para + "\n\n"
        if len(buf) >= size:
            out.append(buf.strip())
            buf = ""
    return out + ([buf.strip()] if buf.strip() else [])


@pytest.fixture(scope="module")
def tox() -> ToxicityFilter:
    return ToxicityFilter()


def _kept_share(stage: ToxicityFilter, texts: list[str], lang: str) -> float:
    return sum(stage(Document(t, lang=lang)) is None for t in texts) / len(texts)


def _book_chunks(paths: list[Path]) -> list[str]:
    return [c for path in paths for c in _chunks(path.read_text("utf-8"))]


def test_real_clean_english_text_is_kept(corpus, tox):
    """Novels (Huckleberry Finn included, with its period slurs) and Wikipedia."""
    books = [corpus / "reference" / "gutenberg" / b for b in ("pg76.txt", "pg1661.txt")]
    books += [SAMPLE / "pg1342.txt", SAMPLE / "pg84.txt"]  # the demo sample's two novels
    docs = _book_chunks(books)
    wiki = (corpus / "reference" / "wikitext-2_valid.txt").read_text("utf-8")
    articles = [a for a in re.split(r"\n \n = (?!=)", wiki) if a.strip()]
    # four novels of 0.4 to 0.7 MB each, cut into documents of about 3,000 characters
    assert len(docs) > 500 and len(articles) > 50
    assert _kept_share(tox, docs, "en") >= 0.99
    assert _kept_share(tox, articles, "en") >= 0.99


def test_ulysses_and_moby_dick_are_kept(shared_data, tox):
    """Ulysses' curses and Moby-Dick's whaling slang: period text, not toxic content."""
    docs = _book_chunks([shared_data / "reference" / "gutenberg" / b for b in ("pg4300.txt", "pg2701.txt")])
    assert len(docs) > 500
    assert _kept_share(tox, docs, "en") >= 0.99


def test_real_clean_chinese_text_is_kept(corpus, tox, zh_paragraphs):
    assert _kept_share(tox, zh_paragraphs, "zh") >= 0.99
    poems = read_jsonl(corpus / "zh" / "zh_classical_poetry.jsonl.gz", limit=20000)
    assert _kept_share(tox, poems, "zh") >= 0.99


def test_planted_english_bad_words_above_threshold_are_rejected(tox, c4_docs):
    base = next(t for t in c4_docs if tox(Document(t, lang="en")) is None and len(t) > 1000)
    n_words = len(Document(base).words)
    insult = " What a fucking joke, you stupid asshole, go fuck yourself you piece of shit."
    # Enough planted sentences to pass 2% of the words: each carries 4 bad words.
    copies = n_words // 150 + 1
    doc = Document(base + insult * copies, lang="en")
    assert tox(doc) == "bad_words"
    assert doc.signals["toxicity.bad_words"] == 4 * copies
    assert doc.signals["toxicity.bad_word_fraction"] > 0.02
    # One curse in a long real page stays below the threshold.
    single = Document(base + " Well, shit happens.", lang="en")
    assert tox(single) is None
    assert single.signals["toxicity.bad_words"] == 1


def test_planted_chinese_bad_words_above_threshold_are_rejected(tox, zh_paragraphs):
    base = zh_paragraphs[0]
    assert tox(Document(base, lang="zh")) is None
    insult = "你这个傻逼，他妈的滚开，王八蛋！"
    copies = len(base) // 200 + 1
    doc = Document(base + insult * copies, lang="zh")
    assert tox(doc) == "bad_words"
    assert doc.signals["toxicity.bad_words"] == 3 * copies
    assert doc.signals["toxicity.bad_word_fraction"] > 0.02
    single = Document(base + "他妈的。", lang="zh")
    assert tox(single) is None
    assert single.signals["toxicity.bad_words"] == 1


def test_whole_word_matching_spares_innocent_words(tox):
    text = (
        "Scunthorpe United played in Essex; a cocktail of assassins passed the class on Sussex Street. "
        "Cockburn analysed the shiitake, the Dickens novel, the pussycat, the therapist and the title."
    )
    doc = Document(text, lang="en")
    assert tox(doc) is None
    assert doc.signals["toxicity.bad_words"] == 0


def test_chinese_terms_inside_ordinary_words_are_not_flagged(tox):
    text = "这个问题中出现了露点温度的计算；印度支那半岛水乳交融，聊以自慰，末日逼近，他靠北边走。"
    doc = Document(text, lang="zh")
    assert tox(doc) is None
    assert doc.signals["toxicity.bad_words"] == 0


def test_phrases_count_once_and_case_is_ignored(tox):
    doc = Document("BLOW JOB and Blow Job; a MotherFucker and a mother fucker.", lang="en")
    tox(doc)
    # two phrase matches + 'motherfucker' + 'fucker' inside 'mother fucker' (counted through the word)
    assert doc.signals["toxicity.bad_words"] == 4


def test_absolute_cap_rejects_long_documents(c4_docs):
    base = max(c4_docs, key=len)
    text = base + " shit" * 3
    assert ToxicityFilter()(Document(text, lang="en")) is None
    assert ToxicityFilter(ToxicityConfig(max_bad_words=2))(Document(text, lang="en")) == "bad_words"


def test_extra_user_list(tmp_path, zh_paragraphs):
    custom = tmp_path / "custom.txt"
    custom.write_text("# project words\nfrobnicate\nwidget sprocket\n泡泡战士\n", encoding="utf-8")
    stage = ToxicityFilter(ToxicityConfig(languages=[], extra_lists=[custom], max_bad_words=0))
    doc = Document("Frobnicate the widget sprocket. " + zh_paragraphs[0], lang="zh")
    assert stage(doc) == "bad_words"
    assert doc.signals["toxicity.bad_words"] == 2 + zh_paragraphs[0].count("泡泡战士")


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(ValidationError, match=r"available: \['en', 'zh'\]"):
        ToxicityConfig(languages=["xx"])
    with pytest.raises(ValidationError, match="threshold"):
        ToxicityConfig(threshold=0.1)
    with pytest.raises(ValueError, match="missing.txt"):
        ToxicityFilter(ToxicityConfig(extra_lists=[tmp_path / "missing.txt"]))
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.txt"):
        ToxicityFilter(ToxicityConfig(extra_lists=[empty]))


def test_shipped_lists_are_documented_and_clean():
    notice = (LIST_DIR / "NOTICE.md").read_text("utf-8")
    assert builtin_languages() == ["en", "zh"]
    for lang in builtin_languages():
        assert f"`{lang}.txt`" in notice
        terms = [
            t
            for t in (LIST_DIR / f"{lang}.txt").read_text("utf-8").splitlines()
            if t and not t.startswith("#")
        ]
        assert len(terms) > 200
        assert len(set(terms)) == len(terms), "duplicate terms"
        assert all(t == t.strip() for t in terms)
