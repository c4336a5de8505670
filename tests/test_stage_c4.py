"""C4 line cleaning and document rules, English (DataTrove's defaults) and CJK."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import regex
from stage_corpora import cmrc_paragraphs, english_web_docs

import dataengine
from dataengine.config import load_pipeline_config
from dataengine.stages import Document
from dataengine.stages.c4 import (
    C4Config,
    C4Quality,
    cjk_sentence_ends,
    count_cjk_sentences,
    count_sentences,
    ends_sentence,
    trim_to_last_sentence_end,
    wrapped_paragraphs,
)
from dataengine.stages.normalize import Normalizer
from dataengine.stages.text_constants import C4_CJK_END_PUNCTUATION, C4_POLICY_PHRASES, CJK_CLOSING_MARKS

ROOT = Path(__file__).resolve().parents[1]
# Chinese as most paper abstracts and much web text write it: half-width marks straight after a character.
HALF_WIDTH = str.maketrans({"。": ".", "，": ",", "；": ";", "：": ":", "！": "!", "？": "?"})
# The sentence ends of full-width text, as the writer marked them (a run of 。！？, with any ! ? typed after
# it, and its closing quotes).
FULL_WIDTH_END = regex.compile(r"[。！？][。！？!?]*[" + regex.escape(CJK_CLOSING_MARKS) + "]*")

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
    # a letter after a digit or an apostrophe ends a word, not an initial: "1980s." and "didn't." end sentences
    assert count_sentences(["It began in the 1980s. Few noticed. They didn't. Now all do."]) == 4
    assert count_sentences(["Wilhelm F. Arntz collected them. Then J. Smith did."]) == 2
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


def _keep_rate(texts: list[str], stage: C4Quality) -> float:
    return sum(stage.process(Document(t, lang="zh")) is None for t in texts) / len(texts)


def test_half_width_chinese_sentence_ends_are_the_full_width_ones(zh_paragraphs):
    """CMRC paragraphs with 。！？ mapped to . ! ? (one character each, so offsets stay): the ends found in
    the half-width text are the writer's ends, nearly all of them and nearly nothing else."""
    truth = found = extra = exact = 0
    for text in zh_paragraphs:
        real = {m.end() for m in FULL_WIDTH_END.finditer(text)}
        ends = set(cjk_sentence_ends(text.translate(HALF_WIDTH)))
        truth += len(real)
        found += len(real & ends)
        extra += len(ends - real)  # mostly periods the writer already typed half-width (电离.判断)
        exact += count_cjk_sentences(text.translate(HALF_WIDTH)) == count_cjk_sentences(text)
        # full-width text: exactly the writer's ends (its few ASCII periods before a space aside)
        assert real <= set(cjk_sentence_ends(text))
    assert truth > 10_000
    assert found / truth >= 0.99 and extra / truth <= 0.01
    assert exact / len(zh_paragraphs) >= 0.9
    # the old counter (a period ends a sentence only before a space) saw about one sentence per paragraph
    assert found / len(zh_paragraphs) > 10


