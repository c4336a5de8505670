"""The packaged category model (scripts/train_category_model.py) on real text: shares over many documents.

Bundled text (tests/data, the `corpus` fixture) for zh-Wikipedia, WikiText, Gutenberg, classical Chinese
poetry, source files and UD English-EWT; the full ../shared/data (`shared_data`, extended tier) for the Stack
Exchange posts and the books not bundled.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from dataengine.classifiers.model import LABEL_PREFIX, packaged_model_path, read_card
from dataengine.pack.sample_corpus import wikitext_articles
from dataengine.stages.category import CATEGORIES
from dataengine.stages.fasttext_models import load_model

MODEL = packaged_model_path("category.ftz")
PROSE_LANGUAGES = {"Markdown", "reStructuredText"}


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _chunks(text: str, size: int = 3000) -> list[str]:
    """Pieces of about `size` characters cut at paragraph breaks."""
    out, current = [], ""
    for para in re.split(r"\n\s*\n", text):
        current = f"{current}\n\n{para}" if current else para
        if len(current) >= size:
            out.append(current.strip())
            current = ""
    return out


def _shares(texts: list[str]) -> Counter:
    from dataengine.classifiers.model import label_probabilities

    labels, probs = label_probabilities(load_model(str(MODEL)), texts)
    return Counter(labels[i] for i in probs.argmax(axis=1))


def _share(texts: list[str], label: str) -> float:
    assert texts, "no documents"
    return _shares(texts)[label] / len(texts)


def _gutenberg_chunks(book: Path, n: int = 40) -> list[str]:
    text = book.read_text(encoding="utf-8")
    start, end = text.find("*** START OF"), text.find("*** END OF")
    body = text[text.index("\n", start) if start >= 0 else 0 : end if end > 0 else len(text)]
    pieces = [c for c in _chunks(body) if len(c) > 1000][2:]
    return pieces[:: max(1, len(pieces) // n)][:n]


def test_model_is_packaged_with_its_card():
    assert MODEL.is_file() and MODEL.stat().st_size < 5_000_000
    card = read_card(MODEL)
    assert card["labels"] == list(CATEGORIES)
    model_labels = {label.removeprefix(LABEL_PREFIX) for label in load_model(str(MODEL)).get_labels()}
    assert model_labels <= set(CATEGORIES)
    assert model_labels == set(card["labels_trained"])
    assert "math" in card["gaps"]["no_data"]  # no shippable math text: said so, not faked
    assert card["held_out"]["accuracy"] > 0.9
    for label, sources in card["sources"].items():
        assert label in CATEGORIES
        assert all(s["license"] and s["examples"] > 0 for s in sources.values())


def test_zh_wikipedia_paragraphs_are_encyclopedia(corpus):
    paragraphs = [r["text"] for r in _jsonl(corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl")]
    assert len(paragraphs) > 1000
    assert _share(paragraphs, "encyclopedia") > 0.95


def test_wikitext_articles_are_encyclopedia(corpus):
    pieces = [c for a in wikitext_articles(corpus) for c in _chunks(a.replace("\n", "\n\n"))]
    assert len(pieces) > 100
    assert _share(pieces, "encyclopedia") > 0.9


def test_source_files_are_code_and_docs_are_technical(corpus):
    files = _jsonl(corpus / "code" / "code_files.jsonl.gz")
    code = [f["content"] for f in files if f["language"] not in PROSE_LANGUAGES and len(f["content"]) > 200]
    docs = [f["content"] for f in files if f["language"] in PROSE_LANGUAGES and len(f["content"]) > 200]
    assert len(code) > 500 and len(docs) > 50
    assert _share(code, "code") > 0.9
    assert _share(docs, "technical") > 0.85


def test_gutenberg_chunks_are_books(corpus):
    books = sorted((corpus / "reference" / "gutenberg").glob("pg*.txt"))
    chunks = [c for book in books for c in _gutenberg_chunks(book)]
    assert len(chunks) > 60
    assert _share(chunks, "books") > 0.9


def test_classical_chinese_poems_are_books(corpus):
    rows = _jsonl(corpus / "zh" / "zh_classical_poetry.jsonl.gz")
    poems = [
        f"{r.get('title') or ''}\n{r.get('author') or ''}\n{r['text']}" for r in rows if len(r["text"]) > 40
    ]
    assert len(poems) > 300
    assert _share(poems, "books") > 0.85


def test_ewt_answers_reviews_email_newsgroups_are_forum(corpus):
    rows = _jsonl(corpus / "web" / "text" / "ewt_web_docs.jsonl")
    posts = [r["text"] for r in rows if r["genre"] != "weblog" and len(r["text"]) > 200]
    assert len(posts) > 300
    assert _share(posts, "forum") > 0.85


def test_stack_exchange_posts_are_forum(shared_data):
    posts = [r["text"] for r in _jsonl(shared_data / "web" / "text" / "stack_exchange.jsonl")]
    assert len(posts) >= 50
    assert _share(posts, "forum") > 0.8


@pytest.mark.parametrize("name", ["pg1342.txt", "pg2701.txt", "pg84.txt", "pg2600.txt"])
def test_more_gutenberg_books(shared_data, name):
    assert _share(_gutenberg_chunks(shared_data / "reference" / "gutenberg" / name), "books") > 0.9


def test_web_text_is_mostly_web(corpus):
    text = corpus / "web" / "text"
    paths = [*sorted(text.glob("c4-sample.*.jsonl.gz")), *sorted(text.glob("cc_en_head-*.jsonl"))]
    docs = [r["text"][:6000] for p in paths for r in _jsonl(p) if len(r["text"]) > 300]
    assert len(docs) >= 30
    assert _share(docs, "web") > 0.7
