"""Build the bundled demo sample in sample/ from ../shared/data (run once; output is committed).

Only permissively licensed text goes in; sample/NOTICE lists each file's origin and license.
"""

from __future__ import annotations

import gzip
import io
import json
import random
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.warcwriter import WARCWriter

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "sample"


def write_jsonl_gz(path: Path, rows: list[dict]) -> None:
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        for row in rows:
            fh.write((json.dumps(row, ensure_ascii=False) + "\n").encode())


def english_rows() -> list[dict]:
    rows = []
    for i in (1, 2, 3):
        with gzip.open(DATA / f"web/text/c4-sample.0{i}.jsonl.gz", "rt") as fh:
            for n, line in enumerate(fh):
                doc = json.loads(line)
                rows.append({"id": f"c4-{i}-{n}", "text": doc["text"], "url": doc.get("url")})
    with open(DATA / "web/text/ewt_web_docs.jsonl") as fh:
        ewt = [json.loads(line) for line in fh]
    for doc in random.Random(0).sample(ewt, 250):
        rows.append({"id": f"ewt-{doc['doc_id']}", "text": doc["text"], "genre": doc["genre"]})
    article: list[str] = []
    articles = []
    for line in (DATA / "reference/wikitext-2_valid.txt").read_text().splitlines():
        if line.startswith(" = ") and not line.startswith(" = = ") and article:
            articles.append("\n".join(article))
            article = []
        if line.strip():
            article.append(line.strip())
    articles.append("\n".join(article))
    rows += [{"id": f"wikitext-{n}", "text": text} for n, text in enumerate(articles)]
    return rows


def chinese_rows(limit: int = 700) -> list[dict]:
    with open(DATA / "zh/cmrc2018_zhwiki_contexts.jsonl") as fh:
        docs = [json.loads(line) for line in fh][:limit]
    return [{"id": f"cmrc-{d['id']}", "text": d["text"], "title": d.get("title")} for d in docs]


def code_rows(limit: int = 250) -> list[dict]:
    with gzip.open(DATA / "code/code_files.jsonl.gz", "rt") as fh:
        files = [json.loads(line) for line in fh]
    picked = [f for f in files if f["size"] < 20_000][:: max(1, len(files) // limit)][:limit]
    return [
        {"id": f"{f['repo']}/{f['path']}", "text": f["content"], "repo": f["repo"], "license": f["license"]}
        for f in picked
    ]


def small_warc(path: Path, max_pages: int = 10) -> None:
    """Copy warcinfo plus the first response records of two Apache-2.0 fixture WARCs."""
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    for name, limit in (("whirlwind.warc.gz", 1), ("sample-0001.warc.gz", max_pages)):
        taken = 0
        with open(DATA / "web/warc" / name, "rb") as fh:
            for record in ArchiveIterator(fh):
                if record.rec_type == "response" and taken < limit:
                    writer.write_record(record)
                    taken += 1
    path.write_bytes(buf.getvalue())


def main() -> None:
    OUT.mkdir(exist_ok=True)
    write_jsonl_gz(OUT / "en_web.jsonl.gz", english_rows())
    write_jsonl_gz(OUT / "zh_wiki.jsonl.gz", chinese_rows())
    write_jsonl_gz(OUT / "code.jsonl.gz", code_rows())
    small_warc(OUT / "web_pages.warc.gz")
    for book in ("pg1342.txt", "pg84.txt"):
        (OUT / book).write_text((DATA / "reference/gutenberg" / book).read_text())
    for f in sorted(OUT.iterdir()):
        print(f"{f.name}: {f.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
