"""Byte-level BPE tokenizer training (Hugging Face ``tokenizers``) from kept documents.

Choices and why:

* Byte level: every string round-trips exactly; no unknown tokens, no normalizer that would
  change the text.
* Digits are split one by one, so numbers are compared digit by digit (9.9 vs 9.11).
* The pre-tokenizer keeps CJK runs apart from Latin words (so merges learn Chinese words
  instead of "Nexon开发"), keeps runs of code indentation and newlines as their own pieces,
  and attaches one leading space or symbol to a word as GPT-style tokenizers do.
* Special tokens (pad, bos, eos) and reserved slots come first; the vocabulary is sized so the
  model's embedding (``embedding_size``, a multiple of 128) keeps ``embedding_headroom`` free
  rows for tokens added later (alignment tokens, domain words from ``extend``).
* Documents whose id falls in the held-out hash bucket are skipped, so compression can be
  reported on text the tokenizer never saw; the setting (``heldout_*`` keys) is recorded and
  ``pack`` and ``tokenizer report`` reuse it (``holdout``).
* Documents are read with the readers and id rule of ``dataengine run`` (``inputs``).

A sidecar ``<name>.meta.json`` next to the tokenizer file records the special ids, the
embedding size, the held-out setting and what the tokenizer was trained on.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from dataengine.io.units import Unit
from dataengine.pack.config import ReaderKey
from dataengine.pack.holdout import DEFAULT_FRACTION, Heldout, id_fraction
from dataengine.pack.inputs import document_channel, plan, unit_documents

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
RESERVED = "<|reserved_{}|>"
TURN_CHARS = 1_000_000  # characters a file contributes before the next file's turn

_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Bopomofo}"
PRETOKENIZE_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"  # English contractions
    rf"|[^\r\n\p{{L}}\p{{N}}]?[{_CJK}]+"  # a CJK run (BPE learns words inside it)
    rf"|[^\r\n\p{{L}}\p{{N}}]?[[\p{{L}}\p{{M}}]&&[^{_CJK}]]+"  # a non-CJK word, with one leading space/symbol
    r"|\p{N}"  # digits one by one
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*"  # punctuation / operators
    r"|\s*[\r\n]+"  # newlines (with the indentation before them)
    r"|\s+(?!\S)"  # indentation: a run of spaces, leaving the last one to the next word
    r"|\s+"
)


class TokenizerConfig(ReaderKey):
    """How to train the tokenizer; defaults suit mixed English/Chinese/code."""

    vocab_size: int = Field(
        32000, ge=512, description="tokenizer vocabulary, specials and reserved slots included"
    )
    min_frequency: int = Field(2, ge=1, description="a pair merges only when seen this often")
    reserved_tokens: int = Field(16, ge=0, description="named <|reserved_i|> special slots")
    embedding_headroom: int = Field(1000, ge=0, description="free embedding rows after the vocabulary")
    embedding_multiple: int = Field(128, ge=1, description="embedding size is a multiple of this")
    sample_chars: int = Field(
        50_000_000, ge=1, description="streaming budget: stop reading after this many chars"
    )
    max_doc_chars: int = Field(200_000, ge=1, description="longer documents are cut for training only")
    heldout_fraction: float = Field(
        DEFAULT_FRACTION,
        ge=0.0,
        lt=1.0,
        description="share of document ids never trained on; recorded, and reused by pack and report",
    )
    heldout_seed: int = Field(0, description="seed of the held-out id hash (recorded)")
    heldout_fraction_by_channel: dict[str, float] = Field(
        default_factory=dict, description="held-out share per channel (category, else lang); recorded"
    )
    channel_weights: dict[str, float] = Field(
        default_factory=dict,
        description="repeat a channel's documents in the sample (e.g. zh=3 when Chinese is scarce); default 1",
    )

    @model_validator(mode="after")
    def _room_for_merges(self) -> TokenizerConfig:
        fixed = 256 + 3 + self.reserved_tokens
        if self.vocab_size <= fixed:
            raise ValueError(f"vocab_size {self.vocab_size} leaves no room for merges (needs > {fixed})")
        negative = {k: v for k, v in self.channel_weights.items() if v < 0}
        if negative:
            raise ValueError(f"channel_weights must be >= 0, got {negative}")
        return self

    @property
    def heldout(self) -> Heldout:
        return Heldout(
            fraction=self.heldout_fraction,
            seed=self.heldout_seed,
            by_channel=self.heldout_fraction_by_channel,
        )

    @property
    def special_tokens(self) -> list[str]:
        return [PAD, BOS, EOS] + [RESERVED.format(i) for i in range(self.reserved_tokens)]

    @property
    def embedding_size(self) -> int:
        return embedding_size_for(self.vocab_size, self.embedding_headroom, self.embedding_multiple)


def embedding_size_for(vocab_size: int, headroom: int, multiple: int = 128) -> int:
    return math.ceil((vocab_size + headroom) / multiple) * multiple


def build_tokenizer() -> Tokenizer:
    """An untrained byte-level BPE with this project's pre-tokenizer and decoder."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _repeats(doc_id: str, weight: float) -> int:
    """Integer part of the weight, plus one more for a hash-chosen share of documents."""
    whole = int(weight)
    return whole + (id_fraction(doc_id, seed=1) < weight - whole)


