"""Keep/reject agreement with DataTrove's filters on real English documents, per rule family.

The peer of every family runs with NLTK's Punkt algorithm (untrained, given the
same short abbreviation list our sentence counter uses) and NLTK's treebank word
tokenizer, a stand-in for NLTK's Punkt English model, which cannot be downloaded
here. DataTrove's own English tokenizer (its default, `language="en"`) is spaCy's
rule-based sentencizer, which needs no download: C4, the family whose decision
rests on sentence counts, is also checked against it, at the issue's floor (99%).
Untrained Punkt counts a run of end marks at the end of a line as two sentences
("friend !!" -> "friend !", "!"), which neither we nor spaCy do.
"""

from __future__ import annotations

from collections import Counter

import pytest
from stage_corpora import english_web_docs, read_jsonl

from dataengine.stages import Document
from dataengine.stages.c4 import _ABBREVIATIONS, C4Quality
from dataengine.stages.fineweb import FineWebQuality
from dataengine.stages.gopher_quality import GopherQuality
from dataengine.stages.gopher_repetition import GopherRepetition
from dataengine.stages.langid import LanguageIdentifier
from dataengine.stages.normalize import Normalizer

pytestmark = pytest.mark.slow

datatrove = pytest.importorskip("datatrove")
pytest.importorskip("nltk")
trafilatura = pytest.importorskip("trafilatura")


def offline_tokenizer():
    from datatrove.utils.word_tokenizers import WordTokenizer
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    class OfflineEnglishTokenizer(WordTokenizer):
        def __init__(self):
            super().__init__("en")
            params = PunktParameters()
            params.abbrev_types = {a.replace("\\.", ".") for a in _ABBREVIATIONS.split("|")}
            self.sentences = PunktSentenceTokenizer(params)
            self.words = NLTKWordTokenizer()

        def word_tokenize(self, text):
            return [w for s in self.sentences.tokenize(text) for w in self.words.tokenize(s)]

        def sent_tokenize(self, text):
            return self.sentences.tokenize(text)

        def span_tokenize(self, text):
            return list(self.sentences.span_tokenize(text))

    return OfflineEnglishTokenizer()


def normalized(docs: dict[str, list[str]]) -> dict[str, list[str]]:
    norm = Normalizer()
    return {name: [t for t in map(norm.normalize, texts) if t] for name, texts in docs.items()}


@pytest.fixture(scope="module")
def web_text_docs(corpus) -> dict[str, list[str]]:
    """Normalized English web text files of the bundled corpus, by source."""
    return normalized(english_web_docs(corpus))


@pytest.fixture(scope="module")
def extracted_pages(shared_data) -> list[str]:
    """English pages extracted by trafilatura from the HTML evaluation sets (not bundled), normalized."""
    langid = LanguageIdentifier()
    pages = []
    for name, field in (
        ("trafilatura_pages", "html"),
        ("aeb_pages", "html"),
        ("readability_pages", "source_html"),
    ):
        for page in read_jsonl(shared_data / "web" / f"{name}.jsonl.gz", field=field):
            text = trafilatura.extract(page)
            if text and langid.predict(text)[0] == "en":
                pages.append(text)
    return normalized({"extracted_pages": pages})["extracted_pages"]


FAMILIES = {
    "gopher": (GopherQuality, "GopherQualityFilter"),
    "gopher_rep": (GopherRepetition, "GopherRepetitionFilter"),
    "c4": (C4Quality, "C4QualityFilter"),
    "fineweb": (FineWebQuality, "FineWebQualityFilter"),
}


def check_agreement(
    family: str, english_docs: dict[str, list[str]], language: str | None = None, floor: float = 0.95
) -> None:
    """`language`: DataTrove's tokenizer for that language instead of the offline Punkt stand-in."""
    from datatrove.data import Document as PeerDocument
    from datatrove.pipeline import filters

    ours_cls, peer_name = FAMILIES[family]
    ours = ours_cls()
    peer = getattr(filters, peer_name)(language=language or offline_tokenizer())
    agree, total, disagreements, same_text = Counter(), Counter(), Counter(), []
    for source, texts in english_docs.items():
        for i, text in enumerate(texts):
            doc = Document(text, lang="en")
            our_rule = ours.process(doc)
            peer_doc = PeerDocument(text=text, id=f"{source}/{i}")
            verdict = peer.filter(peer_doc)
            peer_rule = None if verdict is True else verdict[1] if isinstance(verdict, tuple) else "rejected"
            total[source] += 1
            if (our_rule is None) == (peer_rule is None):
                agree[source] += 1
                if our_rule is None and family == "c4":
                    same_text.append(doc.text == peer_doc.text)
            else:
                disagreements[(our_rule, peer_rule)] += 1
    overall = sum(agree.values()) / sum(total.values())
    named = (agree["c4"] + agree["cc_en_head"]) / (total["c4"] + total["cc_en_head"])
    print(
        f"\n{family} ({language or 'punkt stand-in'}): agreement {overall:.3f} on {sum(total.values())} docs "
        f"(c4-sample + cc_en_head: {named:.3f}); by source",
        {s: f"{agree[s]}/{total[s]}" for s in total},
        "disagreements (ours, datatrove):",
        disagreements.most_common(),
    )
    assert overall >= floor
    assert named >= 0.95
    assert all(agree[s] / total[s] >= 0.9 for s in total)
    if family == "c4":
        assert sum(same_text) / len(same_text) >= 0.95  # the cleaned text matches too


@pytest.mark.parametrize("family", list(FAMILIES))
def test_decisions_agree_with_datatrove(family, web_text_docs):
    """The bundled web text files: C4, cc_net head, RedPajama, the Guardian, Dolma, UD EWT."""
    check_agreement(family, web_text_docs)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_decisions_agree_with_datatrove_on_extracted_pages_too(family, web_text_docs, extracted_pages):
    """The same files plus English pages extracted from the HTML evaluation sets (extended tier)."""
    check_agreement(family, {**web_text_docs, "extracted_pages": extracted_pages})


def test_c4_agrees_with_datatrove_english_tokenizer(web_text_docs):
    """C4 against DataTrove's default English pipeline (spaCy sentencizer), at the issue's floor."""
    pytest.importorskip("spacy")
    check_agreement("c4", web_text_docs, language="en", floor=0.99)


def test_c4_agrees_with_datatrove_english_tokenizer_on_extracted_pages_too(web_text_docs, extracted_pages):
    pytest.importorskip("spacy")
    check_agreement("c4", {**web_text_docs, "extracted_pages": extracted_pages}, language="en", floor=0.99)
