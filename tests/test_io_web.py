"""HTML to text on real web data: WARC and ARC archives, raw-HTML JSONL fields, charsets, gold articles."""

from __future__ import annotations

import gzip
import itertools
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from fastwarc.warc import ArchiveIterator, WarcRecordType
from stage_corpora import arc_from_warc, html_responses

from dataengine.io.config import InputConfig
from dataengine.io.readers import read_unit
from dataengine.io.readers.html import decode_html
from dataengine.io.units import plan_units

# The demo sample's WARC (bundled): one Common Crawl capture of an.wikipedia.org (whirlwind.warc.gz) and ten
# creativecommons.org / allenai.org captures (sample-0001.warc.gz), one gzip member per record.
SAMPLE_WARC = Path(__file__).resolve().parents[1] / "sample" / "web_pages.warc.gz"
# Whole archives of ../shared/data/web/warc (extended tier).
QUICK_WARCS = [
    "whirlwind.warc.gz",
    "clueweb12-0000tw-00.warc.gz",
    "sample-0000.warc.gz",
    "sample-0001.warc.gz",
    "clueweb09-en0000-00.warc.gz",
]
WORD = re.compile(r"\w+")


def read_file(path: Path, cfg: InputConfig | None = None) -> list[dict]:
    cfg = cfg or InputConfig()
    return [row for unit in plan_units([str(path)], cfg) for row in read_unit(unit, cfg)]


def response_records(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in ArchiveIterator(f, record_types=WarcRecordType.response, quirks_mode=True))


@pytest.fixture(scope="module")
def sample_rows() -> list[dict]:
    return read_file(SAMPLE_WARC)


@pytest.fixture(scope="module")
def warc_rows(shared_data: Path) -> dict[str, list[dict]]:
    return {name: read_file(shared_data / "web/warc" / name) for name in QUICK_WARCS}


def check_warc_documents(path: Path, rows: list[dict]) -> None:
    """Every HTML response is one row (these archives hold only HTML responses), with sensible text."""
    assert len(rows) == response_records(path), path
    kept = [r for r in rows if r["reject"] is None]
    assert len(kept) >= 0.9 * len(rows), path
    assert sum(len(r["text"]) > 200 for r in kept) >= 0.8 * len(kept), path
    assert all(r["url"].startswith("http") and r["id"].startswith("<urn:uuid:") for r in rows), path
    assert all(not re.search(r"</?(div|script|span)\b", r["text"]) for r in kept), path
    offsets = [int(r["source"].rsplit("@", 1)[1]) for r in rows]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), path


def test_sample_warc_pages_become_documents(sample_rows: list[dict]):
    check_warc_documents(SAMPLE_WARC, sample_rows)
    assert [(r["id"], r["url"]) for r in sample_rows] == [(i, u) for i, u, _ in html_responses(SAMPLE_WARC)]


def test_warc_pages_become_documents(shared_data: Path, warc_rows: dict[str, list[dict]]):
    for name, rows in warc_rows.items():
        check_warc_documents(shared_data / "web/warc" / name, rows)


def test_known_pages(sample_rows: list[dict]):
    wiki = next(r for r in sample_rows if "wikipedia" in r["url"])
    assert wiki["url"] == "https://an.wikipedia.org/wiki/Escopete"
    assert wiki["title"].startswith("Escopete")
    assert "Escopete" in wiki["text"] and "Guadalachara" in wiki["text"]
    by_url = {r["url"]: r for r in sample_rows}
    cc = by_url["https://creativecommons.org/"]
    assert cc["title"] == "Homepage - Creative Commons" and "Creative Commons" in cc["text"]
    # the chunked transfer encoding of that response is undone: no chunk sizes leak into the page
    assert not re.match(r"[0-9a-f]+\s", cc["text"])


def test_known_pages_in_the_original_archives(warc_rows: dict[str, list[dict]]):
    """The sample's pages read the same from the archives they were taken from."""
    (wiki,) = warc_rows["whirlwind.warc.gz"]
    assert wiki["url"] == "https://an.wikipedia.org/wiki/Escopete" and "Guadalachara" in wiki["text"]
    by_url = {r["url"]: r for r in warc_rows["sample-0001.warc.gz"]}
    assert by_url["https://creativecommons.org/"]["title"] == "Homepage - Creative Commons"


