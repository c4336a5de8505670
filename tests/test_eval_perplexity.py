"""Perplexity and bits-per-byte: sliding windows against direct computations with the model itself."""

from __future__ import annotations

import math

import pytest
import torch
from test_eval_support import sample_docs_text, single_thread, tiny_hf_dir

from eval.config import PACKAGED_DATA, DataConfig, load_eval_config
from eval.heldout import HeldoutDoc, load_heldout
from eval.models import load_hf
from eval.perplexity import evaluate_perplexity, sliding_windows


@pytest.fixture(scope="module")
def scorer(tmp_path_factory, corpus):
    threads = single_thread()
    yield load_hf(tiny_hf_dir(tmp_path_factory.getbasetemp(), corpus), device="cpu")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def docs(corpus) -> list[HeldoutDoc]:
    return [HeldoutDoc(text, domain, domain[-2:]) for domain, text in sample_docs_text(corpus)]


@pytest.mark.parametrize("n,window,stride", [(10, 4, 2), (10, 4, 4), (37, 8, 3), (5, 16, 8), (2, 2, 1)])
def test_sliding_windows_score_every_token_once_with_enough_context(n, window, stride):
    scored = []
    for begin, end, score_from in sliding_windows(n, window, stride):
        assert end - begin <= window and score_from >= 1
        for pos in range(begin + score_from, end):
            scored.append(pos)
            assert pos - begin >= min(pos, window - stride)  # context the token sees inside its window
    assert scored == list(range(1, n))


def _direct_nll(model, ids: list[int]) -> float:
    """One plain forward over the whole document."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    logprobs = torch.log_softmax(logits.double(), -1)[:-1].gather(1, torch.tensor(ids[1:])[:, None])
    return float(-logprobs.sum())


def _hf_recipe_nll(model, ids: list[int], window: int, stride: int) -> float:
    """The strided-perplexity recipe of the transformers docs (labels=-100 on context tokens)."""
    total, prev_end = 0.0, 0
    for begin in range(0, len(ids), stride):
        end = min(begin + window, len(ids))
        target_len = end - prev_end
        inputs = torch.tensor([ids[begin:end]])
        labels = inputs.clone()
        labels[:, :-target_len] = -100
        with torch.no_grad():
            loss = model(input_ids=inputs, labels=labels).loss
        counted = int((labels[:, 1:] != -100).sum())
        total += float(loss) * counted
        prev_end = end
        if end == len(ids):
            break
    return total


def test_perplexity_matches_a_single_forward_when_documents_fit(scorer, docs):
    result = evaluate_perplexity(scorer, docs, window=1024, stride=512)
    model = scorer.module
    for domain in ("wiki_en", "wiki_zh"):
        domain_docs = [d for d in docs if d.domain == domain]
        ids = [scorer.start_ids + scorer.encode(d.text) for d in domain_docs]
        assert all(len(x) <= 1024 for x in ids)
        nll = sum(_direct_nll(model, x) for x in ids)
        tokens = sum(len(x) - 1 for x in ids)
        n_bytes = sum(len(d.text.encode("utf-8")) for d in domain_docs)
        row = result["domains"][domain]
        assert row["tokens"] == tokens and row["bytes"] == n_bytes and row["docs"] == len(domain_docs)
        assert row["nll"] == pytest.approx(nll, rel=1e-5)
        assert row["ppl"] == pytest.approx(math.exp(nll / tokens), rel=1e-5)
        assert row["bpb"] == pytest.approx(nll / (math.log(2) * n_bytes), rel=1e-5)
    overall = result["overall"]
    assert overall["nll"] == pytest.approx(sum(r["nll"] for r in result["domains"].values()))
    assert set(result["languages"]) == {"en", "zh"}


def test_strided_windows_match_the_transformers_recipe(scorer, docs):
    window, stride = 64, 24
    result = evaluate_perplexity(scorer, docs[:2], window=window, stride=stride)
    expected = sum(
        _hf_recipe_nll(scorer.module, scorer.start_ids + scorer.encode(d.text), window, stride)
        for d in docs[:2]
    )
    assert result["window"] == window and result["stride"] == stride
    assert result["overall"]["nll"] == pytest.approx(expected, rel=1e-5)
    # less context per token than whole-document scoring: a different (here: random-model) number
    whole = evaluate_perplexity(scorer, docs[:2], window=1024, stride=512)
    assert whole["overall"]["tokens"] == result["overall"]["tokens"]


def test_heldout_files_give_per_domain_tables(scorer):
    """The shipped quick config's held-out files: the bundled English and Chinese text in eval/data."""
    quick = load_eval_config("configs/eval/quick.yaml")
    paths = [quick.resolve(p) for p in quick.data.heldout]
    assert all(path.is_relative_to(PACKAGED_DATA) for path in paths)
    docs = load_heldout(paths, DataConfig(max_docs_per_domain=3, max_chars_per_doc=1500))
    assert {d.domain for d in docs} == {"wikitext-2_valid", "cmrc2018_zhwiki_contexts"}
    assert {d.lang for d in docs} == {"en", "zh"}
    result = evaluate_perplexity(scorer, docs, window=256, stride=128)
    for row in result["domains"].values():
        assert row["docs"] == 3 and row["tokens"] > 0
        # an untrained model is near uniform over its 1024-token vocabulary: about 10 bits per token
        assert 8.0 < row["bits_per_token"] < 12.0


def test_bad_jsonl_row_names_file_and_line(tmp_path):
    path = tmp_path / "held.jsonl"
    path.write_text('{"text": "fine"}\n{"body": "no text field"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"held\.jsonl:2: no string field 'text'"):
        load_heldout([path], DataConfig())
