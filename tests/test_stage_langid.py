"""Language ID with the packaged lid.176 model: accuracy on UDHR lines, thresholds, pickling."""

from __future__ import annotations

import gzip
import json
import pickle
from collections import Counter

import pytest
from udhr_langs import bare_lid_labels, known_to_lid, read_udhr

from dataengine.api import process
from dataengine.config import load_pipeline_config
from dataengine.stages import Document
from dataengine.stages.langid import LangIdConfig, LanguageIdentifier, packaged_model_path

# UDHR language codes (ISO 639-3, with script/orthography variants) -> lid.176 labels.
UDHR_TO_LID = {
    "eng": "en",
    "cmn_hans": "zh",
    "cmn_hant": "zh",
    "deu": "de",
    "fra": "fr",
    "spa": "es",
    "rus": "ru",
    "arb": "ar",
    "jpn": "ja",
    "kor": "ko",
    "ita": "it",
    "por_BR": "pt",
    "por_PT": "pt",
}


def test_udhr_lines_of_major_languages_are_identified(corpus):
    path = corpus / "langid" / "udhr2_lines.jsonl.gz"
    lines = [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]
    lines = [r for r in lines if r["lang"] in UDHR_TO_LID and len(r["text"]) >= 50]
    stage = LanguageIdentifier()
    total, correct = Counter(), Counter()
    for record in lines:
        expected = UDHR_TO_LID[record["lang"]]
        total[expected] += 1
        correct[expected] += stage.predict(record["text"])[0] == expected
    accuracy = sum(correct.values()) / sum(total.values())
    print(f"UDHR top-1 accuracy {accuracy:.3f} on {sum(total.values())} lines:", dict(correct), dict(total))
    assert sum(total.values()) > 500
    assert accuracy >= 0.9
    assert all(correct[lang] / total[lang] >= 0.8 for lang in total)


def test_engine_language_id_is_at_least_the_bare_models_on_udhr_lines(corpus):
    """Through the engine chain (configs/pipeline.yaml: normalize, the code detector, language ID...) the
    `lang` written for each short UDHR line is right at least as often as lid.176's own top label:
    no line is lost to the code detector, in any of the languages lid.176 knows."""
    root = corpus.parents[1]
    records = known_to_lid(read_udhr(corpus / "langid" / "udhr2_lines.jsonl.gz"))
    assert len(records) > 7000 and len({r["expected"] for r in records}) > 100
    texts = [r["text"] for r in records]
    result = process(
        [{"id": str(i), "text": t} for i, t in enumerate(texts)],
        load_pipeline_config(root / "configs" / "pipeline.yaml"),
    )
    written = {r["id"]: r["lang"] for r in result.kept.to_pylist() + result.rejected.to_pylist()}
    engine = [written[str(i)] for i in range(len(texts))]
    bare = bare_lid_labels(texts)
    engine_ok = sum(lang == r["expected"] for lang, r in zip(engine, records, strict=True))
    bare_ok = sum(label == r["expected"] for label, r in zip(bare, records, strict=True))
    print(f"UDHR lines: engine {engine_ok / len(records):.4f}, bare lid.176 {bare_ok / len(records):.4f}")
    assert "code" not in engine
    assert bare_ok >= 0.6 * len(records)  # the bare model is a real baseline, not a broken one
    assert engine_ok >= bare_ok


def test_sets_lang_and_signals():
    doc = Document("这是一个关于语言识别的测试句子，我们希望模型能够正确地识别出中文。")
    assert LanguageIdentifier().process(doc) is None
    assert doc.lang == "zh" and doc.is_cjk
    assert doc.signals["langid.lang"] == "zh"
    assert 0.65 <= doc.signals["langid.score"] == doc.lang_score <= 1.0


def test_below_threshold_and_per_language_override():
    text = "ok"
    default = LanguageIdentifier(LangIdConfig(threshold=0.99))
    doc = Document(text)
    assert default.process(doc) == "below_threshold"
    lenient = LanguageIdentifier(LangIdConfig(threshold=0.99, thresholds={doc.lang: 0.0}))
    assert lenient.process(Document(text)) is None


def test_not_allowed_language():
    stage = LanguageIdentifier(LangIdConfig(languages=["en"]))
    assert stage.process(Document("Der schnelle braune Fuchs springt über den faulen Hund.")) == "not_allowed"
    assert stage.process(Document("The quick brown fox jumps over the lazy dog again.")) is None


def test_newlines_do_not_split_the_prediction():
    stage = LanguageIdentifier()
    assert stage.predict("Le gouvernement a annoncé\nde nouvelles mesures\npour l'économie.")[0] == "fr"


def test_stage_pickles_before_and_after_loading_the_model():
    stage = LanguageIdentifier()
    clone = pickle.loads(pickle.dumps(stage))
    assert clone.predict("This is English text.")[0] == "en"
    assert pickle.loads(pickle.dumps(clone)).predict("Это русский текст.")[0] == "ru"


def test_packaged_model_is_found_and_a_missing_model_is_named(tmp_path):
    assert packaged_model_path().endswith("lid.176.ftz")
    missing = tmp_path / "nope.bin"
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        LanguageIdentifier(LangIdConfig(model_path=str(missing)))


def test_setting_the_language_resets_language_dependent_splits():
    doc = Document("東京は日本の首都です。人口は多いです。")
    doc.lang = "en"  # as if a wrong language had been set before the splits were read
    assert doc.units == doc.words
    LanguageIdentifier().process(doc)
    assert doc.lang == "ja" and doc.units == list(doc.non_space_chars)
    assert len(doc.ngrams(2)) == len(doc.units) - 1
