"""Categories downstream: phase 1's `category` becomes pack's channel (`lang/category`) and the trainer's
per-channel loss and `channel_weights` then work per category, on real English and Chinese text."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_train_shards import tiny_config, torch_one_thread  # noqa: F401

from dataengine.api import process
from dataengine.config import load_pipeline_config
from dataengine.pack.packer import PackConfig, pack
from dataengine.pack.shards import ShardReader
from dataengine.pack.tokenizer import TokenizerConfig, train_tokenizer
from train.trainer import run as train

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.ray
def test_lang_and_category_channels_reach_the_trainer(ray_session, corpus, tmp_path):
    with gzip.open(corpus / "web/text/c4-sample.01.jsonl.gz", "rt") as fh:
        docs = [json.loads(line) for line in fh]
    ewt = [json.loads(line) for line in open(corpus / "web/text/ewt_web_docs.jsonl", encoding="utf-8")]
    docs += [{"id": d["doc_id"], "text": d["text"]} for d in ewt[:120]]  # reviews, Q&A, email, blogs
    zh = [json.loads(line) for line in open(corpus / "zh/cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8")]
    docs += [{"id": d["id"], "text": d["text"]} for d in zh[:150]]
    cfg = load_pipeline_config(ROOT / "configs/pipeline.yaml", ["dedup=null"])
    kept = process(docs, cfg).kept
    pq.write_table(kept, tmp_path / "kept.parquet")
    expected = {f"{r['lang']}/{r['category']}" for r in kept.select(["lang", "category"]).to_pylist()}
    assert len(expected) >= 3 and any(c.startswith("zh/") for c in expected)

    tok = tmp_path / "tok.json"
    train_tokenizer([tmp_path / "kept.parquet"], tok, TokenizerConfig(vocab_size=1024, heldout_fraction=0.05))
    shards = tmp_path / "shards"
    manifest = pack(
        [tmp_path / "kept.parquet"], tok, shards, PackConfig(seq_len=128, channel=["lang", "category"])
    )
    assert set(manifest["channels"]) == expected
    assert set(ShardReader(shards).channels) == expected

    # weight 0 leaves a channel out of training; every other channel's loss is logged under its name
    dropped = sorted(expected)[0]
    weights = ",".join(f'"{c}": {0 if c == dropped else 1}' for c in sorted(expected))
    records = train(
        tiny_config(shards, tmp_path / "run", "train.max_steps=2", f"data.channel_weights={{{weights}}}")
    )
    logged = {k.removeprefix("loss/") for r in records for k in r if k.startswith("loss/")}
    assert dropped not in logged and logged and logged <= expected - {dropped}
    assert all(math.isfinite(r[f"loss/{c}"]) for r in records for c in logged if f"loss/{c}" in r)
