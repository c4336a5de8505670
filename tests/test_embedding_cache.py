"""One cache of embeddings per run (issue 19): semantic dedup writes the vectors it computed, and
``pack --order similar`` on that run's kept/ reuses them instead of embedding again. Real zh-Wikipedia
(CMRC 2018) and WikiText-2 paragraphs, with edited copies planted for semantic dedup to remove."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from semantic_corpora import en_edit, wikitext_paragraphs, zh_edit, zh_paragraphs
from threadpoolctl import threadpool_limits

from dataengine.dedup import passes
from dataengine.dedup.config import DedupConfig
from dataengine.dedup.runner import run_dedup
from dataengine.embed import cache
from dataengine.embed.config import EmbedConfig
from dataengine.pack.packer import PackConfig, pack
from dataengine.pack.tokenizer import TokenizerConfig, train_tokenizer

SEMANTIC = {"enabled": True, "keep": "quality"}


@pytest.fixture(scope="module")
def dedup_run(corpus, tmp_path_factory) -> Path:
    """A dedup run (OUT/kept, OUT/embeddings) over 250 zh + 250 en paragraphs and 25 edited copies of each."""
    zh, en = zh_paragraphs(corpus)[:250], wikitext_paragraphs(corpus)[:250]
    rng = random.Random(0)
    rows = [{"id": f"zh{i}", "text": t, "lang": "zh", "quality": 0.9} for i, t in enumerate(zh)]
    rows += [{"id": f"en{i}", "text": t, "lang": "en", "quality": 0.9} for i, t in enumerate(en)]
    rows += [
        {"id": f"zh{i}e", "text": zh_edit(zh[i], rng), "lang": "zh", "quality": 0.1}
        for i in range(0, 250, 10)
    ]
    rows += [
        {"id": f"en{i}e", "text": en_edit(en[i], rng), "lang": "en", "quality": 0.1}
        for i in range(0, 250, 10)
    ]
    root = tmp_path_factory.mktemp("cache")
    (root / "in").mkdir()
    for f in range(2):
        pq.write_table(pa.Table.from_pylist(rows[f::2]), root / "in" / f"part-{f}.parquet")
    cfg = DedupConfig(executor="local", minhash={"enabled": False}, semantic=SEMANTIC)
    with threadpool_limits(1), pytest.MonkeyPatch.context() as patch:
        patch.setattr(passes, "CACHE_PART_ROWS", 200)  # 3 part files, as a large run has
        run = run_dedup([root / "in"], root / "out", cfg)
    assert run["rejected_by_reason"] == {"dedup:semantic": 50}
    train_tokenizer([root / "out" / "kept"], root / "tokenizer.json", TokenizerConfig(vocab_size=2000))
    return root


def _cached(folder: Path) -> tuple[list[str], np.ndarray]:
    table = pa.concat_tables(pq.read_table(p) for p in sorted(folder.glob("part-*.parquet")))
    return table[cache.KEY].to_pylist(), np.stack(table[cache.EMB].to_numpy(zero_copy_only=False))


def test_dedup_writes_every_embedded_document_once(dedup_run):
    """Every document semantic dedup embedded (the 550 alive ones, removed copies included) is in the
    cache once (over 3 part files split by key), under the hash of its text, with the vector the saved
    embedder gives that text."""
    folder = dedup_run / "out" / "embeddings"
    run = json.loads((dedup_run / "out" / "run.json").read_text())
    assert run["semantic"]["embedding_cache"] == {"folder": str(folder), "rows": 550, "parts": 3}
    texts = pq.read_table(dedup_run / "in").column("text").to_pylist()
    keys, emb = _cached(folder)
    assert sorted(keys) == sorted(cache.text_key(t) for t in texts) and len(set(keys)) == 550
    opened = cache.EmbeddingCache.open(str(folder))
    assert opened.rows == 550 and opened.mismatch(EmbedConfig()) is None
    assert "dim: cache 256, config 128" in opened.mismatch(EmbedConfig(dim=128))
    embedder = opened.embedder(EmbedConfig())
    by_key = dict(zip(keys, emb, strict=True))
    sample = texts[:40] + texts[-40:]  # zh and en originals and edited copies
    assert np.array_equal(embedder(sample), np.stack([by_key[cache.text_key(t)] for t in sample]))
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def _shards(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("shard-*")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.ray
def test_pack_reuses_the_run_cache_and_packs_the_same_bytes(ray_session, dedup_run, tmp_path):
    """`pack --order similar` on the run's kept/ takes all 500 vectors from the cache (auto), and packs
    byte for byte what it packs when every vector is embedded anew by the cache's saved embedder."""
    kept, tokenizer = dedup_run / "out" / "kept", dedup_run / "tokenizer.json"
    similar = PackConfig(order="similar", seq_len=256)
    manifest = pack([kept], tokenizer, tmp_path / "auto", similar)
    used = manifest["order"]["embedding_cache"]
    assert used == {"used": True, "folder": str(dedup_run / "out" / "embeddings"), "hits": 500, "embedded": 0}

    vectors_gone = tmp_path / "no_vectors"  # the saved embedder without its vectors: all embedded anew
    shutil.copytree(dedup_run / "out" / "embeddings", vectors_gone)
    meta = json.loads((vectors_gone / cache.MANIFEST).read_text())
    for name in meta["parts"]:
        (vectors_gone / name).unlink()
    (vectors_gone / cache.MANIFEST).write_text(json.dumps({**meta, "parts": [], "rows": 0}))
    config = similar.model_copy(
        update={"similar": similar.similar.model_copy(update={"embedding_cache": str(vectors_gone)})}
    )
    fresh = pack([kept], tokenizer, tmp_path / "fresh", config)
    assert fresh["order"]["embedding_cache"]["embedded"] == 500
    assert _shards(tmp_path / "fresh") == _shards(tmp_path / "auto")

    off = PackConfig.model_validate(
        {"order": "similar", "seq_len": 256, "similar": {"embedding_cache": None}}
    )
    assert pack([kept], tokenizer, tmp_path / "off", off)["order"]["embedding_cache"]["used"] is False


