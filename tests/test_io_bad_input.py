"""Bad input ends as rejected rows with an io:* reason and a location, never a crash or a silent drop.

Fixtures are built in tmp_path from real text (the bundled tests/data and sample/; a few archives of the full
../shared/data) plus the one defect under test.
"""

from __future__ import annotations

import gzip
import json
import random
import tracemalloc
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from stage_corpora import arc_from_warc

from dataengine.io.config import InputConfig
from dataengine.io.paths import expand_inputs
from dataengine.io.readers import read_unit
from dataengine.io.units import plan_units

SAMPLE = Path(__file__).resolve().parents[1] / "sample"


def read_all(paths: list[str], cfg: InputConfig | None = None) -> list[dict]:
    cfg = cfg or InputConfig()
    return [row for unit in plan_units(expand_inputs(paths), cfg) for row in read_unit(unit, cfg)]


@pytest.fixture(scope="module")
def c4_lines(corpus: Path) -> list[bytes]:
    """Real JSONL lines (C4 documents), without their newlines."""
    with gzip.open(corpus / "web/text/c4-sample.01.jsonl.gz") as f:
        return f.read().splitlines()


def write_jsonl(path: Path, lines: list[bytes]) -> str:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return str(path)


def offsets(lines: list[bytes]) -> list[int]:
    """Byte offset of each line in the file `write_jsonl` writes."""
    out, pos = [], 0
    for line in lines:
        out.append(pos)
        pos += len(line) + 1
    return out


def check_one_bad_line(tmp_path: Path, c4_lines: list[bytes], bad: bytes, reason: str) -> dict:
    """Good line, bad line, good line: the bad one is rejected with `reason` at its offset, the others kept."""
    lines = [c4_lines[0], bad, c4_lines[1]]
    path = write_jsonl(tmp_path / "mixed.jsonl", lines)
    rows = read_all([path])
    assert [r["reject"] for r in rows] == [None, reason, None]
    assert [r["source"] for r in rows] == [f"{path}@{o}" for o in offsets(lines)]
    assert rows[0]["text"] == json.loads(c4_lines[0])["text"]
    assert rows[2]["text"] == json.loads(c4_lines[1])["text"]
    assert len(rows[1]["text"]) <= 1000 and rows[1]["id"]
    return rows[1]


