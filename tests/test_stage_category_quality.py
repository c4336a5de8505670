"""The category and quality stages through the shipped chain, their decisions, and the columns they write.

Real text only: the bundled CMRC zh-Wikipedia paragraphs, UD English-EWT web documents (answers, reviews,
e-mail, blogs), WikiText-2 articles and source files (tests/data).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from stage_corpora import cmrc_paragraphs, english_web_docs

from dataengine.classifiers.features import document_tokens
from dataengine.classifiers.model import packaged_model_path, read_card
from dataengine.classifiers.train import is_held_out
from dataengine.config import StagesConfig, load_pipeline_config
from dataengine.configio import ConfigError
from dataengine.keep_top import top_share_threshold
from dataengine.pack.sample_corpus import wikitext_articles
from dataengine.processor import DocumentProcessor
from dataengine.stages import STAGE_ORDER, STAGES, Document
from dataengine.stages.category import CATEGORIES, CategoryClassifier, CategoryConfig
from dataengine.stages.quality import QualityConfig, QualityRule, QualityScorer, is_markup

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "configs" / "pipeline.yaml"
EDGES = read_card(packaged_model_path("quality_en.ftz"))["bin_edges"]


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def rows(corpus) -> list[dict]:
    out = [
        {"id": f"cmrc{i}", "text": t, "source": "cmrc"} for i, t in enumerate(cmrc_paragraphs(corpus)[:300])
    ]
    ewt = _jsonl(corpus / "web" / "text" / "ewt_web_docs.jsonl")
    out += [{"id": f"ewt{i}", "text": r["text"], "source": "ewt"} for i, r in enumerate(ewt[:400])]
    wiki = wikitext_articles(corpus)
    out += [{"id": f"wiki{i}", "text": t, "source": "wikitext"} for i, t in enumerate(wiki[:40])]
    files = _jsonl(corpus / "code" / "code_files.jsonl.gz")
    out += [
        {"id": f"file{i}", "text": f["content"], "source": f"code:{f['language']}"}
        for i, f in enumerate(files[:300])
        if f["content"].strip()
    ]
    return out


@pytest.fixture(scope="module")
def shipped(rows) -> list[dict]:
    kept, rejected = DocumentProcessor(load_pipeline_config(PIPELINE, ["dedup=null"])).process(rows)
    return kept + rejected


def _by_source(out: list[dict], prefix: str) -> list[dict]:
    return [r for r in out if r["source"].startswith(prefix)]


def test_the_chain_is_built_from_one_registry():
    assert list(StagesConfig.model_fields) == list(STAGE_ORDER) == [s.name for s in STAGES]
    assert STAGE_ORDER.index("category") < STAGE_ORDER.index("quality")
    assert all(StagesConfig.model_fields[s.name].default_factory is s.config_class for s in STAGES)


def test_shipped_chain_writes_category_and_quality(shipped):
    assert all(r["category"] in CATEGORIES for r in shipped)
    cmrc = _by_source(shipped, "cmrc")
    assert Counter(r["category"] for r in cmrc)["encyclopedia"] >= 0.95 * len(cmrc)
    wiki = _by_source(shipped, "wikitext")
    assert Counter(r["category"] for r in wiki)["encyclopedia"] >= 0.9 * len(wiki)
    ewt = _by_source(shipped, "ewt")
    assert Counter(r["category"] for r in ewt)["forum"] >= 0.8 * len(ewt)
    # English prose is scored; its bin is the score's place among the model's reference crawl
    scored = [r for r in ewt if r["lang"] == "en" and r["category"] == "forum"]
    assert scored and all(r["quality"] is not None and 0.0 <= r["quality"] <= 1.0 for r in scored)
    for r in scored:
        assert r["quality_bin"] == int(np.searchsorted(EDGES, r["quality"], side="right"))
    # Chinese has no packaged scorer (no shippable Chinese crawl): not scored, never a made-up score
    assert all(r["quality"] is None and r["quality.scored"] == 0 for r in cmrc)
    # nothing is rejected by the model stages by default
    assert not any((r.get("reject") or "").startswith(("quality:", "category:")) for r in shipped)


def test_code_and_markup_are_never_scored_by_the_prose_scorer(shipped):
    files = _by_source(shipped, "code:")
    code = [r for r in files if r["lang"] == "code"]
    assert len(code) >= 0.8 * len(files)
    assert all(r["category"] == "code" and r["category_score"] == 1.0 for r in code)
    assert all(r["quality"] is None for r in code)
    docs = [r for r in files if r["source"] in ("code:Markdown", "code:reStructuredText")]
    assert docs and all(r["quality"] is None for r in docs)  # technical, or Markdown/reST source


def test_news_outranks_held_out_web_documents(corpus):
    """Text the scorer never trained on: the Guardian articles (a Paloma evaluation slice) against the
    EWT web documents its training split held out. Measured: ROC-AUC 0.93."""
    guardian = english_web_docs(corpus)["guardian"]
    ewt = [r["text"] for r in _jsonl(corpus / "web" / "text" / "ewt_web_docs.jsonl")]
    held_out = [
        t
        for t in ewt
        if is_held_out(t, read_card(packaged_model_path("quality_en.ftz"))["held_out_fraction"])
    ]
    docs = [Document(t, lang="en") for t in guardian + held_out]
    QualityScorer().run(docs)
    scores = np.array([d.quality for d in docs])
    truth = np.array([True] * len(guardian) + [False] * len(held_out))
    assert len(guardian) >= 10 and len(held_out) >= 200
    assert roc_auc_score(truth, scores) >= 0.85


def test_markup_detection():
    latex = "\\section{Intro}\nWe show \\cite{a} that \\frac{1}{2} ...\n\\begin{equation}x\\end{equation}"
    markdown = "# Title\n\nSome text.\n\n## Usage\n\n```python\nimport x\n```\n"
    assert is_markup(latex) and is_markup(markdown)
    assert not is_markup("A plain paragraph.\nAnother line with a # in it.")


def _en_docs(rows: list[dict]) -> list[Document]:
    docs = []
    for r in rows:
        if r["source"] in ("ewt", "wikitext"):
            doc = Document(r["text"], lang="en")
            doc.category = "encyclopedia" if r["source"] == "wikitext" else "forum"
            docs.append(doc)
    return docs


def test_threshold_keep_top_and_per_category_rules(rows):
    docs = _en_docs(rows)
    plain = QualityScorer(QualityConfig())
    assert all(rule is None for rule in plain.run(docs))
    scores = np.array([d.quality for d in docs])
    cut = float(np.median(scores))
    rules = QualityScorer(QualityConfig(threshold=cut)).run(docs)
    assert [r == "below_threshold" for r in rules] == list(scores < cut)
    # keep_top 0.3 becomes the lowest score of the best-scored documents holding 30% of the tokens
    tokens = np.array([document_tokens(d.text) for d in docs], dtype=np.float64)
    edge = top_share_threshold(scores, tokens, 0.3)
    kept_share = tokens[scores >= edge].sum() / tokens.sum()
    assert 0.3 <= kept_share <= 0.3 + tokens.max() / tokens.sum()
    rules = QualityScorer(QualityConfig(keep_top=0.3, keep_top_thresholds={"en": {"*": edge}})).run(docs)
    assert [r == "below_keep_top" for r in rules] == list(scores < edge)
    with pytest.raises(ValueError, match="from a sample of the run"):
        QualityScorer(QualityConfig(keep_top=0.3))  # unresolved: fails at set-up, not per document
    # per category: forum held to a bar nothing reaches, encyclopedia untouched
    cfg = QualityConfig(by_category={"forum": QualityRule(threshold=1.0)})
    rules = QualityScorer(cfg).run(docs)
    for doc, rule in zip(docs, rules, strict=True):
        assert (rule == "below_threshold") == (doc.category == "forum"), (doc.category, rule)


def test_bad_settings_fail_at_set_up(tmp_path):
    with pytest.raises(ValueError, match="threshold or keep_top"):
        QualityConfig(threshold=0.5, keep_top=0.2)
    with pytest.raises(ValueError, match="not labels"):
        CategoryClassifier(CategoryConfig(reject=["newz"]))
    with pytest.raises(FileNotFoundError, match="stages.quality.models.de"):
        QualityScorer(QualityConfig(models={"de": str(tmp_path / "missing.ftz")}))
    # a category model is not a quality model: it has no `hq` label
    with pytest.raises(ValueError, match="'hq'"):
        QualityScorer(QualityConfig(models={"en": str(packaged_model_path("category.ftz"))}))
    with pytest.raises(ConfigError, match="stages.quality is null"):
        load_pipeline_config(PIPELINE, ["stages.quality=null"])


def test_rejected_category_is_a_reason(rows):
    docs = [Document(r["text"], lang="zh") for r in rows if r["source"] == "cmrc"][:50]
    rules = CategoryClassifier(CategoryConfig(reject=["encyclopedia"])).run(docs)
    assert sum(r == "rejected_category" for r in rules) >= 45
