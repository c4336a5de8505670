"""``order: similar`` (In-Context Pretraining) on real en/zh/code text: the multilingual hashed
embedder, the kNN walk, the near-duplicate guard, and packing on Ray (every document once, related
documents consecutive under an independent TF-IDF measure, identical bytes for any worker count,
the held-out split unchanged, the partitioned path)."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from typer.testing import CliRunner

from dataengine.embed.hashed import HashedTfidfEmbedder
from dataengine.pack.config import KnnConfig, SimilarOrderConfig
from dataengine.pack.packer import PackConfig, pack
from dataengine.pack.sample_corpus import write_sample_corpus
from dataengine.pack.shards import ShardReader
from dataengine.pack.similar import NeighbourGuard
from dataengine.pack.tokenizer import TokenizerConfig, train_tokenizer
from dataengine.pack.walk import greedy_chains, nearest_neighbours

SEQ_LEN = 256


def _wikitext_articles(corpus: Path) -> list[tuple[str, str]]:
    """(article title, paragraph) of WikiText-2 valid: paragraphs of the same article are related."""
    text = (corpus / "reference" / "wikitext-2_valid.txt").read_text(encoding="utf-8")
    out, title = [], None
    for line in text.split("\n"):
        heading = re.fullmatch(r" = ([^=].*) = ", line)
        if heading:
            title = heading.group(1)
        elif title and len(line) > 400:
            out.append((title, line.strip()))
    return out


def _cmrc_articles(corpus: Path) -> list[tuple[str, str]]:
    rows = [
        json.loads(line) for line in open(corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8")
    ]
    return [(r["title"], r["text"]) for r in rows]


def _halves(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each paragraph cut in two: the halves are related, other paragraphs are other articles."""
    return [(title, part) for title, p in pairs for part in (p[: len(p) // 2], p[len(p) // 2 :])]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_hashed_embedder_finds_related_text(corpus, lang):
    """English: a paragraph's nearest neighbour is from its own Wikipedia article; Chinese (one paragraph
    per article): a half paragraph's nearest neighbour is its other half, with no word segmentation.
    Fitted on half of the text; stable across pickling."""
    pairs = _wikitext_articles(corpus) if lang == "en" else _halves(_cmrc_articles(corpus)[:600])
    titles = np.array([t for t, _ in pairs])
    texts = [p for _, p in pairs]
    embedder = HashedTfidfEmbedder()
    embedder.fit(texts[::2])
    emb = embedder(texts)
    sims = emb @ emb.T
    np.fill_diagonal(sims, -1)
    has_relative = np.array([(titles == t).sum() > 1 for t in titles])
    precision = float((titles[sims.argmax(axis=1)] == titles)[has_relative].mean())
    assert precision > (0.7 if lang == "en" else 0.45), precision
    same = (titles[:, None] == titles[None, :]) & (sims > -1)
    assert sims[same].mean() > 2 * sims[~same & (sims > -1)].mean()
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(pickle.loads(pickle.dumps(embedder))(texts[:20]), emb[:20])
    assert not embedder([""]).any()


def test_settings_are_refused_before_any_work():
    from pydantic import ValidationError

    from dataengine.pack.order import make_order

    with pytest.raises(ValidationError, match="knn.pq_m 7 must divide embed.dim 256"):
        PackConfig.model_validate({"similar": {"knn": {"pq_m": 7}}})
    with pytest.raises(ValueError, match="similar.embed.embedder: '/no/such/model'"):
        make_order(PackConfig(order="similar", similar={"embed": {"embedder": "/no/such/model"}}))


def _near_copy(text: str) -> str:
    """A lightly edited copy: one sentence dropped from the end, punctuation spaced."""
    return text[: int(len(text) * 0.9)].replace("，", "， ").replace(", ", " , ")


def test_walk_uses_every_document_once_and_never_chains_near_duplicates(corpus):
    pairs = _wikitext_articles(corpus)[:200] + _cmrc_articles(corpus)[:200]
    texts = [p for _, p in pairs]
    texts += [_near_copy(t) for t in texts[:20]] + [_near_copy(t) for t in texts[200:220]]
    embedder = HashedTfidfEmbedder()
    embedder.fit(texts)
    emb = embedder(texts)
    cfg = SimilarOrderConfig(max_chain_docs=8, min_chain_docs=3)
    neighbours = nearest_neighbours(emb, cfg.knn)
    chains = greedy_chains(emb, neighbours, cfg, np.random.default_rng(0))
    flat = [i for chain in chains for i in chain]
    assert sorted(flat) == list(range(len(texts)))
    assert max(map(len, chains)) <= 8
    assert chains == greedy_chains(emb, neighbours, cfg, np.random.default_rng(0))
    for chain in chains:
        for a, b in zip(chain, chain[1:], strict=False):
            assert emb[a] @ emb[b] < cfg.near_duplicate
    # the copies are each other's first neighbour: without the guard they would be chained
    assert all(neighbours[i][0] == len(pairs) + i for i in range(20))
    # IVF beyond exact_max finds mostly the same neighbours
    ivf = nearest_neighbours(emb, KnnConfig(exact_max=100, nlist=8, nprobe=4))
    overlap = np.mean([len(set(a[:5]) & set(b[:5])) / 5 for a, b in zip(ivf, neighbours, strict=True)])
    assert overlap > 0.7


def test_category_run_cap_in_walk_and_guard(corpus):
    pairs = _wikitext_articles(corpus)[:120]
    texts = [p for _, p in pairs]
    embedder = HashedTfidfEmbedder()
    embedder.fit(texts)
    emb = embedder(texts)
    categories = ["news" if i % 3 else "books" for i in range(len(texts))]
    cfg = SimilarOrderConfig(category_run=2, min_chain_docs=1)
    chains = greedy_chains(emb, nearest_neighbours(emb, cfg.knn), cfg, np.random.default_rng(1), categories)
    for chain in chains:
        labels = [categories[i] for i in chain]
        assert not any(len(set(labels[i : i + 3])) == 1 for i in range(len(labels) - 2)), labels


def test_guard_holds_back_a_near_duplicate_until_another_document_comes_between():
    import pyarrow as pa

    from dataengine.pack.similar import EMB, HEAD

    vecs = np.eye(4, dtype=np.float32)[[0, 0, 1, 2, 2, 3]]
    table = pa.table(
        {
            "id": [f"d{i}" for i in range(6)],
            "category": [None] * 6,
            "reject": pa.array([None] * 6, pa.string()),
            EMB: pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), 4),
            HEAD: ["h"] * 6,
        }
    )
    guard = NeighbourGuard(0.9, None, max_deferred=10)
    out = guard.push(table, np.zeros(6, dtype=bool))
    assert guard.flush().num_rows == 0  # nothing left waiting
    assert out["id"].to_pylist() == ["d0", "d2", "d1", "d3", "d5", "d4"]
    assert EMB not in out.column_names
    assert guard.stats()["adjacent_near_duplicates"] == 0 and guard.stats()["documents"] == 6


# ---- packing on Ray ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def similar_inputs(corpus, tmp_path_factory) -> list[Path]:
    """Real en web text, zh Wikipedia and code, plus near copies of 30 documents under new ids."""
    root = tmp_path_factory.mktemp("similar_inputs")
    paths = write_sample_corpus(corpus, root, max_chars=300_000)
    inputs = [paths["en"], paths["zh"], paths["code"]]
    copies = []
    for path in inputs[:2]:
        rows = [json.loads(line) for line in open(path, encoding="utf-8")]
        long = [r for r in rows if len(r["text"]) > 600][:15]
        copies += [{**r, "id": r["id"] + "#copy", "text": _near_copy(r["text"])} for r in long]
    with open(root / "copies.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in copies)
    return [*inputs, root / "copies.jsonl"]


@pytest.fixture(scope="module")
def similar_tokenizer(similar_inputs, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("similar_tok") / "tokenizer.json"
    train_tokenizer(similar_inputs, path, TokenizerConfig(vocab_size=2048, heldout_fraction=0.05))
    return path


def _texts(inputs: list[Path]) -> dict[str, str]:
    return {
        row["id"]: row["text"]
        for path in inputs
        for row in (json.loads(line) for line in open(path, encoding="utf-8"))
    }


def _order(root: Path, split: str) -> list[str]:
    reader = ShardReader(root, split)
    order: list[str] = []
    for shard, row in reader.sequence_ids():
        for span in reader.spans(shard, row):
            if not order or order[-1] != span["doc_id"]:
                order.append(span["doc_id"])
    return order


def _consecutive_cosine(order: list[str], texts: dict[str, str]) -> float:
    """Mean cosine of consecutive documents under a TF-IDF of character 1-3-grams (not the order's
    own features)."""
    tfidf = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, max_features=200_000)
    x = tfidf.fit_transform([texts[d] for d in order])
    return float(np.mean(x[:-1].multiply(x[1:]).sum(axis=1)))


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.glob("*/*.bin")) + sorted(root.glob("*/*.parquet")):
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.mark.ray
def test_similar_order_on_ray(ray_session, similar_inputs, similar_tokenizer, tmp_path):
    texts = _texts(similar_inputs)
    packed = {}
    for name, config in {
        "shuffle": PackConfig(seq_len=SEQ_LEN, order="shuffle"),
        "similar": PackConfig(seq_len=SEQ_LEN, order="similar"),
        "one_worker": PackConfig(seq_len=SEQ_LEN, order="similar", num_workers=1, batch_size=64),
        "partitioned": PackConfig(
            seq_len=SEQ_LEN,
            order="similar",
            similar=SimilarOrderConfig(partition_docs=300, knn=KnnConfig(exact_max=200)),
        ),
    }.items():
        packed[name] = pack(similar_inputs, similar_tokenizer, tmp_path / name, config)

    shuffled = {split: _order(tmp_path / "shuffle", split) for split in ("train", "heldout")}
    for name in ("similar", "partitioned"):
        manifest = packed[name]
        for split in ("train", "heldout"):
            order = _order(tmp_path / name, split)
            # every document exactly once, and the held-out split is the same documents
            assert len(order) == len(set(order)) and set(order) == set(shuffled[split])
            # the copies are never next to their originals
            for a, b in zip(order, order[1:], strict=False):
                assert a.removesuffix("#copy") != b.removesuffix("#copy"), (a, b)
        assert manifest["documents_in"] == len(texts) == sum(len(v) for v in shuffled.values())
        stats = manifest["order"]
        assert stats["documents"] == len(texts) and stats["adjacent_near_duplicates"] == 0
        train = _order(tmp_path / name, "train")
        ratio = _consecutive_cosine(train, texts) / _consecutive_cosine(shuffled["train"], texts)
        assert ratio >= 2.0, (name, ratio)
    assert packed["partitioned"]["order"]["partitions"] > 1 and packed["similar"]["order"]["partitions"] == 1
    assert _digest(tmp_path / "similar") == _digest(tmp_path / "one_worker")
    assert packed["similar"]["splits"] == packed["one_worker"]["splits"]


@pytest.mark.ray
def test_cli_order_similar_with_settings(ray_session, similar_inputs, similar_tokenizer, tmp_path):
    from dataengine.cli import app

    args = ["pack", *[x for p in similar_inputs[:2] for x in ("--input", str(p))]]
    args += ["--tokenizer", str(similar_tokenizer), "--output", str(tmp_path / "s"), "--seq-len", "128"]
    result = CliRunner().invoke(
        app,
        [*args, "--order", "similar", "--set", "similar.max_chain_docs=4", "--set", "similar.embed.dim=64"],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["order"]["name"] == "similar" and manifest["order"]["chains"] > 0
    bad = CliRunner().invoke(app, [*args, "--order", "similar", "--set", "similar.knn.k=0"])
    assert bad.exit_code != 0 and "similar.knn.k" in bad.output


@pytest.mark.ray
def test_fit_sample_spans_every_file_whatever_the_blocks(ray_session):
    """The embedder's and k-means' samples come from all inputs (not the first file) and do not depend
    on how Ray cut the rows into blocks."""
    import ray.data

    from dataengine.pack.similar import hash_sample

    rows = [
        {"id": f"{lang}{i}", "source": f"{lang}.jsonl", "text": lang}
        for lang in ("en", "zh")
        for i in range(500)
    ]
    one = hash_sample(ray.data.from_items(rows, override_num_blocks=1), 100, 0, "id")
    seven = hash_sample(ray.data.from_items(rows, override_num_blocks=7), 100, 0, "id")
    assert one == seven and len(one) == 100
    assert 30 < sum(i.startswith("zh") for i in one) < 70