def test_a_cache_of_other_settings_is_not_used(dedup_run, tmp_path):
    """auto passes over a cache whose embedder settings differ (and says why); a named one is an error,
    before any work; inputs outside a run's kept/ have no cache."""
    from dataengine.pack.order import make_order

    kept = str(dedup_run / "out" / "kept" / "part-00000.parquet")
    other = PackConfig.model_validate({"order": "similar", "similar": {"embed": {"dim": 128}}})
    order = make_order(other, [kept])
    assert order.cache is None and "dim: cache 256, config 128" in order.stats()["embedding_cache"]["why_not"]
    named = {"embed": {"dim": 128}, "embedding_cache": str(dedup_run / "out" / "embeddings")}
    with pytest.raises(ValueError, match="similar.embedding_cache: .*dim: cache 256, config 128"):
        make_order(PackConfig.model_validate({"order": "similar", "similar": named}), [kept])
    with pytest.raises(ValueError, match="no complete embedding cache"):
        make_order(
            PackConfig.model_validate({"order": "similar", "similar": {"embedding_cache": str(tmp_path)}})
        )
    outside = make_order(PackConfig(order="similar"), [str(dedup_run / "in" / "part-0.parquet")])
    assert "not in a run's kept/ folder" in outside.stats()["embedding_cache"]["why_not"]


def test_find_cache_in_both_run_layouts(tmp_path):
    """`dataengine dedup -o D` leaves D/kept and D/embeddings; `dataengine run` leaves OUT/kept and
    OUT/dedup/embeddings. Inputs from two runs are not mixed."""
    for run, folder in (("dedup", "embeddings"), ("run", "dedup/embeddings")):
        (tmp_path / run / "kept").mkdir(parents=True)
        (tmp_path / run / folder).mkdir(parents=True)
        (tmp_path / run / folder / cache.MANIFEST).write_text("{}")
    for run, folder in (("dedup", "embeddings"), ("run", "dedup/embeddings")):
        assert cache.find_cache([str(tmp_path / run / "kept" / "part-00000.parquet")]) == (
            str(tmp_path / run / folder),
            "",
        )
    mixed = [str(tmp_path / run / "kept" / "part-00000.parquet") for run in ("dedup", "run")]
    assert cache.find_cache(mixed)[0] is None