def test_malformed_json_line(tmp_path, c4_lines):
    bad = c4_lines[2][: len(c4_lines[2]) // 2]  # a real line cut in the middle of its text
    row = check_one_bad_line(tmp_path, c4_lines, bad, "io:invalid_json")
    assert row["text"] == bad.decode()[:1000]


def test_json_that_is_not_an_object(tmp_path, c4_lines):
    check_one_bad_line(tmp_path, c4_lines, b'["a", "list"]', "io:invalid_json")


def test_invalid_utf8(tmp_path, c4_lines):
    bad = c4_lines[2].replace(b"e", b"\xe9", 3)  # Latin-1 bytes inside a UTF-8 file
    row = check_one_bad_line(tmp_path, c4_lines, bad, "io:invalid_utf8")
    assert "\ufffd" in row["text"]


def test_lone_surrogate_escape_is_invalid_unicode(tmp_path, c4_lines):
    check_one_bad_line(tmp_path, c4_lines, b'{"text": "broken \\ud800 pair"}', "io:invalid_utf8")


def test_missing_text_key(tmp_path, c4_lines):
    obj = json.loads(c4_lines[2])
    bad = json.dumps({"id": 17, "body": obj["text"]}).encode()
    row = check_one_bad_line(tmp_path, c4_lines, bad, "io:missing_text")
    assert row["id"] == "17"  # the input's id survives, as a string


@pytest.mark.parametrize("value", [42, None, ["a", "list"], {"nested": "object"}])
def test_non_string_text(tmp_path, c4_lines, value):
    check_one_bad_line(tmp_path, c4_lines, json.dumps({"text": value}).encode(), "io:non_string_text")


@pytest.mark.parametrize("value", ["", "   \n\t  "])
def test_empty_text(tmp_path, c4_lines, value):
    check_one_bad_line(tmp_path, c4_lines, json.dumps({"text": value}).encode(), "io:empty")


def test_blank_lines_are_not_records(tmp_path, c4_lines):
    path = write_jsonl(tmp_path / "blank.jsonl", [c4_lines[0], b"", b"  \t", c4_lines[1]])
    assert [r["reject"] for r in read_all([path])] == [None, None]


def test_empty_text_file(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b" \n\n ")
    rows = read_all([str(tmp_path / "empty.txt")])
    assert [r["reject"] for r in rows] == ["io:empty"]


def test_50mb_document_is_rejected_without_holding_it(tmp_path, c4_lines):
    """A 50 MB JSONL line: rejected io:too_large, 1000 characters kept, memory far below 50 MB."""
    text = json.loads(c4_lines[0])["text"]
    huge = json.dumps({"id": "huge", "text": (text + "\n") * (50_000_000 // len(text))}).encode()
    assert len(huge) > 50_000_000
    lines = [c4_lines[1], huge, c4_lines[2]]
    path = write_jsonl(tmp_path / "huge.jsonl", lines)
    del huge
    tracemalloc.start()
    rows = read_all([path])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [r["reject"] for r in rows] == [None, "io:too_large", None]
    assert rows[1]["source"] == f"{path}@{offsets(lines)[1]}"
    assert 0 < len(rows[1]["text"]) <= 1000 and rows[1]["text"].startswith('{"id": "huge"')
    # default limit: 10 MB of text, i.e. JSON lines up to 20 MB are parsed; the 50 MB line never is.
    assert peak < 30_000_000, f"peak {peak / 1e6:.1f} MB while reading a 50 MB line"


def test_50mb_plain_text_file(tmp_path, corpus):
    book = (corpus / "reference/tinyshakespeare.txt").read_bytes()
    path = tmp_path / "huge.txt"
    path.write_bytes(book * (50_000_000 // len(book) + 1))
    rows = read_all([str(path)])
    assert [r["reject"] for r in rows] == ["io:too_large"]
    assert rows[0]["text"] == book.decode()[:1000]


def test_record_just_over_the_limit(tmp_path, c4_lines):
    """The limit is on UTF-8 bytes of the text; a small limit shows the boundary exactly."""
    text = json.loads(c4_lines[0])["text"]
    size = len(text.encode())
    path = write_jsonl(tmp_path / "limit.jsonl", [c4_lines[0]])
    assert read_all([path], InputConfig(max_doc_bytes=size))[0]["reject"] is None
    assert read_all([path], InputConfig(max_doc_bytes=size - 1))[0]["reject"] == "io:too_large"


def test_binary_garbage_file_is_one_row(tmp_path):
    rng = random.Random(0)
    for name in ("garbage.jsonl", "garbage.txt"):
        (tmp_path / name).write_bytes(b"\x00\x01\x02\x03" * 1000 + rng.randbytes(200_000))
        rows = read_all([str(tmp_path / name)])
        assert [(r["reject"], r["source"].rsplit("/", 1)[-1]) for r in rows] == [
            ("io:binary", name if name.endswith(".txt") else f"{name}@0")
        ]


def test_binary_line_inside_jsonl(tmp_path, c4_lines):
    check_one_bad_line(tmp_path, c4_lines, b'{"text": "\x00\x00\x00\x01\x02"}', "io:binary")


def test_truncated_gzip(tmp_path, corpus):
    """Rows before the break come out normally, then one io:truncated_gzip row at the offset of the break."""
    whole = gzip.decompress((corpus / "code/code_files.jsonl.gz").read_bytes())
    full = gzip.compress(whole, compresslevel=6, mtime=0)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(full[: len(full) // 2])
    cfg = InputConfig(text_field="content")
    rows = read_all([str(path)], cfg)
    lines = whole.splitlines()
    good = rows[:-1]
    recoverable = zlib.decompressobj(wbits=31).decompress(full[: len(full) // 2])
    assert len(good) == recoverable.count(b"\n")  # every complete line before the break, no more
    assert 100 < len(good) < len(lines)
    assert [r["text"] for r in good] == [json.loads(line)["content"] for line in lines[: len(good)]]
    assert rows[-1]["reject"] == "io:truncated_gzip"
    assert rows[-1]["source"] == f"{path}@{offsets(lines)[len(good)]}"


def test_truncated_zstd(tmp_path, c4_lines):
    zstandard = pytest.importorskip("zstandard")
    data = b"".join(line + b"\n" for line in c4_lines * 3)
    # real .zst files are written in blocks by a streaming compressor, like this
    compressor = zstandard.ZstdCompressor().compressobj()
    blob = compressor.compress(data) + compressor.flush()
    path = tmp_path / "cut.jsonl.zst"
    path.write_bytes(blob[: len(blob) * 3 // 4])
    rows = read_all([str(path)])
    assert rows[-1]["reject"] == "io:truncated_zstd"
    assert all(r["reject"] is None for r in rows[:-1])
    (tmp_path / "whole.jsonl.zst").write_bytes(blob)
    assert len(read_all([str(tmp_path / "whole.jsonl.zst")])) == 3 * len(c4_lines)


def test_corrupt_gzip(tmp_path, c4_lines):
    (tmp_path / "fake.jsonl.gz").write_bytes(b"".join(c4_lines[:3]))  # not gzip at all
    rows = read_all([str(tmp_path / "fake.jsonl.gz")])
    assert [r["reject"] for r in rows] == ["io:corrupt_gzip"]


def test_truncated_text_gz_keeps_what_was_read(tmp_path, corpus):
    book = (corpus / "reference/tinyshakespeare.txt").read_bytes()
    blob = gzip.compress(book)
    (tmp_path / "cut.txt.gz").write_bytes(blob[: len(blob) // 2])
    rows = read_all([str(tmp_path / "cut.txt.gz")])
    assert [r["reject"] for r in rows] == ["io:truncated_gzip"]
    assert rows[0]["text"] == book.decode()[:1000]


def check_truncated_warc(tmp_path: Path, src: Path) -> None:
    """A .warc.gz cut in half: the complete records' rows as from the whole file, then io:truncated_record."""
    full_rows = read_all([str(src)])
    blob = src.read_bytes()
    for name, data in [
        ("cut.warc.gz", blob[: len(blob) // 2]),
        ("cut.warc", gzip.decompress(blob)[: len(gzip.decompress(blob)) // 2]),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        rows = read_all([str(path)])
        assert rows[-1]["reject"] == "io:truncated_record"
        assert rows[-1]["source"].startswith(f"{path}@")
        good = rows[:-1]
        assert len(good) >= 0.3 * len(full_rows)  # pages are of similar sizes: about half come out whole
        assert [(r["id"], r["text"]) for r in good] == [(r["id"], r["text"]) for r in full_rows[: len(good)]]


def test_truncated_warc_record(tmp_path):
    check_truncated_warc(tmp_path, SAMPLE / "web_pages.warc.gz")


def test_truncated_common_crawl_warc_record(tmp_path, shared_data):
    check_truncated_warc(tmp_path, shared_data / "web/warc/sample-0000.warc.gz")


def test_warc_cut_inside_a_record_header(tmp_path):
    """A cut inside the second record's WARC header: the first page, then io:truncated_record."""
    src = SAMPLE / "web_pages.warc.gz"
    whole = gzip.decompress(src.read_bytes())
    first_page = read_all([str(src)])[0]
    second_at = whole.index(b"WARC-Type: response", whole.index(b"WARC-Type: response") + 1)
    for cut in (second_at - 5, second_at + 30):  # inside the second response record's WARC header
        path = tmp_path / f"cut{cut}.warc"
        path.write_bytes(whole[:cut])
        rows = read_all([str(path)])
        assert [r["reject"] for r in rows] == [None, "io:truncated_record"]
        assert (rows[0]["id"], rows[0]["text"]) == (first_page["id"], first_page["text"])


def test_warc_cut_inside_a_header_after_non_page_records(tmp_path, shared_data):
    """whirlwind.warc.gz: warcinfo and request records (not documents), then the cut response header."""
    whole = gzip.decompress((shared_data / "web/warc/whirlwind.warc.gz").read_bytes())
    response_at = whole.index(b"WARC-Type: response")
    for cut in (response_at - 5, response_at + 30):  # inside the response record's WARC header
        path = tmp_path / f"cut{cut}.warc"
        path.write_bytes(whole[:cut])
        rows = read_all([str(path)])
        assert [r["reject"] for r in rows] == ["io:truncated_record"]


def test_truncated_arc(tmp_path):
    """An ARC (sample pages in Common Crawl's 2008 framing) cut inside a record."""
    blob = arc_from_warc(SAMPLE / "web_pages.warc.gz")
    path = tmp_path / "cut.arc"
    path.write_bytes(blob[: len(blob) // 2])
    rows = read_all([str(path)])
    assert rows[-1]["reject"] == "io:truncated_record"
    assert rows[-1]["source"].startswith(f"{path}@")
    assert all(r["reject"] is None for r in rows[:-1]) and len(rows) > 1


def test_truncated_common_crawl_arc(tmp_path, shared_data):
    blob = (shared_data / "web/warc/small-sample-1262850551027_8.arc").read_bytes()
    path = tmp_path / "cut.arc"
    path.write_bytes(blob[:400_000])
    rows = read_all([str(path)])
    assert rows[-1]["reject"] == "io:truncated_record"
    assert rows[-1]["source"].startswith(f"{path}@")


def test_garbage_archive(tmp_path, c4_lines):
    (tmp_path / "text.warc").write_bytes(b"\n".join(c4_lines[:5]))
    (tmp_path / "binary.arc").write_bytes(random.Random(1).randbytes(20_000))
    assert [r["reject"] for r in read_all([str(tmp_path / "text.warc")])] == ["io:corrupt_archive"]
    assert [r["reject"] for r in read_all([str(tmp_path / "binary.arc")])] == ["io:binary"]


def test_unreadable_parquet(tmp_path, c4_lines):
    (tmp_path / "garbage.parquet").write_bytes(b"".join(c4_lines[:3]))
    rows = read_all([str(tmp_path / "garbage.parquet")])
    assert [r["reject"] for r in rows] == ["io:parquet_error"]
    assert rows[0]["source"] == f"{tmp_path / 'garbage.parquet'}#row 0"
    assert "Parquet" in rows[0]["text"] or "parquet" in rows[0]["text"]


def test_truncated_parquet(tmp_path, c4_lines):
    texts = [json.loads(line)["text"] for line in c4_lines]
    pq.write_table(pa.table({"text": texts}), tmp_path / "whole.parquet")
    blob = (tmp_path / "whole.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(blob[: len(blob) // 2])
    assert [r["reject"] for r in read_all([str(tmp_path / "cut.parquet")])] == ["io:parquet_error"]


def test_parquet_missing_and_non_string_text(tmp_path, c4_lines):
    n = len(c4_lines)
    pq.write_table(pa.table({"id": list(range(n)), "body": ["x"] * n}), tmp_path / "no_text.parquet")
    pq.write_table(pa.table({"text": list(range(n))}), tmp_path / "int_text.parquet")
    missing = read_all([str(tmp_path / "no_text.parquet")])
    assert [r["reject"] for r in missing] == ["io:missing_text"] * n
    assert [r["id"] for r in missing] == [str(i) for i in range(n)]
    assert {r["reject"] for r in read_all([str(tmp_path / "int_text.parquet")])} == {"io:non_string_text"}
