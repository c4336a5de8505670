"""Code detection: real source files become lang=code and skip prose rules; prose in any script, short
Chinese in either punctuation style included, stays prose."""

from __future__ import annotations

import gzip
import json
import unicodedata
from pathlib import Path

import regex
from udhr_langs import read_udhr

from dataengine.api import process
from dataengine.config import PipelineConfig, load_pipeline_config
from dataengine.stages.code import CODE_LANG, CodeConfig, CodeFilter
from dataengine.stages.code_text import code_shape
from dataengine.stages.document import Document

ROOT = Path(__file__).resolve().parents[1]
PROGRAMMING = {"Python", "C++", "C/C++ header", "Rust", "JavaScript", "Shell"}
DOCUMENTATION = {"Markdown", "reStructuredText"}
HALF_WIDTH = str.maketrans({"。": ".", "，": ",", "；": ";", "：": ":", "！": "!", "？": "?"})


def _shipped_code_stage() -> CodeFilter:
    return CodeFilter(load_pipeline_config(ROOT / "configs" / "pipeline.yaml").stages.code)


def _labelled_code(stage: CodeFilter, texts: list[str]) -> list[str]:
    """The texts the stage labels code (run as the engine runs it: one batch)."""
    docs = [Document(t) for t in texts]
    stage.run(docs)
    assert all("code.probability" in d.signals for d in docs)
    # the lines' shape is read only where the model says code (elsewhere it could not change the label)
    assert all(
        ("code.code_line_share" in d.signals) == (d.signals["code.probability"] >= stage.cfg.threshold)
        for d in docs
    )
    return [d.text for d in docs if d.lang == CODE_LANG]


def _scripts(texts: list[str]) -> set[str]:
    """The writing systems of the texts' letters (first word of each letter's Unicode name)."""
    return {unicodedata.name(ch, "?").split()[0] for t in texts for ch in t if ch.isalpha()}


def _code_files(corpus, limit=400):
    with gzip.open(corpus / "code/code_files.jsonl.gz", "rt") as fh:
        files = [json.loads(line) for line in fh]
    # empty files (package markers) carry no text to classify
    return [f for f in files if f["language"] in PROGRAMMING and f["content"].strip()][::3][:limit]


def test_detects_real_source_files_and_not_prose(corpus):
    stage = CodeFilter()
    code = _code_files(corpus)
    detected = sum(map(stage.is_code, (f["content"] for f in code)))
    assert detected >= 0.97 * len(code)
    zh = [
        json.loads(line)["text"]
        for line in open(corpus / "zh/cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8")
    ]
    ewt = [
        json.loads(line)["text"] for line in open(corpus / "web/text/ewt_web_docs.jsonl", encoding="utf-8")
    ]
    prose = zh[:300] + ewt[:300]
    assert not _labelled_code(stage, prose)


def test_no_udhr_line_or_text_in_any_script_is_code(corpus):
    """The full UDHR line set (387 language/script variants): not one line, nor one whole text, is code."""
    lines = [r["text"] for r in read_udhr(corpus / "langid" / "udhr2_lines.jsonl.gz")]
    docs = [r["text"] for r in read_udhr(corpus / "langid" / "udhr2_docs.jsonl.gz")]
    assert len(lines) > 24_000
    scripts = _scripts(lines)
    assert {"LATIN", "CJK", "ARABIC", "DEVANAGARI", "BENGALI", "GURMUKHI", "ARMENIAN", "ETHIOPIC"} <= scripts
    assert len(scripts) >= 25
    stage = _shipped_code_stage()
    assert _labelled_code(stage, lines) == []
    assert _labelled_code(stage, docs) == []
    # the model alone is not what protects them: its score is high on many of these lines
    scores = stage.code_probabilities(lines)
    assert sum(p >= stage.cfg.threshold for p in scores) > 0.01 * len(lines)


