"""Builders shared by the eval tests (no tests here): a BPE tokenizer trained offline on real English and
Chinese text from the bundled corpus (tests/data, the `corpus` fixture), a tiny randomly initialised Llama saved as a Hugging Face directory, a
trainer checkpoint written by the trainer's own code, and a copy model with known retrieval behaviour.

Built once per pytest session under the session's base temp dir, whichever eval test module asks first.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

EOS = "<|endoftext|>"


def real_texts(corpus: Path, limit_chars: int = 300_000) -> list[str]:
    """English (WikiText-2) and Chinese (zh-Wikipedia paragraphs) text."""
    english = (corpus / "reference" / "wikitext-2_valid.txt").read_text(encoding="utf-8")[:limit_chars]
    chinese = []
    with open(corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8") as fh:
        for line in fh:
            chinese.append(json.loads(line)["text"])
    return english.split("\n") + chinese


def _train_tokenizer(corpus: Path, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(real_texts(corpus), trainer=trainer)
    return tok


def tiny_hf_dir(base: Path, corpus: Path) -> Path:
    """A 2-layer Llama (hidden 64, context 1024) with a 1024-token BPE, as a Hugging Face directory."""
    from transformers import PreTrainedTokenizerFast

    out = base / "tiny_hf"
    if (out / "model.safetensors").is_file():
        return out
    tok = _train_tokenizer(corpus, 1024)
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS).save_pretrained(out)
    save_tiny_llama(out, tok.get_vocab_size(), tok.token_to_id(EOS), context=1024, seed=0)
    return out


def save_tiny_llama(out: Path, vocab_size: int, eos_id: int, context: int, seed: int) -> None:
    """A 2-layer random Llama (hidden 64, EOS and no BOS) saved into `out` beside its tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
        bos_token_id=None,
        eos_token_id=eos_id,
    )
    LlamaForCausalLM(config).save_pretrained(out)


def tiny_trainer_run(base: Path, corpus: Path) -> Path:
    """A trainer run dir with one checkpoint (step 7) saved by train.checkpoint, and RUN/tokenizer."""
    from train.checkpoint import save_checkpoint
    from train.hf import write_tokenizer_config
    from train.model import ModelConfig, Transformer

    run = base / "tiny_run"
    if (run / "checkpoints" / "latest").is_file():
        return run
    hf = tiny_hf_dir(base, corpus)
    (run / "tokenizer").mkdir(parents=True, exist_ok=True)
    shutil.copy(hf / "tokenizer.json", run / "tokenizer" / "tokenizer.json")
    vocab = json.loads((hf / "config.json").read_text())["vocab_size"]
    eos_id = json.loads((hf / "config.json").read_text())["eos_token_id"]
    write_tokenizer_config(run / "tokenizer", eos_id, None)
    cfg = ModelConfig(
        vocab_size=vocab, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=128, max_seq_len=512
    )
    model = Transformer(cfg)
    model.init_weights(0)
    meta = {"tokens": 1234, "model": cfg.model_dump(), "eos_id": eos_id, "pad_id": None}
    save_checkpoint(run, 7, model, torch.optim.AdamW(model.parameters()), meta, np.zeros(1), keep_last=1)
    return run


class CopyModel(torch.nn.Module):
    """Predicts the token that followed the longest earlier repeat of the current suffix (an induction
    copier): it retrieves a passkey whenever the question repeats the needle's wording, so it is the
    positive control for retrieval scoring, where a random model is the negative one."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        batch, length = ids.shape
        logits = torch.zeros(batch, length, self.vocab_size)
        for b in range(batch):
            row = ids[b]
            match = torch.zeros(length, length, dtype=torch.long)  # match[t, j]: common suffix length
            for t in range(length):
                same = (row[:t] == row[t]).long()
                if t > 0:
                    same[1:] = same[1:] * (match[t - 1, : t - 1] + 1)
                match[t, :t] = same
            for t in range(1, length):
                best = match[t, :t]
                if best.max() > 0:
                    j = int(torch.nonzero(best == best.max())[-1])
                    logits[b, t, int(row[j + 1])] = 20.0
        return logits


def single_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core machine threads only contend."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    return previous


def sample_docs_text(corpus: Path) -> list[tuple[str, str]]:
    """A few real (domain, text) pairs: English WikiText paragraphs and Chinese zh-Wikipedia paragraphs."""
    english = [p.strip() for p in real_texts(corpus, 60_000)[:400] if len(p.strip()) > 300][:3]
    chinese = [t for t in real_texts(corpus)[-400:] if len(t) > 200][:3]
    return [("wiki_en", t) for t in english] + [("wiki_zh", t) for t in chinese]
