"""Build the named reference sets that the shipped thresholds (configs/thresholds/) are calibrated on.

    python scripts/reference_sets.py DATA_ROOT OUT_DIR      (DATA_ROOT laid out like ../shared/data)

writes OUT_DIR/en.jsonl and OUT_DIR/zh.jsonl (fields id, source, text), one reference document a line:
  en  WikiText-2 validation articles (Wikipedia), detokenized as tests/stage_corpora.py does, and the English
      Project Gutenberg books of reference/gutenberg cut at paragraph breaks into ~8,000-character chunks
      (licence header and footer removed; at most PER_BOOK chunks a book, spread over the whole book).
  zh  the zh-Wikipedia paragraphs of CMRC 2018 (zh/cmrc2018_zhwiki_contexts.jsonl) and the news text of the
      SIGHAN 2005 bakeoff test sets (zh/sighan2005: MSR and PKU simplified, AS and CityU traditional),
      consecutive lines joined into documents of at least ~1,000 characters.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path

from dataengine.pack.sample_corpus import wikitext_articles

CHUNK_CHARS = 8000
PER_BOOK = 30
NEWS_DOC_CHARS = 1000


def book_body(text: str) -> str:
    """A Gutenberg book between its *** START OF ... *** and *** END OF ... *** lines."""
    start = re.search(r"^\*\*\* ?START OF.*$", text, re.MULTILINE)
    end = re.search(r"^\*\*\* ?END OF.*$", text, re.MULTILINE)
    return text[start.end() if start else 0 : end.start() if end else len(text)].strip()


def chunks(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Paragraphs (blank-line separated) packed into chunks of about ``size`` characters."""
    out, current, length = [], [], 0
    for para in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        para = para.strip()
        if not para:
            continue
        if current and length + len(para) > size:
            out.append("\n\n".join(current))
            current, length = [], 0
        current.append(para)
        length += len(para) + 2
    if current:
        out.append("\n\n".join(current))
    return [c for c in out if len(c) > size // 4]


def spread(items: list, n: int) -> list:
    """At most n items, evenly spaced over the list."""
    if len(items) <= n:
        return items
    return [items[i * len(items) // n] for i in range(n)]


def english(root: Path) -> list[dict]:
    rows = [
        {"id": f"wikitext2-valid-{i}", "source": "wikitext-2_valid", "text": t}
        for i, t in enumerate(wikitext_articles(root))
    ]
    books = root / "reference" / "gutenberg"
    for line in (books / "books_metadata.jsonl").read_text(encoding="utf-8").splitlines():
        book = json.loads(line)
        if book.get("language") != "en":
            continue
        body = book_body((books / book["file"]).read_text(encoding="utf-8"))
        for i, chunk in enumerate(spread(chunks(body), PER_BOOK)):
            rows.append(
                {"id": f"gutenberg-{book['gutenberg_id']}-{i}", "source": book["file"], "text": chunk}
            )
    return rows


def _lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig") as f:
        return [line.strip() for line in f if line.strip()]


def chinese(root: Path) -> list[dict]:
    zh = root / "zh"
    rows = []
    with open(zh / "cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            rows.append({"id": f"cmrc-{record['id']}", "source": "cmrc2018_zhwiki", "text": record["text"]})
    for name in ("msr_test.utf8.gz", "pku_test.utf8.gz", "as_test.utf8.gz", "cityu_test.utf8"):
        path = zh / "sighan2005" / name
        doc: list[str] = []
        n = 0
        for line in _lines(path):
            doc.append(line)
            if sum(map(len, doc)) >= NEWS_DOC_CHARS:
                rows.append(
                    {"id": f"sighan-{name.split('_')[0]}-{n}", "source": name, "text": "\n".join(doc)}
                )
                doc, n = [], n + 1
    return rows


def main(root: str, out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for lang, rows in (("en", english(Path(root))), ("zh", chinese(Path(root)))):
        with open(out / f"{lang}.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{out / lang}.jsonl: {len(rows)} documents", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:3])
