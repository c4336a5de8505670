"""Work units of large files: `unit_bytes: auto` and WARC files cut at record boundaries.

Every record must be read exactly once whatever the cuts: the rows of the split units, in order, are
the rows of the file read as one unit.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from fastwarc.warc import ArchiveIterator, WarcRecordType

from dataengine.io.config import InputConfig
from dataengine.io.readers import read_unit
from dataengine.io.units import plan_units, unit_bytes_for

ROOT = Path(__file__).resolve().parents[1]
MiB = 2**20


def _rows(units, cfg: InputConfig) -> list[dict]:
    return [row for unit in units for row in read_unit(unit, cfg)]


def _zh_record(i: int, text: str) -> bytes:
    """A WARC response record of a Chinese Wikipedia paragraph as a page; its payload quotes a WARC
    header after a blank line, which a cut searching for "WARC/1.0" would take for a record start."""
    html = f"<html><body><h1>第{i}段</h1><p>{text}</p><pre>\r\n\r\nWARC/1.0\r\n</pre></body></html>"
    block = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html.encode()
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:zh-{i}>\r\n"
        f"WARC-Target-URI: https://zh.wikipedia.org/{i}\r\nContent-Type: application/http; msgtype=response\r\n"
        f"Content-Length: {len(block)}\r\n\r\n"
    )
    return head.encode() + block + b"\r\n\r\n"


@pytest.fixture
def warc(tmp_path: Path, corpus: Path) -> Path:
    """The bundled sample's WARC of real English pages, uncompressed (~0.9 MB), with Chinese Wikipedia
    pages in records of its own between them."""
    zh = [
        json.loads(line)["text"]
        for line in open(corpus / "zh/cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8")
    ]
    path = tmp_path / "pages.warc"
    with gzip.open(ROOT / "sample/web_pages.warc.gz", "rb") as src:
        data = src.read()
    starts = [m.start() for m in re.finditer(rb"(?<=\r\n\r\n)WARC/1\.0\r\nWARC-Type: response", data)]
    parts, prev = [], 0
    for i, start in enumerate(starts):
        parts += [data[prev:start], _zh_record(i, zh[i * 3] + zh[i * 3 + 1])]
        prev = start
    path.write_bytes(b"".join([*parts, data[prev:]]))
    return path


def _record_offsets(path: Path) -> list[int]:
    with open(path, "rb") as fh:
        return [r.stream_pos for r in ArchiveIterator(fh, record_types=WarcRecordType.any_type)]


def test_warc_units_read_every_record_once(warc: Path):
    whole_cfg = InputConfig(unit_bytes=10**12)
    (whole_unit,) = plan_units([str(warc)], whole_cfg)
    whole = _rows([whole_unit], whole_cfg)
    assert len(whole) >= 5 and len({r["id"] for r in whole}) == len(whole)
    assert any("的" in r["text"] for r in whole if not r["reject"]), "the sample has a Chinese page"
    offsets = set(_record_offsets(warc))
    for unit_bytes in (1, 50_000, 300_000):
        cfg = InputConfig(unit_bytes=unit_bytes)
        units = plan_units([str(warc)], cfg)
        assert len(units) >= 3
        assert {u.start for u in units} <= offsets, "every cut is at the start of a record"
        assert _rows(units, cfg) == whole  # same rows, same `source` offsets, same order


def test_warc_cut_short_reports_its_end_once(warc: Path):
    """A file ending inside a record: the last unit reports io:truncated_record where the whole read does."""
    data = warc.read_bytes()
    last = _record_offsets(warc)[-1]
    warc.write_bytes(data + data[last : last + (len(data) - last) // 2])
    whole = _rows(plan_units([str(warc)], InputConfig(unit_bytes=10**12)), InputConfig())
    cfg = InputConfig(unit_bytes=100_000)
    split = _rows(plan_units([str(warc)], cfg), cfg)
    assert split == whole
    assert [r["reject"] for r in split].count("io:truncated_record") == 1


def test_compressed_files_stay_one_unit():
    cfg = InputConfig(unit_bytes=1000)
    units = plan_units([str(ROOT / "sample/web_pages.warc.gz"), str(ROOT / "sample/zh_wiki.jsonl.gz")], cfg)
    assert [(u.start, u.end) for u in units] == [(0, None), (0, None)]


def test_auto_unit_bytes_follow_the_total_input():
    cfg = InputConfig()
    assert cfg.unit_bytes == "auto"
    assert unit_bytes_for(100 * 10**6, cfg) == 100 * 10**6 // 64  # one 100 MB file: ~64 units
    assert unit_bytes_for(5 * 10**6, cfg) == MiB  # small jobs: 1 MiB units, not hundreds of tiny ones
    assert unit_bytes_for(50 * 10**9, cfg) == 64 * MiB  # large corpora: 64 MiB units
    assert unit_bytes_for(50 * 10**9, InputConfig(unit_bytes=123)) == 123


def test_auto_splits_one_large_file_deterministically(corpus: Path, tmp_path: Path):
    """One ~4 MB JSONL file of English and Chinese text becomes several units, always the same ones,
    reading the same rows as one unit."""
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as out:
        for _ in range(2):
            out.write((corpus / "web/text/ewt_web_docs.jsonl").read_bytes())
            out.write((corpus / "zh/cmrc2018_zhwiki_contexts.jsonl").read_bytes())
    cfg = InputConfig()
    units = plan_units([str(path)], cfg)
    assert len(units) == -(-path.stat().st_size // MiB) or len(units) == path.stat().st_size // MiB
    assert [u.unit_id for u in plan_units([str(path)], cfg)] == [u.unit_id for u in units]
    whole_cfg = InputConfig(unit_bytes=10**12)
    assert _rows(units, cfg) == _rows(plan_units([str(path)], whole_cfg), whole_cfg)