def test_numbers_abbreviations_urls_and_ellipses_do_not_end_sentences(zh_paragraphs):
    """No sentence end inside a decimal or version number, initials, a URL, a file name or an ellipsis of
    real half-width Chinese, nor after an abbreviation or initial before a space."""
    inside = {
        "number": r"\d+(?:\.\d+)+",
        "initials": r"(?<![A-Za-z])(?:[A-Za-z]\.){2,}",
        "url": r"(?:https?://|www\.)[A-Za-z0-9./?=&%_~#-]*[A-Za-z0-9/]",
        "file": r"\b[A-Za-z0-9_]+\.(?:py|js|txt|html?|pdf|docx?|exe|jpg|png|com|org|net|cn)\b",
        "ellipsis": r"\.{3,}|…+",
    }
    seen = dict.fromkeys(inside, 0)
    for text in (t.translate(HALF_WIDTH) for t in zh_paragraphs):
        ends = cjk_sentence_ends(text)
        for name, pattern in inside.items():
            for m in regex.finditer(pattern, text):
                seen[name] += 1
                assert not [e for e in ends if m.start() < e < m.end()], (
                    name,
                    text[m.start() - 9 : m.end() + 9],
                )
        for m in regex.finditer(r"(?<![A-Za-z])(?:Mr|Dr|St|Jr|[A-Z])\.(?= )", text):
            assert m.end() not in ends, text[m.start() - 9 : m.end() + 9]
    assert (
        seen["number"] > 400 and seen["initials"] > 10 and seen["url"] and seen["file"] and seen["ellipsis"]
    )
    # the same marks in a few sentences of our own, one Chinese sentence each
    for text, n in {
        "收入增长了2.5倍.圆周率约为3.14.版本1.2.3已发布.": 3,
        "他在U.S.政府工作.J.K.罗琳写了小说.例如e.g.北京.": 3,
        "访问www.example.com了解详情.文件a.py很短.邮件a.b@example.com.": 3,
        "他说...我们走吧.然后……离开了.": 2,
        "1.北京是首都.2.上海是一座城市.": 2,
        "该市成立于1998年.2005年人口为3000.该市很大!你去过吗?": 4,
        "他说:“我们走吧.”然后离开了.Dr.王来了; 他很忙.": 3,
        "网址是http://a.cn/b.php?id=1.很好!": 2,
    }.items():
        assert count_cjk_sentences(text) == n, text


def test_half_width_paragraph_is_trimmed_at_a_sentence_end_not_in_a_number():
    end_punct = tuple(C4_CJK_END_PUNCTUATION)
    line = "该市人口约3000.去年增长了2.5%,其中"
    assert trim_to_last_sentence_end(line, end_punct, CJK_CLOSING_MARKS, cjk=True) == "该市人口约3000."
    assert trim_to_last_sentence_end("他有2.5万元,还有", end_punct, CJK_CLOSING_MARKS, cjk=True) == ""


def test_chinese_keep_rate_through_c4_in_both_punctuation_styles(zh_paragraphs):
    """The shipped c4 rules keep real Chinese prose whichever punctuation it is written in."""
    stage = C4Quality(load_pipeline_config(ROOT / "configs" / "pipeline.yaml").stages.c4)
    full = _keep_rate(zh_paragraphs, stage)
    half = _keep_rate([t.translate(HALF_WIDTH) for t in zh_paragraphs], stage)
    assert full >= 0.9 and half >= 0.9 and abs(full - half) <= 0.02
    # one-line paragraphs: each half-width paragraph counts its sentences, not one per line
    doc = Document(zh_paragraphs[0].translate(HALF_WIDTH), lang="zh")
    assert stage.process(doc) is None
    assert doc.signals["c4.sentences"] >= len(FULL_WIDTH_END.findall(zh_paragraphs[0])) >= 3


def test_chinese_keep_rate_through_the_shipped_pipeline(zh_paragraphs):
    """All stages of configs/pipeline.yaml (code detector, language ID, Gopher, C4, FineWeb, ...) on CMRC
    paragraphs, as written and with half-width punctuation."""
    cfg = load_pipeline_config(ROOT / "configs" / "pipeline.yaml")
    rates = {}
    for style, texts in {
        "full": zh_paragraphs,
        "half": [t.translate(HALF_WIDTH) for t in zh_paragraphs],
    }.items():
        result = dataengine.process([{"id": str(i), "text": t} for i, t in enumerate(texts)], cfg)
        rates[style] = result.kept.num_rows / len(texts)
        reasons = result.rejected.column("reject").to_pylist()
        assert reasons.count("c4:too_few_sentences") <= 0.01 * len(texts), style
    assert rates["full"] >= 0.9 and rates["half"] >= 0.9, rates


