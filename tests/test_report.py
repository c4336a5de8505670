"""Keep rate and top reasons per language and per source file: run.json's by_language / by_source and
report.html's tables and headlines, on the bundled sample (en web, zh Wikipedia, code, a book, a WARC)
through the real runner with the shipped configs/pipeline.yaml (dedup phase on)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dataengine.config import load_pipeline_config
from dataengine.processor import DocumentProcessor
from dataengine.report import headline, reasons_chart, summary_rows, write_report
from dataengine.stats import RunStats, source_file

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ["en_web.jsonl.gz", "zh_wiki.jsonl.gz", "code.jsonl.gz", "pg84.txt", "web_pages.warc.gz"]


def _assert_groups_add_up(run: dict, name: str) -> None:
    groups = run[name]
    assert sum(g["input"] for g in groups.values()) == run["input"], name
    assert sum(g["kept"] for g in groups.values()) == run["kept"], name
    assert sum(g["rejected"] for g in groups.values()) == run["rejected"], name
    reasons: Counter = Counter()
    for key, g in groups.items():
        assert g["input"] == g["kept"] + g["rejected"] == g["kept"] + sum(g["reasons"].values()), key
        assert g["keep_rate"] == pytest.approx(g["kept"] / g["input"], abs=1e-4)
        counts = list(g["reasons"].values())
        assert counts == sorted(counts, reverse=True), f"{key}: reasons not sorted by count"
        if counts:
            assert g["top_reason"] == next(iter(g["reasons"]))
            assert g["top_reason_share"] == pytest.approx(counts[0] / g["rejected"], abs=1e-4)
        reasons.update(g["reasons"])
    assert dict(reasons) == run["rejected_by_reason"], name
    inputs = [g["input"] for g in groups.values()]
    assert inputs == sorted(inputs, reverse=True), f"{name}: not sorted by input"


def _rows(paths: list[Path], columns: list[str]) -> list[dict]:
    rows: list[dict] = []
    for path in paths:
        for f in sorted(path.glob("*.parquet")):
            rows += pq.read_table(f, columns=columns).to_pylist()
    return rows


def test_processor_counts_each_row_in_its_language_and_file(corpus):
    """Without Ray: the processor's per-batch statistics, merged as the runner merges unit markers."""
    cfg = load_pipeline_config(ROOT / "configs/pipeline.yaml", ["dedup=null"])
    processor = DocumentProcessor(cfg)
    zh = [
        json.loads(line)["text"]
        for line in open(corpus / "zh/cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8")
    ][:40]
    en = [
        json.loads(line)["text"] for line in open(corpus / "web/text/ewt_web_docs.jsonl", encoding="utf-8")
    ][:40]
    rows = [{"text": t, "source": f"/data/zh.jsonl@{100 * i}"} for i, t in enumerate(zh)]
    rows += [{"text": t, "source": f"/data/en.parquet#row {i}"} for i, t in enumerate(en)]
    rows.append({"text": "", "source": "/data/en.parquet#row 40", "reject": "io:missing_text"})
    total = RunStats()
    for start in range(0, len(rows), 16):  # batches, each taken as a unit's statistics and merged
        processor.process(rows[start : start + 16])
        total.merge(RunStats.from_dict(processor.take_stats().to_dict()))
    run = total.to_dict()
    assert run["input"] == len(rows)
    for name in ("by_language", "by_source"):
        _assert_groups_add_up(run, name)
    assert set(run["by_source"]) == {"/data/zh.jsonl", "/data/en.parquet"}
    assert run["by_source"]["/data/zh.jsonl"]["input"] == len(zh)
    assert run["by_source"]["/data/en.parquet"]["input"] == len(en) + 1
    assert run["by_language"]["unknown"] == {
        "input": 1,
        "kept": 0,
        "rejected": 1,
        "keep_rate": 0.0,
        "top_reason": "io:missing_text",
        "top_reason_share": 1.0,
        "reasons": {"io:missing_text": 1},
    }
    assert run["by_language"]["zh"]["input"] >= 0.9 * len(zh)
    assert run["by_language"]["en"]["input"] >= 0.9 * len(en)


def test_source_file_drops_the_record_offset():
    assert source_file("/d/a.jsonl.gz@1234") == "/d/a.jsonl.gz"
    assert source_file("s3://bucket/x@2/part.warc.gz@77") == "s3://bucket/x@2/part.warc.gz"
    assert source_file("/d/t.parquet#row 9") == "/d/t.parquet"
    assert source_file("memory:row 3") == "memory"
    assert source_file("/d/book.txt") == "/d/book.txt"  # a whole-file text document
    assert source_file("/d/book.txt#part 2/8") == "/d/book.txt"  # a part of a split document
    assert source_file("/d/a.jsonl@1234#part 10/12") == "/d/a.jsonl"
    assert source_file(None) == "unknown"


