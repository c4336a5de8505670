"""`import dataengine`: the stages on a list of dicts or an Arrow table, without Ray."""

from __future__ import annotations

import json

import pyarrow as pa

import dataengine


def test_process_real_english_and_chinese_and_bad_records(corpus):
    zh = [json.loads(line) for line in open(corpus / "zh/cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8")]
    ewt = [json.loads(line) for line in open(corpus / "web/text/ewt_web_docs.jsonl", encoding="utf-8")]
    docs = [{"id": d["id"], "text": d["text"]} for d in zh[:40]]
    docs += [{"id": d["doc_id"], "text": d["text"]} for d in ewt if len(d["text"]) > 1500][:20]
    bad = [{"id": "no-text"}, {"id": "number", "text": 7}, {"id": "blank", "text": "  \n "}]
    result = dataengine.process(pa.Table.from_pylist(docs[:30]))
    result_list = dataengine.process(docs[30:] + bad)
    kept = result.kept.to_pylist() + result_list.kept.to_pylist()
    rejected = result.rejected.to_pylist() + result_list.rejected.to_pylist()
    assert len(kept) + len(rejected) == len(docs) + len(bad)
    assert {r["lang"] for r in kept} == {"zh", "en"}
    reasons = {r["id"]: r["reject"] for r in rejected}
    assert reasons["no-text"] == "io:missing_text"
    assert reasons["number"] == "io:non_string_text"
    assert reasons["blank"] == "io:empty"
    assert result_list.stats.input == len(docs) - 30 + len(bad)
    assert result.kept.schema.equals(result_list.kept.schema)