def test_short_chinese_in_both_punctuation_styles_is_not_code(corpus):
    """Sentences and two-character words of real zh-Wikipedia paragraphs, full-width and half-width
    punctuation, and the paragraphs themselves as one line: none is code; the README example is zh."""
    paragraphs = [
        json.loads(line)["text"]
        for line in open(corpus / "zh/cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8")
    ]
    sentences = [s for p in paragraphs for s in regex.split(r"(?<=[。！？])", p) if len(s) >= 2]
    words = [s[:2] for s in sentences if regex.fullmatch(r"\p{Han}{2}", s[:2])]
    half_width = [t.translate(HALF_WIDTH) for t in sentences + paragraphs]
    assert len(sentences) > 1000 and len(words) > 500
    assert sum("." in t and "," in t for t in half_width) > 500
    stage = _shipped_code_stage()
    assert _labelled_code(stage, sentences + words + paragraphs + half_width) == []

    example = "北京是中华人民共和国的首都……"
    assert not stage.is_code(example) and not stage.is_code("北京")
    for config in (PipelineConfig(), load_pipeline_config(ROOT / "configs" / "pipeline.yaml")):
        row = [
            *process([{"id": "1", "text": example}], config).kept.to_pylist(),
            *process([{"id": "1", "text": example}], config).rejected.to_pylist(),
        ][0]
        assert row["lang"] == "zh"
        assert row["code.probability"] is not None  # annotated, then decided prose


def test_cmrc_questions_are_not_code(shared_data):
    squad = json.loads((shared_data / "zh" / "cmrc2018_dev.squad.json").read_text(encoding="utf-8"))
    questions = [q["question"] for a in squad["data"] for p in a["paragraphs"] for q in p["qas"]]
    assert len(questions) > 3000
    assert _labelled_code(_shipped_code_stage(), questions) == []


def test_shape_reads_lines_not_script():
    """Code with Chinese comments and strings keeps its shape; Chinese prose has none."""
    source = 'def greet(name):\n    # 打招呼\n    return f"你好，{name}！"\n'
    assert code_shape(source).is_code_shaped
    assert not code_shape("北京是中华人民共和国的首都，也是全国的政治、文化中心。").is_code_shaped
    assert not code_shape("[Missing Article 13.2]").is_code_shaped
    assert code_shape("from .n_grams import NGramsDecontConfig, NGramsDecontFilter\n").is_code_shaped


def test_code_skips_prose_rules_in_the_chain(corpus):
    files = _code_files(corpus, limit=60)
    result = process([{"id": f["path"], "text": f["content"]} for f in files], PipelineConfig())
    kept = result.kept.to_pylist()
    assert len(kept) >= 0.9 * len(files)
    assert all(r["lang"] == "code" for r in kept)
    assert not any(r.get("gopher.word_count") for r in kept)  # prose stages never ran on them


def test_real_code_files_stay_code_with_the_shipped_config(corpus):
    """Every bundled source and config file (Markdown/reST are prose): >= 0.9 kept, >= 0.99 lang=code."""
    with gzip.open(corpus / "code/code_files.jsonl.gz", "rt") as fh:
        files = [json.loads(line) for line in fh]
    files = [f for f in files if f["language"] not in DOCUMENTATION and f["content"].strip()]
    assert len(files) > 800
    config = load_pipeline_config(ROOT / "configs" / "pipeline.yaml")
    result = process([{"id": f["path"], "text": f["content"]} for f in files], config)
    rows = result.kept.to_pylist() + result.rejected.to_pylist()
    assert len(result.kept) >= 0.9 * len(files)
    labelled_prose = [r["id"] for r in rows if r["lang"] != CODE_LANG]
    assert len(labelled_prose) <= 0.01 * len(files), labelled_prose
    # the shape never overrules the model on real code: the stage finds what the model finds
    model_only = CodeFilter(CodeConfig(require_shape=False))
    texts = [f["content"] for f in files]
    by_model = sum(p >= 0.5 for p in model_only.code_probabilities(texts))
    assert sum(map(CodeFilter().is_code, texts)) >= by_model - 0.005 * len(files)


def test_minified_and_generated_code_is_rejected(corpus):
    source = next(
        f["content"] for f in _code_files(corpus) if f["language"] == "Python" and len(f["content"]) > 3000
    )
    minified = "var a=function(b){return b+1};" * 200  # one 6000-character line
    stage = CodeFilter()
    doc = Document(minified)
    assert stage.process(doc) == "max_line_length"
    generated = "# This file is auto-generated. Do not edit.\n" + source
    assert stage.process(Document(generated)) == "generated"
    assert stage.process(Document(source)) is None