@pytest.mark.parametrize("lang", ["jpn", "kor"])
def test_japanese_and_korean_sentences(corpus, lang):
    """UDHR in Japanese (full-width 。) and Korean (. then a space): every line's sentences are counted as
    before, Japanese with half-width periods too, and every ~800-character chunk passes c4."""
    with gzip.open(corpus / "langid" / "udhr2_docs.jsonl.gz", "rt", encoding="utf-8") as f:
        text = next(r["text"] for r in map(json.loads, f) if r["lang"] == lang)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    marks = sum(len(regex.findall(r"。|다\.", line)) for line in lines)
    assert marks > 50
    assert sum(len(cjk_sentence_ends(line)) for line in lines) == marks
    if lang == "jpn":
        assert sum(len(cjk_sentence_ends(line.replace("。", "."))) for line in lines) == marks
    chunks, chunk = [], ""
    for line in lines:
        chunk += line + "\n"
        if len(chunk) > 800:
            chunks, chunk = [*chunks, chunk], ""
    stage = C4Quality(load_pipeline_config(ROOT / "configs" / "pipeline.yaml").stages.c4)
    assert all(stage.process(Document(c, lang=lang[:2] if lang == "kor" else "ja")) is None for c in chunks)


def test_news_and_novel_keep_rates_in_both_punctuation_styles(shared_data):
    """SIGHAN 2005 news (lines joined into ~600-character documents, and the same as one-line paragraphs)
    and a Japanese novel (吾輩は猫である, ~1500-character chunks) through the shipped c4 rules."""
    stage = C4Quality(load_pipeline_config(ROOT / "configs" / "pipeline.yaml").stages.c4)
    news, by_file = [], {}
    for name in ("pku_test.utf8.gz", "msr_test.utf8.gz", "cityu_test.utf8", "as_test.utf8.gz"):
        path = shared_data / "zh" / "sighan2005" / name
        by_file[name] = []
        with (gzip.open if name.endswith(".gz") else open)(path, "rt", encoding="utf-8-sig") as f:
            doc = ""
            for line in filter(None, map(str.strip, f)):
                doc += line + "\n"
                if len(doc) >= 600:
                    by_file[name], doc = [*by_file[name], doc], ""
        news += by_file[name]
    # characters kept, per file: AS is written one clause a line (9,793 of its 14,429 lines end in ，);
    # read line by line, C4 kept 24% of its characters
    for name, texts in by_file.items():
        docs = [Document(t, lang="zh") for t in texts]
        kept = sum(len(d.text) for d in docs if stage.process(d) is None)
        assert kept >= 0.9 * sum(map(len, texts)), (name, kept / sum(map(len, texts)))
    novel_lines = (
        (shared_data / "reference" / "wagahaiwa_nekodearu.txt").read_text(encoding="utf-8").splitlines()
    )
    novel, chunk = [], ""
    for line in filter(None, map(str.strip, novel_lines[20:])):
        chunk += line + "\n"
        if len(chunk) > 1500:
            novel, chunk = [*novel, chunk], ""
    for lang, texts in {"zh": news, "zh-1line": [t.replace("\n", "") for t in news], "ja": novel}.items():
        assert len(texts) > 150
        for style in (texts, [t.translate(HALF_WIDTH) for t in texts]):
            kept = sum(stage.process(Document(t, lang=lang[:2])) is None for t in style) / len(style)
            assert kept >= 0.95, (lang, kept)


def _book_chunks(path: Path, size: int = 8000) -> list[str]:
    """A book normalized and cut at blank lines into chunks of about `size` characters."""
    chunks, current = [], []
    for paragraph in Normalizer().normalize(path.read_text(encoding="utf-8")).split("\n\n"):
        current.append(paragraph)
        if sum(map(len, current)) >= size:
            chunks, current = [*chunks, "\n\n".join(current)], []
    return chunks


