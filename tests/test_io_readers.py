"""Readers on real data (the bundled tests/data, a few files of the full ../shared/data): JSONL (.gz/.zst), Chinese, code, Parquet, plain text, splitting."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from stage_corpora import html_responses

from dataengine.io.config import InputConfig
from dataengine.io.paths import expand_inputs
from dataengine.io.readers import read_unit
from dataengine.io.readers.rows import stable_id
from dataengine.io.units import plan_units

SAMPLE_WARC = Path(__file__).resolve().parents[1] / "sample" / "web_pages.warc.gz"
ROW_KEYS = {"id", "text", "source", "url", "title", "reject"}


def read_all(paths: list[str], cfg: InputConfig | None = None) -> list[dict]:
    cfg = cfg or InputConfig()
    return [row for unit in plan_units(expand_inputs(paths), cfg) for row in read_unit(unit, cfg)]


def json_lines(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_c4_jsonl_gz(corpus: Path):
    path = corpus / "web/text/c4-sample.01.jsonl.gz"
    records = json_lines(path)
    rows = read_all([str(path)])
    assert all(set(r) == ROW_KEYS for r in rows)
    assert [r["text"] for r in rows] == [r["text"] for r in records]
    assert [r["url"] for r in rows] == [r["url"] for r in records]
    assert all(r["reject"] is None for r in rows)
    # C4 rows have no id: a hash of the location, the same on every read
    assert [r["id"] for r in rows] == [stable_id(r["source"]) for r in rows]
    assert [r["id"] for r in read_all([str(path)])] == [r["id"] for r in rows]
    assert len({r["id"] for r in rows}) == len(rows)
    assert rows[0]["source"] == f"{path}@0"


def test_zstd_jsonl_matches_gzip(corpus: Path, tmp_path: Path):
    raw = gzip.decompress((corpus / "web/text/c4-sample.02.jsonl.gz").read_bytes())
    (tmp_path / "c4.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    (tmp_path / "c4.jsonl").write_bytes(raw)
    zst = read_all([str(tmp_path / "c4.jsonl.zst")])
    plain = read_all([str(tmp_path / "c4.jsonl")])
    assert [r["text"] for r in zst] == [r["text"] for r in plain] and len(zst) == raw.count(b"\n")


def test_chinese_wikipedia_paragraphs(corpus: Path):
    path = corpus / "zh/cmrc2018_zhwiki_contexts.jsonl"
    records = json_lines(path)
    rows = read_all([str(path)])
    assert len(rows) == len(records) == 1104
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    assert [r["title"] for r in rows] == [r["title"] for r in records]
    assert all(r["reject"] is None for r in rows)
    cjk = sum(any("\u4e00" <= ch <= "\u9fff" for ch in r["text"]) for r in rows)
    assert cjk == len(rows)


def test_chinese_plain_text_lines_with_bom(corpus: Path, tmp_path: Path):
    """A UTF-8 BOM and no known extension (as SIGHAN's files): format and mode from the config."""
    paragraphs = [r["text"] for r in json_lines(corpus / "zh/cmrc2018_zhwiki_contexts.jsonl")][:200]
    path = tmp_path / "zhwiki.utf8"
    path.write_bytes("\ufeff".encode() + "\r\n\r\n".join(paragraphs).encode())
    rows = read_all([str(path)], InputConfig(format="text", text_mode="lines"))
    assert [r["text"] for r in rows] == paragraphs  # no BOM on the first line, blank lines are no rows
    assert all(r["reject"] is None for r in rows)
    with pytest.raises(ValueError, match="input.format"):
        read_all([str(path)])


def test_sighan_plain_text_lines_with_bom(shared_data: Path):
    """SIGHAN 2005's CityU test file (not bundled): BOM, traditional Chinese, no known extension."""
    path = shared_data / "zh/sighan2005/cityu_test.utf8"
    lines = [ln for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    rows = read_all([str(path)], InputConfig(format="text", text_mode="lines"))
    assert [r["text"] for r in rows] == lines
    assert rows[0]["text"].startswith("「練得銅皮鐵骨」")
    assert all(r["reject"] is None for r in rows)


def test_code_files(corpus: Path):
    path = corpus / "code/code_files.jsonl.gz"
    records = json_lines(path)
    rows = read_all([str(path)], InputConfig(text_field="content", id_field="path"))
    assert len(rows) == len(records)
    for rec, row in zip(records, rows, strict=True):
        if rec["content"].strip():
            assert row["reject"] is None and row["text"] == rec["content"] and row["id"] == rec["path"]
        else:  # e.g. empty __init__.py files
            assert row["reject"] == "io:empty"
    assert sum(r["reject"] is None for r in rows) > 0.9 * len(rows)


def test_parquet_from_real_rows(corpus: Path, tmp_path: Path):
    """English and Chinese rows in a Parquet file with several row groups; split units read the same rows."""
    en = json_lines(corpus / "web/text/c4-sample.03.jsonl.gz")
    zh = json_lines(corpus / "zh/cmrc2018_zhwiki_contexts.jsonl")[:300]
    table = pa.table(
        {
            "id": [f"c4-{i}" for i in range(len(en))] + [r["id"] for r in zh],
            "text": [r["text"] for r in en] + [r["text"] for r in zh],
            "url": [r["url"] for r in en] + [None] * len(zh),
            "extra": list(range(len(en) + len(zh))),
        }
    )
    path = tmp_path / "mixed.parquet"
    pq.write_table(table, path, row_group_size=50)
    whole = read_all([str(path)])
    assert [r["text"] for r in whole] == table.column("text").to_pylist()
    assert [r["id"] for r in whole] == table.column("id").to_pylist()
    assert [r["url"] for r in whole] == table.column("url").to_pylist()
    assert whole[-1]["source"] == f"{path}#row {len(whole) - 1}"
    cfg = InputConfig(unit_bytes=20_000)
    units = plan_units([str(path)], cfg)
    assert len(units) > 3
    split = [row for u in units for row in read_unit(u, cfg)]
    assert split == whole


def test_parquet_html_field(tmp_path: Path):
    """The sample WARC's pages as raw HTML in a Parquet column: text and title extracted, ids kept."""
    pages = [{"id": rid, "url": url, "html": body.decode()} for rid, url, body in html_responses(SAMPLE_WARC)]
    pq.write_table(pa.Table.from_pylist(pages), tmp_path / "p.parquet")
    rows = read_all([str(tmp_path / "p.parquet")], InputConfig(html_field="html"))
    assert [(r["id"], r["url"]) for r in rows] == [(p["id"], p["url"]) for p in pages]
    assert all(
        r["reject"] is None and len(r["text"]) > 200 and r["title"] for r in rows
    )  # short homepages too
    assert all("<div" not in r["text"] for r in rows)
    assert [r["text"] for r in rows] == [r["text"] for r in read_all([str(SAMPLE_WARC)])]


def test_parquet_html_field_on_news_articles(shared_data: Path, tmp_path: Path):
    """Five articles of the article-body benchmark (AEB, not bundled)."""
    with gzip.open(shared_data / "web/aeb_pages.jsonl.gz", "rt") as f:
        pages = [json.loads(next(f)) for _ in range(5)]
    pq.write_table(
        pa.Table.from_pylist([{k: p[k] for k in ("id", "url", "html")} for p in pages]),
        tmp_path / "p.parquet",
    )
    rows = read_all([str(tmp_path / "p.parquet")], InputConfig(html_field="html"))
    assert [r["id"] for r in rows] == [p["id"] for p in pages]
    assert all(r["reject"] is None and len(r["text"]) > 500 and r["title"] for r in rows)
    assert all("<div" not in r["text"] for r in rows)


def test_text_modes_on_a_real_book(corpus: Path):
    path = corpus / "reference/tinyshakespeare.txt"
    content = path.read_text(encoding="utf-8")
    (whole,) = read_all([str(path)])
    assert whole["text"] == content and whole["source"] == str(path)
    paragraphs = read_all([str(path)], InputConfig(text_mode="paragraphs"))
    expected = [p for p in content.split("\n\n") if p.strip()]
    assert [r["text"] for r in paragraphs] == [p.strip("\n") for p in expected]
    assert paragraphs[1]["source"] == f"{path}@{content.index(expected[1])}"


def make_big_jsonl(data: Path, path: Path) -> bytes:
    """Real English, Chinese and code lines plus CRLF endings, blank and broken lines, no final newline."""
    parts = [
        gzip.decompress((data / "web/text/c4-sample.01.jsonl.gz").read_bytes()),
        (data / "zh/cmrc2018_zhwiki_contexts.jsonl").read_bytes()[:400_000],
        gzip.decompress((data / "code/code_files.jsonl.gz").read_bytes())[:600_000],
    ]
    lines = b"".join(parts).splitlines()
    lines = [ln for ln in lines if ln.strip()]
    mixed = []
    for i, line in enumerate(lines):
        mixed.append(line + (b"\r\n" if i % 7 == 0 else b"\n"))
        if i % 50 == 0:
            mixed.append(b"\n" if i % 100 else b'{"text": "broken\n')
    data = b"".join(mixed).rstrip(b"\n")
    path.write_bytes(data)
    return data


def test_split_units_read_exactly_the_same_rows(corpus: Path, tmp_path: Path):
    path = tmp_path / "big.jsonl"
    data = make_big_jsonl(corpus, path)
    whole_cfg = InputConfig(text_field="text", unit_bytes=len(data) + 1)
    (unit,) = plan_units([str(path)], whole_cfg)
    whole = list(read_unit(unit, whole_cfg))
    # the byte cuts of the source files leave a line with a split character and a cut JSON line
    assert {r["reject"] for r in whole} == {None, "io:invalid_json", "io:missing_text", "io:invalid_utf8"}
    for unit_bytes in (1000, 65_536, 333_333):
        cfg = InputConfig(unit_bytes=unit_bytes)
        units = plan_units([str(path)], cfg)
        assert len(units) >= 3 and all(u.end is None or u.end - u.start >= unit_bytes for u in units)
        split = [row for u in units for row in read_unit(u, cfg)]
        assert split == whole


@pytest.mark.parametrize("mode", ["paragraphs", "lines"])
def test_split_text_units_read_the_same_rows(corpus: Path, tmp_path: Path, mode: str):
    path = tmp_path / "book.txt"
    shutil.copy(corpus / "reference/tinyshakespeare.txt", path)
    whole = read_all([str(path)], InputConfig(text_mode=mode))
    cfg = InputConfig(text_mode=mode, unit_bytes=50_000)
    units = plan_units([str(path)], cfg)
    assert len(units) > 10
    assert [row for u in units for row in read_unit(u, cfg)] == whole


def test_rows_stream_lazily(corpus: Path):
    """Reading the first rows of a unit does not read the whole file first."""
    cfg = InputConfig(text_field="content")
    (unit,) = plan_units([str(corpus / "code/code_files.jsonl.gz")], cfg)
    rows = read_unit(unit, cfg)
    first = next(rows)
    assert first["reject"] is None and first["id"]
    rows.close()
