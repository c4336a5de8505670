"""`dataengine quality train` and `dataengine category train` on real text, and the trained models in the stages."""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from stage_corpora import cmrc_paragraphs
from typer.testing import CliRunner

from dataengine.classifiers.model import read_card
from dataengine.cli import app
from dataengine.stages import Document
from dataengine.stages.category import CategoryClassifier, CategoryConfig
from dataengine.stages.quality import QualityConfig, QualityScorer

CAP = ["--set", "max_docs_per_label=300"]


def _ewt(corpus: Path) -> list[str]:
    with open(corpus / "web" / "text" / "ewt_web_docs.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh]


def _run(args: list[str]) -> dict:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + "".join(traceback.format_exception(*result.exc_info))
    return json.loads(result.output.strip().splitlines()[-1])


def test_quality_train_dclm_recipe_and_the_stage_uses_the_model(corpus, tmp_path):
    """Chinese Wikipedia (reference) against English web documents (crawl): the command prints held-out
    figures and writes a card with percentile edges; the stage then scores zh with it."""
    model = tmp_path / "quality_zh.ftz"
    zh = corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl"
    ewt = corpus / "web" / "text" / "ewt_web_docs.jsonl"
    printed = _run(
        ["quality", "train", "--positive", str(zh), "--negative", str(ewt), "-o", str(model), *CAP]
    )
    assert printed["documents"]["hq"] + printed["documents"]["crawl"] < 600 and printed["roc_auc"] >= 0.95
    assert set(printed["labels"]) == {"hq", "crawl"} and printed["labels"]["hq"]["recall"] >= 0.9
    card = read_card(model)
    edges = card["bin_edges"]
    assert len(edges) == 19 and edges == sorted(edges) and card["recipe"]["positive"] == [str(zh)]
    docs = [Document(t, lang="zh") for t in cmrc_paragraphs(corpus)[-100:]]
    QualityScorer(QualityConfig(models={"zh": str(model)})).run(docs)
    assert all(0 <= d.quality <= 1 and 0 <= d.quality_bin <= 19 for d in docs)
    assert np.median([d.quality for d in docs]) > edges[-1]  # above 95% of the crawl's tokens


def test_quality_train_distils_a_score_column(corpus, tmp_path):
    """`--from-column`: a grade a user already has (here: 1 for Chinese Wikipedia, 0 for web documents,
    as an LLM grader might give) becomes hq at or above the median."""
    zh, ewt = cmrc_paragraphs(corpus)[:250], _ewt(corpus)[:250]
    rows = [{"id": f"z{i}", "text": t, "grade": 1.0} for i, t in enumerate(zh)]
    rows += [{"id": f"e{i}", "text": t, "grade": 0.0} for i, t in enumerate(ewt)]
    graded = tmp_path / "graded.parquet"
    pq.write_table(pa.Table.from_pylist(rows), graded)
    model = tmp_path / "distilled.ftz"
    printed = _run(["quality", "train", "-i", str(graded), "--from-column", "grade", "-o", str(model)])
    assert printed["roc_auc"] >= 0.95
    assert read_card(model)["recipe"]["positive_above"] == 0.5  # the median of 250 ones and 250 zeros
    # a grade that is not a number names the record and the column
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "text": "some text", "grade": "high"}) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["quality", "train", "-i", str(bad), "--from-column", "grade", "-o", str(model)]
    )
    assert result.exit_code == 2 and "`grade` is not a number ('high')" in result.output
    assert "bad.jsonl" in result.output


def test_category_train_from_sources_and_from_a_column(corpus, tmp_path):
    zh = corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl"
    ewt = corpus / "web" / "text" / "ewt_web_docs.jsonl"
    model = tmp_path / "two.ftz"
    printed = _run(
        [
            "category",
            "train",
            "--label",
            f"encyclopedia={zh}",
            "--label",
            f"forum={ewt}",
            "-o",
            str(model),
            *CAP,
        ]
    )
    assert printed["accuracy"] >= 0.95 and set(printed["labels"]) == {"encyclopedia", "forum"}
    docs = [Document(t, lang="zh") for t in cmrc_paragraphs(corpus)[-50:]]
    CategoryClassifier(CategoryConfig(model_path=str(model))).run(docs)
    assert sum(d.category == "encyclopedia" for d in docs) >= 48
    # labels from a column, as phase-1 output or a user's annotation carries them
    rows = [
        {"id": f"z{i}", "text": t, "kind": "encyclopedia"}
        for i, t in enumerate(cmrc_paragraphs(corpus)[:200])
    ]
    rows += [{"id": f"e{i}", "text": t, "kind": "forum"} for i, t in enumerate(_ewt(corpus)[:200])]
    labelled = tmp_path / "labelled.parquet"
    pq.write_table(pa.Table.from_pylist(rows), labelled)
    printed = _run(
        ["category", "train", "-i", str(labelled), "--label-column", "kind", "-o", str(tmp_path / "col.ftz")]
    )
    assert printed["documents"]["encyclopedia"] + printed["documents"]["forum"] < 400
    assert printed["accuracy"] >= 0.95


@pytest.mark.parametrize(
    "args, message",
    [
        (["quality", "train", "-o", "m.ftz"], "give positive and negative documents"),
        (["category", "train", "--label", "news", "-o", "m.ftz"], "expected LABEL=PATH"),
    ],
)
def test_training_commands_refuse_incomplete_settings(args, message):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and message in result.output