@pytest.mark.ray
def test_by_language_and_source_on_the_sample(ray_session, tmp_path_factory):
    from dataengine.runner import run

    out = tmp_path_factory.mktemp("report") / "out"
    inputs = [str(ROOT / "sample" / name) for name in SAMPLE]
    cfg = load_pipeline_config(ROOT / "configs/pipeline.yaml", ["ray.num_workers=2"])
    assert cfg.dedup is not None, "the shipped config runs the dedup phase"
    result = run(cfg, inputs=inputs, output=str(out), progress=False)
    on_disk = json.loads((out / "run.json").read_text())
    assert on_disk["by_language"] == result["by_language"] and on_disk["by_source"] == result["by_source"]
    for name in ("by_language", "by_source", "by_category"):
        _assert_groups_add_up(on_disk, name)
    by_lang, by_source = on_disk["by_language"], on_disk["by_source"]
    assert {"en", "zh", "code"} <= set(by_lang)
    assert set(by_source) == set(inputs)

    # every group's counts are what the output files hold: kept rows after dedup by their lang and
    # source file; rejected rows of both phases (dedup's attributed by the rejected copy's own columns)
    kept = _rows([out / "kept"], ["lang", "source", "category"])
    rejected = _rows(
        [out / "phase1" / "rejected", out / "dedup" / "rejected"], ["lang", "source", "category", "reject"]
    )
    assert len(kept) == on_disk["kept"] and len(rejected) == on_disk["rejected"]
    assert any(r["reject"].startswith("dedup:") for r in rejected), "the sample has duplicates"
    for name, key_of in (
        ("by_language", lambda r: r["lang"] or "unknown"),
        ("by_source", lambda r: source_file(r["source"])),
        ("by_category", lambda r: r["category"] or "unknown"),
    ):
        kept_by = Counter(key_of(r) for r in kept)
        reasons_by: dict[str, Counter] = {}
        for r in rejected:
            reasons_by.setdefault(key_of(r), Counter())[r["reject"]] += 1
        for key, g in on_disk[name].items():
            assert g["kept"] == kept_by[key], (name, key)
            assert g["reasons"] == dict(reasons_by.get(key, {})), (name, key)
    assert on_disk["phase1"]["kept"] == sum(
        g["kept"] + sum(n for r, n in g["reasons"].items() if r.startswith("dedup:"))
        for g in by_lang.values()
    )

    # category mix in tokens and quality bins count phase 1's kept rows
    phase1_kept = _rows([out / "phase1" / "kept"], ["category", "quality_bin"])
    assert set(on_disk["category_tokens"]) == {r["category"] for r in phase1_kept}
    assert sum(on_disk["quality_bins"].values()) == sum(r["quality_bin"] is not None for r in phase1_kept) > 0

    # the report: a headline per language, a table per language, source file and category, their charts
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "keep rate by language" in page and "keep rate by source file" in page
    assert "keep rate by category" in page
    # the headline table: the final kept MB (after dedup), phase 1's beside it, the whole run's wall time
    final_mb = sum(len(t.encode()) for t in pq.read_table(out / "kept", columns=["text"])["text"].to_pylist())
    assert f"<td>kept MB</td><td>{final_mb / 1e6:.2f}</td>" in page
    assert f"<td>kept by phase 1 (before dedup)</td><td>{on_disk['phase1']['kept']} documents" in page
    assert re.search(r"<td>wall time \(whole run\)</td><td>[^<]* — phase 1 [^<]*, dedup ", page)
    assert (out / "report" / "categories.png").stat().st_size > 0 and (
        out / "report" / "quality.png"
    ).is_file()
    for lang in ("zh", "en"):
        g = by_lang[lang]
        line = headline(lang, g)
        assert re.fullmatch(rf"{lang}: \d+(\.\d)?% kept of {g['input']} — top reason \S+ \(.*\)", line)
        assert g["top_reason"] in line
        assert line[len(lang) :] in page
    for path in inputs:
        assert f"<td>{Path(path).name}</td>" in page  # shown under their common folder
    positions = [page.index(f"<td>{lang}</td>") for lang in by_lang]
    assert positions == sorted(positions), "the table lists languages by input count"

    # `dataengine report OUT` redraws the page from run.json alone
    (out / "report.html").unlink()
    shutil.rmtree(out / "report")
    cli = Path(sys.executable).with_name("dataengine")
    subprocess.run([str(cli), "report", str(out)], check=True, capture_output=True, timeout=300)
    assert (out / "report.html").read_text(encoding="utf-8") == page

    # a run.json written before these sections still draws (without them)
    old = {
        k: v
        for k, v in on_disk.items()
        if k not in ("by_language", "by_source", "by_category", "category_tokens", "quality_bins")
    }
    legacy = out.parent / "legacy"
    legacy.mkdir()
    (legacy / "run.json").write_text(json.dumps(old))
    assert "keep rate by language" not in Path(write_report(str(legacy))).read_text(encoding="utf-8")


def test_summary_rows_show_both_phases_and_the_whole_wall_time():
    """A run of 1 m 43 s whose phase 1 took 36 s says 1 m 43 s, and kept MB is after dedup."""
    run = {
        "input": 5000,
        "kept": 3000,
        "rejected": 2000,
        "input_bytes": 40_000_000,
        "kept_bytes": 21_000_000,
        "phase1": {"input": 5000, "kept": 3400, "rejected": 1600, "kept_bytes": 24_500_000},
        "timings": {"wall_s": 103.4, "phase1_s": 36.2, "dedup_s": 61.0},
        "units": {"total": 64, "resumed_from_previous_run": 0},
    }
    rows = dict(summary_rows(run))
    assert rows["kept MB"] == "21.00"
    assert rows["kept by phase 1 (before dedup)"] == "3400 documents, 24.50 MB"
    assert rows["wall time (whole run)"] == "1 m 43 s (103.4 s) — phase 1 36.2 s, dedup 1 m 1 s (61.0 s)"
    # a run without dedup (or written before these timings) shows only what it has
    del run["phase1"], run["timings"]["phase1_s"], run["timings"]["dedup_s"]
    rows = dict(summary_rows(run))
    assert (
        "kept by phase 1 (before dedup)" not in rows and rows["wall time (whole run)"] == "1 m 43 s (103.4 s)"
    )


def test_reasons_chart_draws_a_run_that_rejected_nothing():
    assert reasons_chart({"rejected_by_reason": {}})[:4] == b"\x89PNG"
    many = {f"gopher:rule_{i}": 10**i for i in range(6)}
    assert reasons_chart({"rejected_by_reason": many})[:4] == b"\x89PNG"
