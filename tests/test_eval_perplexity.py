"""Perplexity, bits-per-byte, word and byte perplexity: rolling windows (lm-eval's loglikelihood_rolling) against
direct computations with the model itself; held-out documents whole, caps counted. The harness itself runs in
tests/test_eval_lm_eval_agreement.py."""

from __future__ import annotations

import math
import re

import pytest
import torch
from test_eval_support import sample_docs_text, single_thread, tiny_hf_dir

from eval.config import PACKAGED_DATA, DataConfig, load_eval_config
from eval.heldout import HeldoutDoc, load_heldout, read_heldout
from eval.models import load_hf
from eval.perplexity import evaluate_perplexity, resolve_window, sliding_windows


@pytest.fixture(scope="module")
def scorer(tmp_path_factory, corpus):
    threads = single_thread()
    yield load_hf(tiny_hf_dir(tmp_path_factory.getbasetemp(), corpus), device="cpu")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def docs(corpus) -> list[HeldoutDoc]:
    return [HeldoutDoc(text, domain, domain[-2:]) for domain, text in sample_docs_text(corpus)]


@pytest.mark.parametrize(
    "n,window,stride", [(10, 4, 2), (10, 4, 4), (37, 8, 3), (5, 16, 8), (2, 2, 1), (9, 1, 1), (1, 4, 4)]
)
def test_rolling_windows_score_every_token_once_with_enough_context(n, window, stride):
    scored = []
    for k, (begin, end, score_from) in enumerate(sliding_windows(n, window, stride)):
        assert end - 1 - begin <= window and score_from >= 1  # the model reads ids[begin:end - 1]
        assert k == 0 or end == n or end - 1 - begin == window  # later windows are full, the last included
        for pos in range(begin + score_from, end):
            scored.append(pos)
            assert pos - begin >= min(pos, window - stride + 1)  # context the token sees inside its window
    assert scored == list(range(1, n))


def test_disjoint_windows_are_the_harness_rolling_windows():
    """lm-eval's get_rolling_token_windows(context_len=1) + make_disjoint_window for 10 tokens, max_seq_len 4:
    inputs [P,t0,t1,t2] [t3,t4,t5,t6] [t5,t6,t7,t8]... scoring t0-t3, t4-t7, t8-t9 (P: the start token)."""
    assert sliding_windows(11, 4, 4) == [(0, 5, 1), (4, 9, 1), (6, 11, 3)]