def test_arc_framing_on_sample_pages(tmp_path: Path, sample_rows: list[dict]):
    """ARC v1 framing (a header line, the record, no separator) around the sample's HTTP responses: the same
    pages as from the WARC, plain or gzipped, each located at its header line."""
    data = arc_from_warc(SAMPLE_WARC)
    (tmp_path / "pages.arc").write_bytes(data)
    (tmp_path / "pages.arc.gz").write_bytes(gzip.compress(data))
    for name in ("pages.arc", "pages.arc.gz"):
        rows = read_file(tmp_path / name)
        assert [(r["url"], r["title"], r["text"], r["reject"]) for r in rows] == [
            (r["url"], r["title"], r["text"], r["reject"]) for r in sample_rows
        ], name
        offsets = [int(r["source"].rsplit("@", 1)[1]) for r in rows]
        assert offsets == sorted(offsets) and len(set(r["id"] for r in rows)) == len(rows), name
        assert all(data[o:].startswith(f"{r['url']} ".encode()) for o, r in zip(offsets, rows, strict=True))


def test_arc_records(shared_data: Path, tmp_path: Path):
    """Common Crawl 2008 ARC: records framed without separators, HTTP headers with 'Name:value'."""
    cfg = InputConfig()
    arc = shared_data / "web/warc/small-sample-1213893279526_0.arc"
    (unit,) = plan_units([str(arc)], cfg)
    rows = list(itertools.islice(read_unit(unit, cfg), 25))
    (tmp_path / "copy.arc.gz").write_bytes(gzip.compress(arc.read_bytes()))
    (gz_unit,) = plan_units([str(tmp_path / "copy.arc.gz")], cfg)
    gz_rows = list(itertools.islice(read_unit(gz_unit, cfg), 5))
    assert [r["text"] for r in gz_rows] == [r["text"] for r in rows[:5]]
    assert rows[0]["url"] == "http://cineciudad.com/pelicula/index/502"
    assert len({r["url"] for r in rows}) == 25
    kept = [r for r in rows if r["reject"] is None]
    assert sum(len(r["text"]) > 200 for r in kept) >= 15
    assert {r["reject"] for r in rows} <= {None, "io:no_text_extracted"}
    assert all(r["title"] for r in kept[:5])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["small-sample-1213893279526_0.arc", "small-sample-1262850551027_8.arc"])
def test_whole_arc_files(shared_data: Path, name: str):
    """One row per text/html record, counted here from the ARC header lines."""
    data = (shared_data / "web/warc" / name).read_bytes()
    headers = re.findall(rb"^http\S* [\d.]+ \d{14} (\S+) \d+$", data, re.M)
    rows = read_file(shared_data / "web/warc" / name)
    assert len(rows) == sum(h == b"text/html" for h in headers)
    kept = [r for r in rows if r["reject"] is None]
    assert len(kept) >= 0.9 * len(rows)


@pytest.mark.slow
def test_wayback_archives_with_legacy_charsets(shared_data: Path):
    """Wayback exports: records without HTTP headers, many windows-1252 / ISO-8859-1 pages."""
    rows = read_file(shared_data / "web/warc/snapshot-wayback-topic-02.warc.gz")
    assert len(rows) == response_records(shared_data / "web/warc/snapshot-wayback-topic-02.warc.gz")
    kept = [r for r in rows if r["reject"] is None]
    assert sum(len(r["text"]) > 200 for r in kept) >= 0.9 * len(rows)
    replaced = sum(r["text"].count("\ufffd") for r in kept)
    assert replaced < 0.0001 * sum(len(r["text"]) for r in kept)


def check_latin_page_in_legacy_charsets(page: str) -> None:
    """A real page's HTML, its charset declaration removed, encoded as windows-1252: declared or not."""
    latin = re.sub(r"<meta[^>]*charset[^>]*>", "", page, flags=re.I).encode("cp1252", "replace")
    expected = latin.decode("cp1252")
    assert decode_html(latin, "iso-8859-1") == expected  # labels mean windows-1252, as in browsers
    meta = latin.replace(b"<head>", b'<head><meta charset="windows-1252">', 1)
    assert meta != latin
    assert decode_html(meta) == meta.decode("cp1252")
    guessed = decode_html(latin)
    assert sum(a == b for a, b in zip(guessed, expected, strict=True)) > 0.999 * len(expected)


