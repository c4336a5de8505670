"""A mixed English / Chinese / code document set built from the shared real-text folder.

Tests, the throughput benchmark and the compression report need the same realistic input:
kept-document rows (§3.1: id, text, source, lang, and category where phase 1 would set one) from real text, not typed
strings. This module turns the shared folder (``../shared/data``) into one JSONL file per
channel. Files absent from the folder are skipped, so the bundled subset (``tests/data``, laid out
alike) gives a smaller corpus of the same kinds. Pre-tokenized corpora (WikiText, Brown) are left out: their spaces around
punctuation would distort compression figures.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path

EN_WEB = [
    "web/text/c4-sample.01.jsonl.gz",
    "web/text/c4-sample.02.jsonl.gz",
    "web/text/c4-sample.03.jsonl.gz",
    "web/text/cc_en_head-0091.jsonl",
    "web/text/cc_en_head-0174.jsonl",
    "web/text/paloma_c4_100_domains_theguardian_val.jsonl.gz",
    "web/text/provided_documents_000.jsonl.gz",
    "web/text/redpajama-c4-refined.jsonl",
    "web/text/redpajama-cc-2023-06-refined.jsonl",
    "web/text/the-pile-nih-refined.jsonl",
    "web/text/the-pile-uspto-refined.jsonl",
    "web/text/ewt_web_docs.jsonl",
    "reference/nltk/abc.jsonl.gz",
    "reference/nltk/inaugural.jsonl",
    "reference/nltk/state_union.jsonl",
    "reference/nltk/webtext.jsonl",
]
ZH_LINES = [
    "zh/sighan2005/msr_test.utf8.gz",
    "zh/sighan2005/pku_test.utf8.gz",
    "zh/sighan2005/as_test.utf8.gz",
    "zh/sighan2005/cityu_test.utf8",
]
CHANNELS = ("en", "zh", "code", "poetry")


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _chunks(text: str, max_chars: int) -> Iterator[str]:
    """Paragraph-aligned pieces of a long text (books become many documents)."""
    piece: list[str] = []
    size = 0
    for paragraph in text.split("\n\n"):
        if piece and size + len(paragraph) > max_chars:
            yield "\n\n".join(piece)
            piece, size = [], 0
        piece.append(paragraph)
        size += len(paragraph) + 2
    if piece:
        yield "\n\n".join(piece)


def english_documents(shared: Path, chunk_chars: int = 6000) -> Iterator[dict]:
    for rel in EN_WEB:
        if not (shared / rel).is_file():
            continue
        with _open(shared / rel) as f:
            for i, line in enumerate(f):
                text = json.loads(line)["text"]
                for j, chunk in enumerate(_chunks(text, chunk_chars)):
                    yield {"id": f"{rel}:{i}:{j}", "text": chunk, "source": f"{rel}:{i}", "lang": "en"}
    yield from book_documents(shared, chunk_chars=chunk_chars)


def book_documents(
    shared: Path, files: list[str] | None = None, chunk_chars: int = 6000, lang: str = "en"
) -> Iterator[dict]:
    """The Gutenberg books of ``lang`` (or the named ``files``, e.g. ``pg1342.txt``) in paragraph-aligned
    chunks of about ``chunk_chars``; books absent from the folder are skipped."""
    with open(shared / "reference/gutenberg/books_metadata.jsonl") as f:
        books = [json.loads(line) for line in f]
    for book in books:
        if book["file"] not in files if files is not None else book["language"] != lang:
            continue
        rel = f"reference/gutenberg/{book['file']}"
        if not (shared / rel).is_file():
            continue
        text = (shared / rel).read_text(encoding="utf-8").replace("\r\n", "\n")
        for j, chunk in enumerate(_chunks(text, chunk_chars)):
            yield {"id": f"{rel}:{j}", "text": chunk, "source": rel, "lang": book["language"]}


def chinese_documents(shared: Path, lines_per_doc: int = 12) -> Iterator[dict]:
    with open(shared / "zh/cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            record = json.loads(line)
            yield {
                "id": f"cmrc:{record['id']}",
                "text": record["text"],
                "source": f"cmrc2018:{i}",
                "lang": "zh",
            }
    for rel in ZH_LINES:
        if not (shared / rel).is_file():
            continue
        with _open(shared / rel) as f:
            lines = [line.strip().lstrip("\ufeff") for line in f if line.strip()]
        for start in range(0, len(lines), lines_per_doc):
            text = "\n".join(lines[start : start + lines_per_doc])
            yield {"id": f"{rel}:{start}", "text": text, "source": f"{rel}:{start}", "lang": "zh"}


def code_documents(shared: Path) -> Iterator[dict]:
    with gzip.open(shared / "code/code_files.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            name = f"{record['repo']}/{record['path']}"
            row = {"id": f"code:{name}", "text": record["content"], "source": name}
            yield {**row, "lang": "code", "category": "code"}  # as phase 1 labels a source file


def poetry_documents(shared: Path, every: int = 4) -> Iterator[dict]:
    """Every ``every``-th classical poem (Tang poems are in traditional characters): CJK
    character coverage that the small modern Chinese set lacks."""
    with gzip.open(shared / "zh/zh_classical_poetry.jsonl.gz", "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i % every == 0:
                text = json.loads(line)["text"]
                yield {
                    "id": f"poetry:{i}",
                    "text": text,
                    "source": f"zh_classical_poetry:{i}",
                    "lang": "lzh",  # as phase 1 labels classical Chinese
                    "category": "books",
                }


FOUR_BOOKS = ["pg1342.txt", "pg84.txt", "pg98.txt", "pg345.txt"]  # Austen, Shelley, Dickens, Stoker


_WIKITEXT_DETOK = [
    (" @-@ ", "-"),
    (" @,@ ", ","),
    (" @.@ ", "."),
    (" , ", ", "),
    (" . ", ". "),
    (" ; ", "; "),
    (" : ", ": "),
    (" 's ", "'s "),
    ("( ", "("),
    (" )", ")"),
]


def wikitext_articles(shared: Path) -> list[str]:
    """WikiText-2 validation articles over 1,000 characters, detokenized back to running text (the file
    is space-tokenized), for the rule tests and calibration: encyclopedic English as a reference."""
    raw = (shared / "reference" / "wikitext-2_valid.txt").read_text(encoding="utf-8")
    out = []
    for article in re.split(r"\n \= [^=\n]+ \= \n", raw):
        text = "\n".join(
            line.strip() for line in article.split("\n") if line.strip() and not line.startswith(" = ")
        )
        for tok, repl in _WIKITEXT_DETOK:
            text = text.replace(tok, repl)
        if len(text) > 1000:
            out.append(text)
    return out


def write_sample_corpus(
    shared: Path, out_dir: Path, max_chars: int | None = None, channels: tuple[str, ...] = CHANNELS
) -> dict[str, Path]:
    """Write en.jsonl, zh.jsonl, code.jsonl and poetry.jsonl (or the named ``channels``; ``books``: the
    four English ``FOUR_BOOKS``, as en documents) under ``out_dir``, each at most ``max_chars`` of text,
    documents kept whole; returns channel -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    makers = {
        "en": english_documents,
        "books": lambda shared: book_documents(shared, FOUR_BOOKS),
        "zh": chinese_documents,
        "code": code_documents,
        "poetry": poetry_documents,
    }
    paths = {}
    for channel in channels:
        path = out_dir / f"{channel}.jsonl"
        total = 0
        with open(path, "w", encoding="utf-8") as f:
            for doc in makers[channel](shared):
                if max_chars is not None and total + len(doc["text"]) > max_chars and total > 0:
                    break
                if doc["text"].strip():
                    f.write(json.dumps(doc, ensure_ascii=False) + "\n")
                    total += len(doc["text"])
        paths[channel] = path
    return paths


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Write the shared-data sample corpus as JSONL per channel.")
    parser.add_argument("shared", type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("output", type=Path)
    parser.add_argument("--max-chars", type=int, default=None, help="per channel")
    args = parser.parse_args()
    for channel, path in write_sample_corpus(args.shared, args.output, args.max_chars).items():
        print(f"{channel}\t{path}")


if __name__ == "__main__":
    main()