def _direct_nll(model, ids: list[int]) -> float:
    """One plain forward over the whole document."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    logprobs = torch.log_softmax(logits.double(), -1)[:-1].gather(1, torch.tensor(ids[1:])[:, None])
    return float(-logprobs.sum())


def _rolling_reference_nll(model, ids: list[int], window: int, stride: int) -> float:
    """The rolling windows written out with the model's own loss (labels -100 on context tokens): the first
    window reads ids[0:window] and scores ids[1:window + 1]; each later one scores the next `stride` tokens
    after reading the `window` tokens before each of them."""
    total, scored = 0.0, 1
    step = window
    while scored < len(ids):
        end = min(scored + step, len(ids))
        begin = max(0, end - window - 1)
        inputs = torch.tensor([ids[begin:end]])
        labels = inputs.clone()
        labels[:, : scored - begin] = -100
        with torch.no_grad():
            logits = model(input_ids=inputs[:, :-1]).logits.double()
        losses = torch.nn.functional.cross_entropy(logits[0], labels[0, 1:], reduction="sum")
        total += float(losses)
        scored, step = end, stride
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


@pytest.mark.parametrize("window,stride", [(64, 64), (64, 24)])
def test_rolling_windows_match_a_plain_reference(scorer, docs, window, stride):
    result = evaluate_perplexity(scorer, docs[:2], window=window, stride=stride)
    expected = sum(
        _rolling_reference_nll(scorer.module, scorer.start_ids + scorer.encode(d.text), window, stride)
        for d in docs[:2]
    )
    assert result["window"] == window and result["stride"] == stride
    assert result["overall"]["nll"] == pytest.approx(expected, rel=1e-5)
    whole = evaluate_perplexity(scorer, docs[:2])  # the defaults: the model's length, disjoint windows
    assert whole["window"] == whole["stride"] == scorer.max_length == 1024
    assert whole["overall"]["tokens"] == result["overall"]["tokens"]  # every token, once, either way


def test_word_and_byte_perplexity_are_the_harness_definitions(scorer, docs):
    row = evaluate_perplexity(scorer, docs)["overall"]
    words = sum(len(re.split(r"\s+", d.text)) for d in docs)
    n_bytes = sum(len(d.text.encode("utf-8")) for d in docs)
    assert row["words"] == words and row["bytes"] == n_bytes
    assert row["word_perplexity"] == pytest.approx(math.exp(row["nll"] / words))
    assert row["byte_perplexity"] == pytest.approx(math.exp(row["nll"] / n_bytes))
    assert row["bits_per_byte"] == row["bpb"] == pytest.approx(row["nll"] / n_bytes / math.log(2))


def test_window_defaults_to_the_model_length_under_an_explicit_cap():
    assert resolve_window(2048, None, None, None) == (2048, 2048)
    assert resolve_window(2048, None, None, 512) == (512, 512)
    assert resolve_window(2048, 4096, 256, None) == (2048, 256)  # never past the model's context


def test_heldout_files_give_per_domain_tables(scorer):
    """The shipped quick config's held-out files: the bundled English and Chinese text in eval/data."""
    quick = load_eval_config("configs/eval/quick.yaml")
    paths = [quick.resolve(p) for p in quick.data.heldout]
    assert all(path.is_relative_to(PACKAGED_DATA) for path in paths)
    docs = load_heldout(paths, DataConfig(max_docs_per_domain=3, max_chars_per_doc=1500))
    counts = {domain: sum(d.domain == domain for d in docs) for domain in {d.domain for d in docs}}
    assert counts == {"wikitext-2_valid": 1, "cmrc2018_zhwiki_contexts": 3}  # a text file is one document
    assert {d.lang for d in docs} == {"en", "zh"}
    result = evaluate_perplexity(scorer, docs, window=256, stride=128)
    for row in result["domains"].values():
        assert row["tokens"] > 0
        # an untrained model is near uniform over its 1024-token vocabulary: about 10 bits per token
        assert 8.0 < row["bits_per_token"] < 12.0


def test_heldout_documents_are_whole_unless_a_cap_is_set_and_then_it_is_counted(corpus):
    """WikiText as one whole document by default; with caps, what they leave out is counted for the report."""
    text_path = corpus / "reference" / "wikitext-2_valid.txt"
    zh_path = corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl"
    whole = read_heldout([text_path, zh_path], DataConfig())
    [wiki] = [d for d in whole.docs if d.domain == "wikitext-2_valid"]
    assert wiki.text == text_path.read_text(encoding="utf-8")  # every character, nothing cut
    assert whole.caps() == {
        "max_docs_per_domain": None,
        "max_chars_per_doc": None,
        "docs_left_out": {},
        "docs_cut": 0,
        "chars_cut": 0,
    }
    capped = read_heldout([text_path, zh_path], DataConfig(max_docs_per_domain=5, max_chars_per_doc=1000))
    zh_total = len(whole.docs) - 1
    assert capped.docs_left_out == {"cmrc2018_zhwiki_contexts": zh_total - 5}
    cut = [
        d for d in capped.docs if len(d.text) < len(next(w for w in whole.docs if w.doc_id == d.doc_id).text)
    ]
    assert capped.docs_cut == len(cut) >= 1
    assert capped.chars_cut == sum(
        len(next(w for w in whole.docs if w.doc_id == d.doc_id).text) - len(d.text) for d in cut
    )
    [wiki_cut] = [d for d in capped.docs if d.domain == "wikitext-2_valid"]
    assert len(wiki_cut.text) <= 1000 and wiki.text.startswith(wiki_cut.text)
    assert wiki.text[len(wiki_cut.text)].isspace()  # cut at a word boundary, not mid-word


def test_bad_jsonl_row_names_file_and_line(tmp_path):
    path = tmp_path / "held.jsonl"
    path.write_text('{"text": "fine"}\n{"body": "no text field"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"held\.jsonl:2: no string field 'text'"):
        load_heldout([path], DataConfig())
