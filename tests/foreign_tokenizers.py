"""Builders shared by tests (no tests here): Hugging Face model directories whose tokenizers follow
Qwen2's and Llama-3's conventions, trained offline on real text, for packing and continued pretraining
without downloading a base model.

Each directory holds what such a model ships besides its weights: ``tokenizer.json`` (a byte-level BPE
with the family's pre-tokenizer, normalizer and post-processor; the special tokens added after the
learned vocabulary, as theirs are), ``tokenizer_config.json`` (``eos_token``/``pad_token``/
``bos_token`` as the family sets them) and ``config.json`` (a tiny model: 2 layers, hidden 64, tied
embeddings, ``vocab_size`` rounded above the tokenizer's, as Qwen2's 151,936 rows for 151,665 tokens).
Weights are left to the caller (``transformers``' ``from_config`` + ``save_pretrained``).

* Qwen2: ``<|endoftext|>`` is eos and pad, ``<|im_start|>``/``<|im_end|>`` are chat tokens, no bos;
  ``config.json`` says ``bos_token_id`` = ``eos_token_id`` = ``<|endoftext|>`` as Qwen2's does.
* Llama-3: ``<|begin_of_text|>`` is bos, ``<|end_of_text|>`` eos, no pad (``<|finetune_right_pad_id|>``
  exists but is named pad by nobody, as in Llama-3.1); the post-processor puts the bos before every
  encoded text unless ``add_special_tokens=False``; ``rope_scaling`` of type ``llama3``. Its
  ``tokenizer_config.json`` keeps Llama-3's ``clean_up_tokenization_spaces: true``, so
  ``transformers``' decode removes spaces before punctuation: compare round trips with ``tokenizers``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from dataengine.pack.sample_corpus import chinese_documents, english_documents

QWEN2_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
LLAMA3_SPECIALS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|reserved_special_token_2|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
)
# the families' pre-tokenizer patterns (Qwen2 splits digits one by one, Llama-3 in threes)
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
LLAMA3_PATTERN = QWEN2_PATTERN.replace(r"|\p{N}|", r"|\p{N}{1,3}|")
MULTIPLE = 128  # config.json's vocab_size: the tokenizer's rounded up past the next multiple of this


def bundled_documents(corpus: Path, max_chars: int = 150_000) -> list[dict]:
    """English and Chinese documents (id, text, source, lang) from the bundled corpus (tests/data, the
    ``corpus`` fixture), about ``max_chars`` of each, documents kept whole."""
    documents = []
    for make in (english_documents, chinese_documents):
        total = 0
        for doc in make(corpus):
            if total >= max_chars:
                break
            if doc["text"].strip():
                documents.append(doc)
                total += len(doc["text"])
    return documents


def train_byte_level_bpe(
    texts: Sequence[str],
    specials: Sequence[str],
    pattern: str,
    vocab_size: int = 1024,
    normalizer: normalizers.Normalizer | None = None,
) -> Tokenizer:
    """A byte-level BPE learned on ``texts`` with ``pattern`` as pre-tokenizer; ``specials`` are added
    after the learned vocabulary (their ids follow it, as in Qwen2 and Llama-3)."""
    tokenizer = Tokenizer(models.BPE())
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in specials])
    return tokenizer


def _added_tokens_decoder(tokenizer: Tokenizer) -> dict[str, dict[str, Any]]:
    """``added_tokens_decoder`` as Hugging Face writes it in tokenizer_config.json."""
    return {
        str(token_id): {
            "content": token.content,
            "lstrip": token.lstrip,
            "normalized": token.normalized,
            "rstrip": token.rstrip,
            "single_word": token.single_word,
            "special": token.special,
        }
        for token_id, token in sorted(tokenizer.get_added_tokens_decoder().items())
    }


def model_vocab_size(tokenizer: Tokenizer) -> int:
    """config.json's vocab_size: more embedding rows than tokens, as Qwen2 has."""
    return (tokenizer.get_vocab_size() // MULTIPLE + 1) * MULTIPLE


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_dir(path: Path, tokenizer: Tokenizer, tokenizer_config: dict, config: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path / "tokenizer.json"))
    _write_json(path / "tokenizer_config.json", tokenizer_config)
    _write_json(path / "config.json", config)
    return path


def _small_model(tokenizer: Tokenizer) -> dict[str, Any]:
    """The config.json keys both families share: a 2-layer model, hidden 64, tied embeddings."""
    return {
        "attention_dropout": 0.0,
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "tie_word_embeddings": True,
        "use_cache": True,
        "vocab_size": model_vocab_size(tokenizer),
    }


def build_qwen2_style_dir(path: str | Path, texts: Sequence[str], vocab_size: int = 1024) -> Path:
    """A Qwen2-style model directory at ``path`` (tokenizer.json, tokenizer_config.json, config.json;
    no weights), its tokenizer trained on ``texts``; returns the path."""
    tokenizer = train_byte_level_bpe(texts, QWEN2_SPECIALS, QWEN2_PATTERN, vocab_size, normalizers.NFC())
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    eos = tokenizer.token_to_id("<|endoftext|>")
    tokenizer_config = {
        "add_prefix_space": False,
        "added_tokens_decoder": _added_tokens_decoder(tokenizer),
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 32768,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "bos_token_id": eos,
        "eos_token_id": eos,
        "max_position_embeddings": 1024,
        "max_window_layers": 2,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "use_sliding_window": False,
        **_small_model(tokenizer),
    }
    return _write_dir(Path(path), tokenizer, tokenizer_config, config)


def build_llama3_style_dir(path: str | Path, texts: Sequence[str], vocab_size: int = 1024) -> Path:
    """A Llama-3-style model directory at ``path`` (tokenizer.json, tokenizer_config.json, config.json;
    no weights), its tokenizer trained on ``texts``; returns the path."""
    tokenizer = train_byte_level_bpe(texts, LLAMA3_SPECIALS, LLAMA3_PATTERN, vocab_size)
    bos, eos = tokenizer.token_to_id("<|begin_of_text|>"), tokenizer.token_to_id("<|end_of_text|>")
    tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                special_tokens=[("<|begin_of_text|>", bos)],
            ),
        ]
    )
    tokenizer_config = {
        "added_tokens_decoder": _added_tokens_decoder(tokenizer),
        "bos_token": "<|begin_of_text|>",
        "clean_up_tokenization_spaces": True,
        "eos_token": "<|end_of_text|>",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "head_dim": 16,
        "max_position_embeddings": 512,
        "mlp_bias": False,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-5,
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        "rope_theta": 500000.0,
        **_small_model(tokenizer),
    }
    return _write_dir(Path(path), tokenizer, tokenizer_config, config)
