"""Real documents for the stage and io tests (English web text, Chinese, junk built from real pages, pages of a
WARC), read from a data root laid out like ../shared/data: the bundled tests/data (`corpus`) or the full folder
(`shared_data`)."""

from __future__ import annotations

import gzip
import html
import json
import re
from itertools import islice
from pathlib import Path

from fastwarc.stream_io import ChunkedReader
from fastwarc.warc import ArchiveIterator, WarcRecordType

from dataengine.pack.sample_corpus import wikitext_articles  # noqa: F401 (re-exported for the tests)
from dataengine.stages import Document
from dataengine.stages.c4 import C4Quality
from dataengine.stages.fineweb import FineWebQuality
from dataengine.stages.gopher_quality import GopherQuality
from dataengine.stages.gopher_repetition import GopherRepetition
from dataengine.stages.langid import LanguageIdentifier
from dataengine.stages.normalize import Normalizer


def read_jsonl(path: Path, field: str = "text", limit: int | None = None) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line)[field] for line in islice(f, limit) if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """Rows as UTF-8 JSONL (Chinese kept as is), for tests that build their own input files."""
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def english_web_docs(data: Path) -> dict[str, list[str]]:
    """English web documents by source: C4, cc_net head, RedPajama, the Guardian, Dolma, UD EWT web docs."""
    text = data / "web" / "text"
    sources = {
        "c4": sorted(text.glob("c4-sample.*.jsonl.gz")),
        "cc_en_head": sorted(text.glob("cc_en_head*.jsonl")),
        "redpajama": [text / "redpajama-c4-refined.jsonl", text / "redpajama-cc-2023-06-refined.jsonl"],
        "guardian": [text / "paloma_c4_100_domains_theguardian_val.jsonl.gz"],
        "dolma": [text / "provided_documents_000.jsonl.gz"],
        "ewt": [text / "ewt_web_docs.jsonl"],
    }
    return {name: [t for p in paths for t in read_jsonl(p)] for name, paths in sources.items()}


def cmrc_paragraphs(data: Path, min_chars: int = 200) -> list[str]:
    """zh-Wikipedia paragraphs of CMRC 2018 longer than `min_chars`."""
    texts = read_jsonl(data / "zh" / "cmrc2018_zhwiki_contexts.jsonl")
    return [t for t in texts if len(t) > min_chars]


def gutenberg_english_passages(data: Path, per_book: int = 20) -> list[str]:
    """Long passages (blocks between triple newlines) from the English Gutenberg books."""
    meta = [json.loads(line) for line in open(data / "reference" / "gutenberg" / "books_metadata.jsonl")]
    out = []
    for book in meta:
        if book.get("language", "en") != "en":
            continue
        path = data / "reference" / "gutenberg" / book["file"]
        blocks = [b for b in path.read_text(encoding="utf-8").split("\n\n\n") if len(b) > 1000]
        out += blocks[2 : 2 + per_book]  # skip the licence header blocks
    return out


def full_chain() -> list:
    return [
        Normalizer(),
        LanguageIdentifier(),
        GopherQuality(),
        GopherRepetition(),
        C4Quality(),
        FineWebQuality(),
    ]


def run_chain(stages: list, text: str) -> tuple[Document, str | None]:
    """The document after the chain, and its reject reason `stage:rule` (None = kept)."""
    doc = Document(text)
    for stage in stages:
        rule = stage(doc)
        if rule is not None:
            return doc, f"{stage.name}:{rule}"
    return doc, None


_ANCHOR = re.compile(r"<a\b[^>]*>([^<]{2,60})</a>", re.IGNORECASE)
_META_KEYWORDS = re.compile(r"<meta[^>]+name=\"keywords\"[^>]+content=\"([^\"]{60,})\"", re.IGNORECASE)
_COOKIE_TEXT = re.compile(r">([^<>]{30,400}\bcookies?\b[^<>]{0,400})<", re.IGNORECASE)


def boilerplate_docs(data: Path) -> dict[str, list[str]]:
    """Junk cut from real web pages: navigation menus (link texts), meta keyword lists, cookie banners.

    Needs web/trafilatura_pages.jsonl.gz, which is not bundled: pass the full data folder."""
    pages = read_jsonl(data / "web" / "trafilatura_pages.jsonl.gz", field="html")
    menus, keywords, cookies = [], [], []
    for page in pages:
        links = [html.unescape(a).strip() for a in _ANCHOR.findall(page)]
        links = [a for a in links if a]
        if len(links) >= 15:
            menus.append("\n".join(links[:60]))
        if m := _META_KEYWORDS.search(page):
            keywords.append(html.unescape(m.group(1)))
        banners = [html.unescape(c).strip() for c in _COOKIE_TEXT.findall(page)]
        if banners:
            cookies.append("\n".join(banners[:3] + links[:10]))
    return {"menus": menus, "keywords": keywords, "cookie_banners": cookies}


def arc_from_warc(path: Path) -> bytes:
    """An ARC v1 file of a WARC's response records (their HTTP messages byte for byte), framed like Common
    Crawl's 2008 ARC files: a header line `URL IP date type length`, the record, no separator."""
    records = []
    with open(path, "rb") as f:
        for r in ArchiveIterator(f, record_types=WarcRecordType.response, parse_http=False):
            date = re.sub(r"\D", "", r.headers["WARC-Date"])[:14]
            ip = r.headers.get("WARC-IP-Address") or "0.0.0.0"
            block = r.reader.read()
            head = f"{r.headers['WARC-Target-URI'].strip('<>')} {ip} {date} text/html {len(block)}\n"
            records.append(head.encode() + block)
    version = b"1 0 dataengine\nURL IP-address Archive-date Content-type Archive-length\n\n"
    first = f"filedesc://{path.name}.arc 0.0.0.0 20240101000000 text/plain {len(version)}\n".encode()
    return first + version + b"".join(records)


def html_responses(path: Path) -> list[tuple[str, str, bytes]]:
    """(record id, URL, HTTP body) of each HTML response in a WARC, read with FastWARC directly."""
    out = []
    with open(path, "rb") as f:
        for r in ArchiveIterator(f, record_types=WarcRecordType.response, quirks_mode=True):
            if "html" not in (r.http_headers.get("Content-Type") or ""):
                continue
            chunked = "chunked" in (r.http_headers.get("Transfer-Encoding") or "")
            body = ChunkedReader(r.reader).read() if chunked else r.reader.read()
            out.append((r.record_id, r.headers["WARC-Target-URI"], body))
    return out