def sample_texts(
    units: Sequence[Unit], config: TokenizerConfig, stats: dict[str, int], rejected: Counter
) -> Iterator[str]:
    """Texts for training, stopping at ``sample_chars``: work units (files, or pieces of large
    ones) take turns of about ``TURN_CHARS`` characters each (so a budget smaller than the corpus
    still sees every source, whatever its document sizes), held-out ids are skipped, and a
    channel's documents are repeated by its weight. Records the reader rejects are counted into
    ``rejected``."""
    streams = [unit_documents(unit, config.input, rejected) for unit in units]
    heldout = config.heldout
    budget = config.sample_chars
    while streams:
        for stream in list(streams):
            turn = 0
            while turn < TURN_CHARS:
                doc = next(stream, None)
                if doc is None:
                    streams.remove(stream)
                    break
                channel = document_channel(doc["category"], doc["lang"])
                if heldout.holds(doc["id"], channel):
                    stats["heldout_skipped"] += 1
                    continue
                weight = config.channel_weights.get(channel, 1.0)
                for _ in range(_repeats(doc["id"], weight)):
                    text = doc["text"][: min(config.max_doc_chars, budget)]
                    stats["documents"] += 1
                    stats["chars"] += len(text)
                    budget -= len(text)
                    turn += len(text)
                    yield text
                    if budget <= 0:
                        return


def train_tokenizer(
    inputs: Sequence[str | Path], output: str | Path, config: TokenizerConfig | None = None
) -> dict[str, Any]:
    """Train on ``inputs`` (files, folders, globs or URIs, read as by ``dataengine run``), write
    ``output`` (tokenizer.json) and its ``.meta.json``; returns the metadata."""
    config = config or TokenizerConfig()
    units = plan(inputs, config.input)  # a missing input fails here, before any work
    tokenizer = build_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        min_frequency=config.min_frequency,
        special_tokens=config.special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    stats = {"documents": 0, "chars": 0, "heldout_skipped": 0, "rejected": 0}
    rejected: Counter = Counter()
    tokenizer.train_from_iterator(sample_texts(units, config, stats, rejected), trainer=trainer)
    stats["rejected"] = sum(rejected.values())
    if stats["documents"] == 0:
        raise ValueError(f"no training documents in {list(map(str, inputs))}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tokenizer.save(str(tmp))
    tmp.replace(output)
    meta = {
        "special_tokens": {name: tokenizer.token_to_id(name) for name in (PAD, BOS, EOS)},
        "reserved_tokens": config.reserved_tokens,
        "trained_vocab_size": tokenizer.get_vocab_size(),
        "embedding_size": config.embedding_size,
        "added_tokens": [],
        "heldout": config.heldout.model_dump(),
        "config": config.model_dump(mode="json"),
        "sample": stats,
        "rejected_by_reason": dict(sorted(rejected.items())),
    }
    write_meta(output, meta)
    return meta


def meta_path(tokenizer_path: str | Path) -> Path:
    path = Path(tokenizer_path)
    return path.with_name(path.name.removesuffix(".json") + ".meta.json")


def write_meta(tokenizer_path: str | Path, meta: dict[str, Any]) -> None:
    path = meta_path(tokenizer_path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_meta(tokenizer_path: str | Path) -> dict[str, Any]:
    """The sidecar metadata; for a tokenizer without one, what can be derived from the file."""
    path = meta_path(tokenizer_path)
    if path.is_file():
        return json.loads(path.read_text())
    tokenizer = load_tokenizer(tokenizer_path)
    defaults = TokenizerConfig.model_fields
    return {
        "special_tokens": {name: tokenizer.token_to_id(name) for name in (PAD, BOS, EOS)},
        "embedding_size": embedding_size_for(
            tokenizer.get_vocab_size(),
            defaults["embedding_headroom"].default,
            defaults["embedding_multiple"].default,
        ),
        "added_tokens": [],
    }


def load_tokenizer(path: str | Path) -> Tokenizer:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no tokenizer file")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises a bare Exception for malformed JSON
        raise ValueError(f"{path}: not a Hugging Face tokenizer.json ({err})") from err


def special_ids(tokenizer: Tokenizer) -> dict[str, int]:
    """pad/bos/eos ids; a clear error for a tokenizer not trained here."""
    ids = {}
    for key, name in (("pad", PAD), ("bos", BOS), ("eos", EOS)):
        token_id = tokenizer.token_to_id(name)
        if token_id is None:
            raise ValueError(
                f"tokenizer lacks the special token {name!r} (train it with `dataengine tokenizer train`)"
            )
        ids[key] = token_id
    return ids


def load_hf_tokenizer(path: str | Path):
    """The tokenizer as ``transformers.PreTrainedTokenizerFast`` with its special tokens set."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=str(path),
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        clean_up_tokenization_spaces=False,
    )


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
