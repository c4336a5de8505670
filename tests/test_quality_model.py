"""The packaged quality scorer (dataengine/resources/models/quality_en.ftz, scripts/train_quality_models.py):
it ranks real reference text above real crawl text on documents it was not trained on, its card carries the
19 bin edges a stage maps scores with, and its scores are probabilities."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from train_quality_models import CHUNK_CHARS, HELD_OUT, labelled_examples  # noqa: E402

from dataengine.classifiers.model import label_probability  # noqa: E402
from dataengine.classifiers.train import is_held_out  # noqa: E402
from dataengine.stages.quality import POSITIVE  # noqa: E402

MODEL = ROOT / "dataengine" / "resources" / "models" / "quality_en.ftz"
CARD = MODEL.with_suffix(MODEL.suffix + ".json")


@pytest.fixture(scope="module")
def model():
    import fasttext

    return fasttext.load_model(str(MODEL))


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads(CARD.read_text(encoding="utf-8"))


def _held_out_docs(corpus: Path) -> tuple[list[str], list[str]]:
    """Reference and crawl documents of the bundled corpus that training held out (same hash rule)."""
    from reference_sets import book_body, chunks
    from stage_corpora import english_web_docs

    from dataengine.pack.sample_corpus import wikitext_articles

    reference = list(wikitext_articles(corpus))
    books = corpus / "reference" / "gutenberg"
    for line in (books / "books_metadata.jsonl").read_text(encoding="utf-8").splitlines():
        book = json.loads(line)
        if book.get("language") == "en":
            reference += chunks(book_body((books / book["file"]).read_text(encoding="utf-8")), CHUNK_CHARS)
    web = english_web_docs(corpus)
    crawl = [t for name in ("c4", "cc_en_head", "redpajama", "dolma", "ewt") for t in web[name] if t.strip()]
    keep = lambda texts: [t for t in texts if is_held_out(t, HELD_OUT)]  # noqa: E731
    return keep(reference), keep(crawl)


def test_ranks_reference_above_crawl_on_held_out_documents(model, corpus):
    reference, crawl = _held_out_docs(corpus)
    assert len(reference) >= 50 and len(crawl) >= 150
    ref, web = score(model, reference), score(model, crawl)
    auc = roc_auc_score([1] * len(ref) + [0] * len(web), np.concatenate([ref, web]))
    assert auc > 0.95, auc
    assert (ref > 0.5).mean() > 0.85
    assert (web > 0.5).mean() < 0.15
    assert np.median(ref) - np.median(web) > 0.5


def test_card_has_19_ascending_bin_edges(card):
    edges = card["bin_edges"]
    assert len(edges) == 19
    assert all(0.0 <= e <= 1.0 for e in edges)
    assert all(a < b for a, b in zip(edges, edges[1:], strict=False))
    assert card["positive"] == "hq" and card["labels"] == ["crawl", "hq"] and card["lang"] == "en"
    assert "crawl" in card["bin_reference"]
    assert card["evaluation"]["roc_auc"] > 0.95
    assert MODEL.stat().st_size < 5_000_000


def test_scores_are_probabilities(model, corpus):
    texts = [
        "",
        "   ",
        "click here!!! buy now $$$",
        "The committee met on Tuesday to review the annual budget and approved the plan.",
        "维基百科是一个自由的百科全书。",
        "def f(x):\n    return x + 1\n",
        "word " * 5000,
    ]
    scores = score(model, texts)
    assert scores.shape == (len(texts),)
    assert np.all((scores >= 0.0) & (scores <= 1.0))


def test_bins_cover_the_crawl_evenly(card):
    """About 5% of the crawl's tokens per bin by construction: the middle edge is the token-weighted median."""
    edges = np.asarray(card["bin_edges"])
    assert card["bin_quantiles"][9] == 0.5
    bins = np.searchsorted(edges, [0.0, edges[9], 1.0], side="right")
    assert list(bins) == [0, 10, 19]


def test_full_held_out_split_matches_the_card(model, card, shared_data):
    triples, _ = labelled_examples("en", shared_data)
    held = [(label, text) for label, text, _ in triples if is_held_out(text, HELD_OUT)]
    scores = score(model, [t for _, t in held])
    auc = roc_auc_score([label == "hq" for label, _ in held], scores)
    assert len(held) == card["evaluation"]["held_out"]
    assert auc == pytest.approx(card["evaluation"]["roc_auc"], abs=0.005)


def score(model, texts: list[str]) -> np.ndarray:
    return label_probability(model, texts, POSITIVE)
