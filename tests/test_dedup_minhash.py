"""MinHash signatures: identical to datasketch's per-shingle update, and faithful to the true Jaccard on real en/zh text."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from datasketch import MinHash

from dataengine.dedup.config import MinHashConfig
from dataengine.dedup.minhash import (
    EMPTY,
    band_keys,
    is_cjk,
    jaccard,
    minhash_signatures,
    ngram_hashes,
    shingle_hash32,
    shingle_sets,
)


@pytest.fixture(scope="module")
def english(corpus) -> list[str]:
    with open(corpus / "web" / "text" / "ewt_web_docs.jsonl", encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh]
    return [t for t in texts if len(t) >= 600][:40]


@pytest.fixture(scope="module")
def chinese(corpus) -> list[str]:
    with open(corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh][:40]


def _delete_units(text: str, rate: float, rng: random.Random, cjk: bool) -> str:
    units = list(text) if cjk else text.split(" ")
    keep = [u for u in units if rng.random() >= rate]
    return ("" if cjk else " ").join(keep)


def test_signature_equals_datasketch_per_shingle_update(english, chinese):
    cfg = MinHashConfig()
    texts = english[:3] + chinese[:3]
    sigs = minhash_signatures(texts, None, cfg)
    assert sigs.dtype == np.uint32 and sigs.shape == (6, cfg.num_perm)
    for i, text in enumerate(texts):
        hashes, _, _ = ngram_hashes([text], None, cfg.word_ngram, cfg.char_ngram)
        reference = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, hashfunc=lambda v: v)
        for value in shingle_hash32(hashes).tolist():
            reference.update(value)
        assert np.array_equal(reference.hashvalues, sigs[i])


def test_estimate_tracks_true_jaccard_for_english_and_chinese(english, chinese):
    rng = random.Random(0)
    cfg = MinHashConfig()
    originals = english[:20] + chinese[:20]
    cjk = [False] * 20 + [True] * 20
    edited = [_delete_units(t, 0.01, rng, c) for t, c in zip(originals, cjk, strict=True)]
    langs = ["en"] * 20 + ["zh"] * 20
    sigs = minhash_signatures(originals + edited, langs + langs, cfg)
    sets = shingle_sets(originals + edited, langs + langs, cfg)
    n = len(originals)
    est = np.array([(sigs[i] == sigs[n + i]).mean() for i in range(n)])
    true = np.array([jaccard(sets[i], sets[n + i]) for i in range(n)])
    assert np.mean(np.abs(est - true)) < 0.05
    assert true[20:].mean() > 0.7  # Chinese is shingled by character: a 1% edit keeps most 5-grams
    unrelated = np.array([(sigs[i] == sigs[i + 1]).mean() for i in range(n - 1)])
    assert unrelated.max() < 0.2


def test_chinese_uses_character_shingles_even_without_language(chinese):
    text = chinese[0]
    assert is_cjk(text, None) and not is_cjk("plain english words here", None)
    _, owner, flags = ngram_hashes([text], None, 5, 5)
    assert flags[0]
    # Whitespace splitting would give a handful of shingles; character 5-grams give about one per character.
    assert len(owner) > 0.5 * len(text.replace(" ", ""))


def test_empty_text_has_no_shingles_and_band_keys_differ_by_band(english):
    cfg = MinHashConfig()
    sigs = minhash_signatures(["", "   ", english[0]], None, cfg)
    assert np.all(sigs[:2] == EMPTY) and not np.all(sigs[2] == EMPTY)
    keys = band_keys(np.repeat(sigs[2:], 2, axis=0), *cfg.band_params)
    assert keys.shape == (2, cfg.band_params[0])
    assert np.array_equal(keys[0], keys[1]) and len(set(keys[0].tolist())) == cfg.band_params[0]
