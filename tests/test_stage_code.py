"""Code detection: real source files become lang=code and skip prose rules; prose stays prose."""

from __future__ import annotations

import gzip
import json

from dataengine.api import process
from dataengine.config import PipelineConfig
from dataengine.stages.code import CodeFilter
from dataengine.stages.document import Document

PROGRAMMING = {"Python", "C++", "C/C++ header", "Rust", "JavaScript", "Shell"}


def _code_files(corpus, limit=400):
    with gzip.open(corpus / "code/code_files.jsonl.gz", "rt") as fh:
        files = [json.loads(line) for line in fh]
    return [f for f in files if f["language"] in PROGRAMMING][::3][:limit]


def test_detects_real_source_files_and_not_prose(corpus):
    stage = CodeFilter()
    code = _code_files(corpus)
    detected = sum(stage.code_probability(f["content"]) >= 0.5 for f in code)
    assert detected >= 0.95 * len(code)
    zh = [
        json.loads(line)["text"]
        for line in open(corpus / "zh/cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8")
    ]
    ewt = [
        json.loads(line)["text"] for line in open(corpus / "web/text/ewt_web_docs.jsonl", encoding="utf-8")
    ]
    prose = zh[:300] + ewt[:300]
    false_code = sum(stage.code_probability(t) >= 0.5 for t in prose)
    assert false_code <= 0.02 * len(prose)


def test_code_skips_prose_rules_in_the_chain(corpus):
    files = _code_files(corpus, limit=60)
    result = process([{"id": f["path"], "text": f["content"]} for f in files], PipelineConfig())
    kept = result.kept.to_pylist()
    assert len(kept) >= 0.9 * len(files)
    assert all(r["lang"] == "code" for r in kept)
    assert not any(r.get("gopher.word_count") for r in kept)  # prose stages never ran on them


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
