"""The Scorer over both backends: log-probs against direct forwards, batching, greedy decoding, and a
trainer checkpoint loaded through the trainer's code agreeing with its Hugging Face export."""

from __future__ import annotations

import platform

import pytest
import torch
from test_eval_support import sample_docs_text, single_thread, tiny_hf_dir, tiny_trainer_run

from dataengine.cpu_linear import OneDNNLinear
from eval.models import load_scorer, module_scorer

pytestmark = pytest.mark.filterwarnings("ignore:torch.distributed is disabled")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    threads = single_thread()
    yield tmp_path_factory.getbasetemp()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def hf(base, corpus):
    return load_scorer(tiny_hf_dir(base, corpus), device="cpu")


def test_continuation_logprob_equals_direct_forward(hf):
    requests = [
        ("中国的首都是", "北京"),
        ("The capital of France is", " Paris"),
        ("9.9 is larger than", " 9.11"),
    ]
    scores = hf.score_continuations(requests)
    for (context, continuation), score in zip(requests, scores, strict=True):
        context_ids, cont_ids = hf.split_request(context, continuation)
        ids = context_ids + cont_ids
        with torch.no_grad():
            logprobs = torch.log_softmax(hf.module(input_ids=torch.tensor([ids])).logits[0].double(), -1)
        expected = sum(float(logprobs[len(context_ids) + i - 1, t]) for i, t in enumerate(cont_ids))
        assert score.n_tokens == len(cont_ids) > 0
        assert score.logprob == pytest.approx(expected, rel=1e-5)
        assert hf.decode(cont_ids) == continuation


def test_trailing_space_moves_to_the_continuation(hf):
    assert hf.split_request("Answer: ", "yes") == hf.split_request("Answer:", " yes")


def test_batched_right_padded_scoring_equals_one_at_a_time(hf, corpus):
    texts = [text[:300] for _, text in sample_docs_text(corpus)]
    hf.token_budget = 600  # forces several batches of different widths
    batched = hf.sequence_logprob(texts)
    hf.token_budget = 1
    single = hf.sequence_logprob(texts)
    hf.token_budget = 8192
    for a, b in zip(batched, single, strict=True):
        assert len(a.logprobs) == len(b.logprobs)
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


def test_greedy_matches_transformers_generate(hf):
    ids = hf.start_ids + hf.encode("The capital of France is")
    ours = hf.greedy(ids, max_new_tokens=6)
    with torch.no_grad():
        out = hf.module.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False, pad_token_id=0)
    theirs = out[0, len(ids) :].tolist()
    eos = hf.tokenizer.eos_token_id
    assert ours == (theirs[: theirs.index(eos)] if eos in theirs else theirs)


def test_trainer_checkpoint_agrees_with_its_hugging_face_export(base, corpus, tmp_path):
    from train.export import export

    run = tiny_trainer_run(base, corpus)
    ours = load_scorer(run, device="cpu")  # a run dir resolves to its latest checkpoint
    assert ours.backend == "trainer" and ours.info["step"] == 7 and ours.info["tokens"] == 1234
    assert ours.max_length == 512
    exported = load_scorer(export(run, tmp_path / "hf"), device="cpu")
    assert exported.backend == "hf"
    # both score on CPU through the trainer's oneDNN linears (x86-64), and still agree to 1e-4
    if platform.machine().lower() in ("x86_64", "amd64"):
        for scorer in (ours, exported):
            assert any(isinstance(m, OneDNNLinear) for m in scorer.module.modules())
    requests = [("中国的首都是", "北京"), ("The sky is", " blue.")]
    a, b = ours.score_continuations(requests), exported.score_continuations(requests)
    for x, y in zip(a, b, strict=True):
        assert x.logprob == pytest.approx(y.logprob, abs=1e-4)


def test_missing_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_scorer(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither a checkpoint"):
        load_scorer(tmp_path / "empty")


def test_sequences_longer_than_the_context_are_refused(hf):
    """The model reads all but a sequence's last token, so max_length + 1 tokens fit (as the harness's)."""
    assert len(hf.score_tokens([[1] * 1025], [1])[0].logprobs) == 1024
    with pytest.raises(ValueError, match="feeds 1025 tokens to the model, over its 1024"):
        hf.score_tokens([[1] * 1026], [1])


def test_contexts_get_no_start_token_unless_asked(hf):
    """lm-eval 0.4 encodes a context with the tokenizer's own special tokens: none for this BPE (no BOS, no
    template); bos_or_eos is the project's former prefix (EOS here)."""
    eos = hf.tokenizer.eos_token_id
    assert hf.tokenizer.bos_token_id is None and hf.start_ids == [eos]
    assert hf.context_prefix == "tokenizer"
    context_ids, cont_ids = hf.split_request("The sky is", " blue")
    assert context_ids == hf.encode("The sky is") and hf.decode(cont_ids) == " blue"
    assert hf.split_request("", "The sky")[0] == [eos]  # an empty context: the start token, as the harness
    hf.context_prefix = "bos_or_eos"
    try:
        assert hf.split_request("The sky is", " blue") == ([eos, *context_ids], cont_ids)
        prefixed = hf.score_continuations([("The sky is", " blue")])[0].logprob
    finally:
        hf.context_prefix = "tokenizer"
    plain = hf.score_continuations([("The sky is", " blue")])[0].logprob
    assert prefixed != pytest.approx(plain, abs=1e-6)  # a different number, hence the option


def test_a_tokenizer_that_adds_bos_gets_it_as_the_harness_does(hf):
    """A Llama-style tokenizer (a template adding <s>): lm-eval 0.4.13 keeps its BOS on every context and, in
    rolling log-likelihood, after its own start token; `none` drops it, `bos_or_eos` puts one before."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer.from_str(hf.tokenizer.backend_tokenizer.to_str())
    raw.add_special_tokens(["<s>"])
    bos = raw.token_to_id("<s>")
    raw.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<s>", eos_token=hf.tokenizer.eos_token
    )
    scorer = module_scorer(hf.module, tokenizer, 1024, torch.device("cpu"), "llama-style", "hf")
    plain = hf.encode("The sky is")
    assert scorer.split_request("The sky is", " blue")[0] == [bos, *plain]
    assert scorer.document_ids("The sky") == [bos, bos, *hf.encode("The sky")]
    assert scorer.split_request("<s>The sky is", " blue")[0] == [bos, *plain]  # already there: not twice
    scorer.context_prefix = "none"
    assert scorer.split_request("The sky is", " blue")[0] == plain
    assert scorer.document_ids("The sky") == [bos, *hf.encode("The sky")]
    scorer.context_prefix = "bos_or_eos"
    assert scorer.split_request("The sky is", " blue")[0] == [bos, *plain]


def test_max_length_is_looked_up_as_the_harness_does():
    from types import SimpleNamespace

    from eval.models import TOKENIZER_UNSET_LENGTH, hf_max_length

    tok = SimpleNamespace(model_max_length=TOKENIZER_UNSET_LENGTH)
    assert hf_max_length(SimpleNamespace(n_positions=1024, max_position_embeddings=4096), tok) == 1024
    assert hf_max_length(SimpleNamespace(max_position_embeddings=4096), tok) == 4096
    assert hf_max_length(SimpleNamespace(), SimpleNamespace(model_max_length=512)) == 512
    assert hf_max_length(SimpleNamespace(), tok) == 2048