def test_wrapped_book_keeps_whole_paragraphs_with_their_short_last_lines(corpus):
    """Huckleberry Finn (bundled, hard-wrapped near 70 characters) in ~8k-character chunks through the
    shipped c4 rules: the line rules judge each paragraph, so the output is the wrapped lines of whole
    paragraphs, in order: the short last line of a kept paragraph ("said he.") is never dropped."""
    stage = C4Quality(load_pipeline_config(ROOT / "configs" / "pipeline.yaml").stages.c4)
    chunks = _book_chunks(corpus / "reference" / "gutenberg" / "pg76.txt")
    assert len(chunks) >= 60
    short_tails = kept_words = dropped_words = 0
    for text in chunks:
        doc = Document(text, lang="en")
        assert stage.process(doc) is None and doc.signals["c4.reflowed"] == 1
        out, pos = doc.text.split("\n"), 0
        for paragraph, lines in wrapped_paragraphs(Document(text, lang="en")):
            block = [line.strip() for line in lines]
            if out[pos : pos + len(block)] == block and paragraph.strip():
                pos += len(block)
                kept_words += len(paragraph.split())
                short_tails += len(block) >= 2 and len(block[-1].split()) < 3
            else:  # dropped: a short one-line paragraph (a heading, "Yes."), or the licence's policy talk
                policy = any(p in paragraph.lower() for p in C4_POLICY_PHRASES)
                assert policy or (len(paragraph.split()) < 3 and len(block) == 1), paragraph
                dropped_words += len(paragraph.split())
        assert pos == len(out)  # nothing but whole paragraphs, each line as written
        assert doc.signals["c4.lines_kept"] <= doc.signals["c4.lines"] < text.count("\n")
    assert short_tails >= 200  # wrapped paragraphs whose last line has one or two words, all kept
    assert dropped_words <= 0.01 * (kept_words + dropped_words)


def test_web_text_is_judged_line_by_line(corpus):
    """Web text (one paragraph per line, menus) is never read as wrapped: its lines are judged as
    DataTrove judges them."""
    stage = C4Quality()
    web = [t for texts in english_web_docs(corpus).values() for t in texts]
    for text in web:
        doc = Document(text, lang="en")
        stage.process(doc)
        assert doc.signals["c4.reflowed"] == 0


def _c4_output(text: str) -> tuple[str | None, Document]:
    doc = Document(text, lang="zh")
    return C4Quality().process(doc), doc


def test_chinese_a_clause_a_line_or_wrapped_is_judged_a_sentence_at_a_time(zh_paragraphs):
    """CMRC paragraphs rewritten one clause a line (a break after every ，、；：, as in SIGHAN's AS news),
    in both punctuation styles, and wrapped at 40 characters: C4 keeps exactly the text it keeps of the
    one-line paragraph, as the writer's own lines (the last one cut back to the sentence end). Before,
    every clause line without a sentence end was dropped."""
    clause_end = regex.compile(r"(?<=[，、；：])")
    n_split = 0
    for paragraph in zh_paragraphs[:200]:
        styles = {
            "clauses": clause_end.sub("\n", paragraph).strip(),
            "clauses, half-width": clause_end.sub("\n", paragraph).strip().translate(HALF_WIDTH),
            "wrapped": "\n".join(paragraph[i : i + 40] for i in range(0, len(paragraph), 40)),
        }
        for style, text in styles.items():
            if "\n" not in text:
                continue
            n_split += 1
            got, doc = _c4_output(text)
            rule, whole = _c4_output(paragraph if "half" not in style else paragraph.translate(HALF_WIDTH))
            assert got == rule and doc.signals["c4.reflowed"] == 1, (style, paragraph)
            assert doc.signals["c4.sentences"] == whole.signals["c4.sentences"], (style, paragraph)
            if rule is None:
                # the same characters (a space at a wrap is stripped with its line, as C4 strips lines)
                assert "".join(doc.text.split()) == "".join(whole.text.split()), (style, paragraph)
                lines = [line.strip() for line in text.split("\n")]
                out = doc.text.split("\n")
                assert out[:-1] == lines[: len(out) - 1] and lines[len(out) - 1].startswith(out[-1])
    assert n_split >= 500


def test_chinese_sentence_a_line_stays_line_by_line(zh_paragraphs):
    """One sentence a line (no clause mark at a line end, lines of any length) is not a wrap."""
    sentence_end = regex.compile(r"(?<=[。！？])(?=.)")
    n = 0
    for paragraph in zh_paragraphs[:200]:
        text = sentence_end.sub("\n", paragraph)
        if text.count("\n") < 3:
            continue
        n += 1
        _, doc = _c4_output(text)
        assert doc.signals["c4.reflowed"] == 0 and doc.signals["c4.lines"] == text.count("\n") + 1
    assert n >= 50
