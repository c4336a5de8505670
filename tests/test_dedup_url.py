"""URL dedup: one survivor per normalized URL, on real page URLs and real English and Chinese text."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataengine.dedup.config import DedupConfig
from dataengine.dedup.exact import normalize_url
from dataengine.dedup.runner import run_dedup


def test_normalize_url_drops_what_does_not_name_another_page():
    base = "https://www.example.com/a/b?a=2&z=1"
    for variant in (
        "HTTPS://WWW.Example.COM:443/a/b/?z=1&a=2#section",
        " https://www.example.com/a/b?a=2&z=1 ",
        "https://user@www.example.com/a/b?a=2&z=1#",
    ):
        assert normalize_url(variant) == base
    assert normalize_url("https://www.example.com/A/b?a=2&z=1") != base  # paths are case-sensitive
    assert normalize_url("http://www.example.com/a/b?a=2&z=1") != base  # another scheme, maybe another page
    assert normalize_url("https://www.example.com:8443/a/b?a=2&z=1") != base
    assert normalize_url("http://[::1]:80/x/") == "http://[::1]/x"
    assert normalize_url("") is None and normalize_url(None) is None and normalize_url("   ") is None


def _variant(url: str, k: int) -> str:
    """A spelling of the same page: upper-case scheme and host, default port, fragment, trailing slash."""
    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    port = ":443" if scheme == "https" else ":80"
    spellings = [
        f"{scheme.upper()}://{host.upper()}/{path}",
        f"{scheme}://{host}{port}/{path}#comments",
        f"{scheme}://{host}/{path.rstrip('/')}" + ("" if path.endswith("/") else "/"),
    ]
    return spellings[k % len(spellings)]


def _c4_urls(corpus: Path) -> list[str]:
    """The page URLs of the bundled C4 samples (30 crawled pages)."""
    urls = []
    for part in ("01", "02", "03"):
        with gzip.open(corpus / "web" / "text" / f"c4-sample.{part}.jsonl.gz", "rt", encoding="utf-8") as fh:
            urls += [json.loads(line)["url"] for line in fh if line.strip()]
    return urls


def _trafilatura_urls(shared_data: Path) -> list[str]:
    with gzip.open(shared_data / "web" / "trafilatura_pages.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line)["url"] for line in fh][:30]


@pytest.mark.ray
def test_url_duplicates_keep_one_survivor_by_rule_and_conserve(ray_session, corpus, tmp_path):
    _check_url_dedup(_c4_urls(corpus)[:30], corpus, tmp_path)


@pytest.mark.ray
def test_url_dedup_on_trafilatura_page_urls(ray_session, shared_data, corpus, tmp_path):
    """The same rules on the URLs of other pages (many non-English sites) of the full data folder."""
    _check_url_dedup(_trafilatura_urls(shared_data), corpus, tmp_path)


def _check_url_dedup(urls: list[str], corpus: Path, tmp_path: Path) -> None:
    named = [normalize_url(u) for u in urls if normalize_url(u)]  # a crawl record may lack its URL
    assert len(urls) == 30 and len(set(named)) == len(named), "30 real pages, no two under one URL"
    assert all(normalize_url(u) for u in urls[:11]), "the pages re-crawled below have URLs"
    with open(corpus / "web" / "text" / "ewt_web_docs.jsonl", encoding="utf-8") as fh:
        en = [t for t in (json.loads(line)["text"] for line in fh) if len(t) >= 400][:40]
    with open(corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8") as fh:
        zh = [json.loads(line)["text"] for line in fh][:20]
    texts = en + zh  # 60 distinct real documents: no text (near-)duplicates among them
    rows = [
        {"id": f"page{i}", "text": texts[i], "lang": "en", "url": u, "quality": 0.8}
        for i, u in enumerate(urls)
    ]
    expected: dict[str, str] = {}
    for k in range(9):  # re-crawls of the same pages under other spellings, other text, lower quality
        text = texts[30 + k]
        rows.append(
            {"id": f"recrawl{k}", "text": text, "lang": "zh" if k % 2 else "en", "url": _variant(urls[k], k)}
        )
        rows[-1]["quality"] = 0.3
        expected[f"recrawl{k}"] = f"page{k}"
    # a better copy of page9 under another spelling wins; page9 itself becomes the duplicate
    rows.append(
        {"id": "better9", "text": texts[40], "lang": "en", "url": _variant(urls[9], 1), "quality": 0.95}
    )
    # same host and path with other case / no URL at all: never URL duplicates
    rows.append({"id": "pathcase", "text": texts[41], "lang": "en", "url": urls[10].upper(), "quality": 0.1})
    rows += [
        {"id": f"nourl{i}", "text": texts[42 + i], "lang": "zh", "url": None, "quality": 0.1}
        for i in range(4)
    ]
    rows += [{"id": "emptyurl", "text": texts[46], "lang": "zh", "url": "", "quality": 0.1}]
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(rows[::2]), folder / "part-0.parquet")
    pq.write_table(pa.Table.from_pylist(rows[1::2]), folder / "part-1.parquet")

    on = run_dedup([folder], tmp_path / "on", DedupConfig(exact={"url": True}, survivor="quality"))
    rejected = pq.read_table(tmp_path / "on" / "rejected").to_pylist()
    got = {r["id"]: (r["reject"], r["duplicate_of"]) for r in rejected}
    want = {i: ("dedup:url", of) for i, of in expected.items()}
    want["page9"] = ("dedup:url", "better9")
    assert urls[10].upper() != urls[10] and normalize_url(urls[10].upper()) != normalize_url(urls[10])
    assert got == want
    kept = {r["id"]: r["dup_cluster_size"] for r in pq.read_table(tmp_path / "on" / "kept").to_pylist()}
    assert kept["page0"] == 2 and kept["better9"] == 2 and kept["pathcase"] == 1 and kept["nourl0"] == 1
    assert on["input"] == len(rows) == on["kept"] + on["rejected"]
    assert on["rejected_by_reason"] == {"dedup:url": 10}

    off = run_dedup([folder], tmp_path / "off", DedupConfig())  # the default leaves URLs alone
    assert off["rejected"] == 0 and off["kept"] == len(rows)
