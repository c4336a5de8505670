"""Normalization: one Unicode form, no control characters, tidy whitespace, empty documents rejected."""

from __future__ import annotations

import unicodedata

import pytest
from pydantic import ValidationError
from stage_corpora import cmrc_paragraphs, english_web_docs

from dataengine.stages import Document
from dataengine.stages.normalize import NormalizeConfig, Normalizer


def normalized(text: str, **cfg) -> str:
    doc = Document(text)
    Normalizer(NormalizeConfig(**cfg)).process(doc)
    return doc.text


def test_line_ends_are_unified():
    assert normalized("a\r\nb\rc\u2028d\x85e") == "a\nb\nc\nd\ne"


def test_control_and_invisible_characters_are_removed_but_tab_kept():
    assert normalized("\ufeffa\x00b\x07c\u200bd\te") == "abcd\te"


def test_nfc_composes_and_nfkc_folds_compatibility_forms():
    decomposed = "Cafe\u0301"
    assert normalized(decomposed) == "Café"
    assert normalized("ﬁle １２３") == "ﬁle １２３"  # NFC keeps compatibility characters
    assert normalized("ﬁle １２３", form="NFKC") == "file 123"


def test_interior_spaces_collapse_trailing_stripped_indentation_kept():
    assert normalized("def f():\n    return  1   \nx\u3000\u3000y") == "def f():\n    return 1\nx y"


def test_blank_line_runs_are_limited():
    assert normalized("a\n\n\n\n\n\nb") == "a\n\n\nb"
    assert normalized("a\n\n\n\n\n\nb", max_blank_lines=0) == "a\nb"


def test_nothing_left_is_rejected_as_empty_with_signals():
    doc = Document(" \x00\u200b\n\n ")
    assert Normalizer().process(doc) == "empty"
    assert doc.signals["normalize.changed"] is True
    assert doc.signals["normalize.chars_removed"] == 6


def test_config_rejects_unknown_keys_and_forms():
    with pytest.raises(ValidationError):
        NormalizeConfig(form="NFD")
    with pytest.raises(ValidationError):
        NormalizeConfig(collapse=True)


def test_real_documents_are_nfc_idempotent_and_keep_their_words(corpus):
    texts = english_web_docs(corpus)["c4"] + cmrc_paragraphs(corpus)[:200]
    norm = Normalizer(NormalizeConfig(resolve_wiki_conversion=False))  # that one rewrites words on purpose
    for text in texts:
        once = norm.normalize(text)
        assert norm.normalize(once) == once
        assert unicodedata.is_normalized("NFC", once)
        assert "\r" not in once and "  " not in once.replace("\n ", "\n")
        assert once.split() == unicodedata.normalize("NFC", text).split()


def test_mediawiki_conversion_markup_resolves_on_real_zh_wikipedia(corpus):
    import json

    from dataengine.stages.c4 import C4Quality

    paragraphs = [
        json.loads(line)["text"]
        for line in open(corpus / "zh/cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8")
    ]
    marked = [p for p in paragraphs if "-{" in p]
    assert len(marked) >= 20
    normalizer, c4 = Normalizer(), C4Quality()
    cleaned = [normalizer.normalize(p) for p in marked]
    assert not any("-{" in c or "}-" in c for c in cleaned)
    assert "又名猢狲树" in normalizer.normalize("又名-{zh-hant:猴面包树;zh-hans:猢狲树;zh-tw:猴面包树}-")
    curly = sum(c4.process(Document(c, lang="zh")) == "curly_bracket" for c in cleaned)
    assert curly <= 0.1 * len(marked)
    code = "if x:\n    return {a: -{b}-}\n"
    assert normalizer.normalize(code) == code.rstrip()  # no Han characters: code is left alone