def test_decode_html_charsets(corpus: Path):
    """Real Aragonese (accented Latin) and Chinese text, encoded as legacy charsets, declared or not."""
    (page,) = [body.decode() for _, url, body in html_responses(SAMPLE_WARC) if "wikipedia" in url]
    assert sum(ch in "áéíóú" for ch in page) > 100
    check_latin_page_in_legacy_charsets(page)
    zh = [json.loads(line)["text"] for line in open(corpus / "zh/cmrc2018_zhwiki_contexts.jsonl")][:3]
    html = "<html><body>" + "".join(f"<p>{t}</p>" for t in zh) + "</body></html>"
    assert decode_html(html.encode("gb18030")) == html  # undeclared: detected
    assert decode_html(html.encode("big5", "replace"), "big5") == html.encode("big5", "replace").decode(
        "big5"
    )
    assert decode_html(html.encode("utf-8"), "iso-8859-1") == html  # valid UTF-8 wins over a Latin label


def test_decode_german_page_in_legacy_charsets(shared_data: Path):
    """A German page of trafilatura's evaluation set (not bundled)."""
    with gzip.open(shared_data / "web/trafilatura_pages.jsonl.gz", "rt") as f:
        page = next(p for p in map(json.loads, f) if "ä" in p["html"])
    check_latin_page_in_legacy_charsets(page["html"])


def jsonl_html_rows(path: Path, n: int | None) -> list[dict]:
    cfg = InputConfig(html_field="html")
    (unit,) = plan_units([str(path)], cfg)
    return list(itertools.islice(read_unit(unit, cfg), n))


def token_overlap(gold: str, extracted: str) -> tuple[float, float]:
    """(recall, precision) of the extracted word tokens against the gold text, as multisets."""
    g, e = Counter(WORD.findall(gold.lower())), Counter(WORD.findall(extracted.lower()))
    common = sum((g & e).values())
    return common / max(1, sum(g.values())), common / max(1, sum(e.values()))


def check_aeb(shared_data: Path, n: int | None) -> None:
    gold = json.loads((shared_data / "web/aeb_ground_truth.json").read_text())
    rows = jsonl_html_rows(shared_data / "web/aeb_pages.jsonl.gz", n)
    assert len(rows) == (n or len(gold))
    scores = [
        token_overlap(gold[r["id"]]["articleBody"], r["text"] if r["reject"] is None else "") for r in rows
    ]
    recall = sum(s[0] for s in scores) / len(scores)
    precision = sum(s[1] for s in scores) / len(scores)
    assert recall > 0.85 and precision > 0.8, (recall, precision)
    assert sum(r["title"] is not None for r in rows) > 0.9 * len(rows)


def test_aeb_articles_against_gold(shared_data: Path):
    check_aeb(shared_data, 40)


@pytest.mark.slow
def test_aeb_all_articles_against_gold(shared_data: Path):
    check_aeb(shared_data, None)


def test_jsonl_html_field_on_sample_pages(tmp_path: Path, sample_rows: list[dict]):
    """Raw HTML in a JSONL field: the input's ids, and the same text as the WARC reader gets from those pages."""
    pages = html_responses(SAMPLE_WARC)
    path = tmp_path / "pages.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"sample/{i}", "url": url, "html": body.decode()}) + "\n"
            for i, (_, url, body) in enumerate(pages)
        )
    )
    rows = jsonl_html_rows(path, None)
    assert [(r["id"], r["url"]) for r in rows] == [
        (f"sample/{i}", url) for i, (_, url, _) in enumerate(pages)
    ]
    assert {r["reject"] for r in rows} <= {None, "io:no_text_extracted"}
    assert [(r["reject"], r["title"], r["text"]) for r in rows] == [
        (r["reject"], r["title"], r["text"]) for r in sample_rows
    ]


def check_trafilatura_pages(shared_data: Path, n: int | None) -> None:
    rows = jsonl_html_rows(shared_data / "web/trafilatura_pages.jsonl.gz", n)
    if n is not None:
        assert len(rows) == n
    assert {r["reject"] for r in rows} <= {None, "io:no_text_extracted"}
    kept = [r for r in rows if r["reject"] is None]
    assert len(kept) >= 0.9 * len(rows)
    assert sum(len(r["text"]) > 200 for r in kept) >= 0.8 * len(kept)
    assert all(r["id"].startswith(("cache/", "eval/")) for r in rows)  # the input's ids
    assert len({r["id"] for r in rows}) == len(rows)


def test_trafilatura_pages_html_field(shared_data: Path):
    check_trafilatura_pages(shared_data, 40)


@pytest.mark.slow
def test_all_trafilatura_pages(shared_data: Path):
    check_trafilatura_pages(shared_data, None)
