"""Semantic dedup with the packaged offline embedder: reworded copies go, distinct documents stay."""

from __future__ import annotations

import json
import platform

import numpy as np
import pytest

from dataengine.cpu_linear import OneDNNLinear, onednn_available
from dataengine.dedup.config import SemanticConfig
from dataengine.dedup.semantic import (
    assign_clusters,
    dedup_cluster,
    semantic_embedder,
    train_centroids,
)
from dataengine.embed.sentence import SentenceTransformerEmbedder


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return semantic_embedder(SemanticConfig(enabled=True, device="cpu"))


def test_reworded_copies_are_dropped_and_clusters_kept(corpus, embedder):
    with open(corpus / "web" / "text" / "ewt_web_docs.jsonl", encoding="utf-8") as fh:
        docs = [t for t in (json.loads(line)["text"] for line in fh) if 300 <= len(t) <= 1500][:12]
    reworded = [d.replace(" the ", " this ").replace(".", " .").replace(" and ", " & ") for d in docs[:4]]
    texts = docs + reworded
    emb = embedder(texts)
    assert emb.shape == (16, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)

    cfg = SemanticConfig(enabled=True, num_clusters=3, cosine_threshold=0.93)
    clusters = assign_clusters(emb, train_centroids(emb, cfg))
    assert set(clusters.tolist()) <= {0, 1, 2}
    n = len(texts)
    out = dedup_cluster(
        {
            "_uid": np.arange(n, dtype=np.int64),
            "id": np.array([f"d{i}" for i in range(n)], dtype=object),
            "_prio": np.zeros(n),
            "_emb": emb,
            "_sem_cluster": clusters,
            "dup_cluster_size": np.ones(n, dtype=np.int32),
        },
        threshold=cfg.cosine_threshold,
    )
    dropped = {
        int(u): d for u, r, d in zip(out["_uid"], out["_sem_reject"], out["_sem_dup_of"], strict=True) if r
    }
    for i in range(4):  # each reworded copy (ids 12..15) goes, pointing at its original
        if clusters[12 + i] == clusters[i]:
            assert dropped.get(12 + i) == f"d{i}"
    assert len(dropped) >= 3
    assert not any(u < 12 for u in dropped), "distinct real documents must all stay"
    sizes = dict(zip(out["_uid"].tolist(), out["_sem_size"].tolist(), strict=True))
    assert all(sizes[int(dropped[u][1:])] >= 2 for u in dropped)


def test_onednn_linears_embed_like_torch_default(corpus, embedder):
    """The default CPU embedder runs its linear layers on oneDNN (x86-64); the embeddings of real en and
    zh text are those of torch's default GEMM to fp32 rounding."""
    with open(corpus / "web" / "text" / "ewt_web_docs.jsonl", encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line, _ in zip(fh, range(6), strict=False)]
    with open(corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8") as fh:
        texts += [json.loads(line)["text"] for line, _ in zip(fh, range(6), strict=False)]
    if platform.machine().lower() in ("x86_64", "amd64") and onednn_available():
        assert any(isinstance(m, OneDNNLinear) for m in embedder.model.modules())
    plain = semantic_embedder(SemanticConfig(enabled=True, device="cpu", cpu_linear="aten"))
    assert not any(isinstance(m, OneDNNLinear) for m in plain.model.modules())
    cosine = np.sum(embedder(texts) * plain(texts), axis=1)
    assert cosine.shape == (12,) and cosine.min() > 0.99999
