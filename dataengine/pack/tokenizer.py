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
embedding size, the held-out setting and what the tokenizer was trained on. A tokenizer trained
elsewhere (a tokenizer.json, or a Hugging Face model directory holding one) has no sidecar:
``read_meta`` derives its embedding size, and ``specials`` decides its special tokens.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import posixpath
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from dataengine.io.paths import is_dir, is_file, is_uri, join, read_bytes, write_bytes_atomic
from dataengine.io.units import Unit
from dataengine.pack.compression import text_compression
from dataengine.pack.config import ReaderKey, Strict
from dataengine.pack.holdout import DEFAULT_FRACTION, ChannelField, Heldout, id_fraction
from dataengine.pack.inputs import plan, unit_documents
from dataengine.pack.specials import BOS, EOS, PAD

RESERVED = "<|reserved_{}|>"
TURN_CHARS = 1_000_000  # characters a file contributes before the next file's turn
COUNT_FACTOR = 4  # the counting pass reads at most this many times sample_chars
REPORT_CHARS = 1_000_000  # held-out characters kept per channel for the compression report
ALPHA = 0.3  # temperature balance exponent (see LanguageSampling; measured in benchmarks/RESULTS.md)
MAX_REPEAT = 8.0

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


class LanguageSampling(Strict):
    """How many characters each channel (category, else language) gives the training sample."""

    balance: Literal["natural", "equal", "temperature"] = Field(
        "temperature",
        description="natural = as the inputs hold them; equal = the same share each; temperature = "
        "shares proportional to chars ** alpha (small channels upsampled)",
    )
    alpha: float = Field(
        ALPHA, ge=0.0, le=1.0, description="temperature balance: share ~ chars ** alpha (1 natural, 0 equal)"
    )
    max_repeat: float = Field(
        MAX_REPEAT, ge=1.0, description="a channel's documents are repeated at most this often by the balance"
    )

    @property
    def exponent(self) -> float:
        return {"natural": 1.0, "equal": 0.0}.get(self.balance, self.alpha)


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
        default_factory=dict, description="held-out share per channel; recorded"
    )
    channel: list[ChannelField] = Field(
        ["lang"],
        min_length=1,
        description="row fields that name a document's channel: [lang], [category] or [lang, category] "
        "(en/news); recorded, and reused by pack and report",
    )
    language_sampling: LanguageSampling = Field(
        default_factory=LanguageSampling,
        description="each channel's share of the training sample (balance: natural | equal | temperature)",
    )
    channel_weights: dict[str, float] = Field(
        default_factory=dict,
        description="multiply a channel's rate after the balance (0 leaves it out); default 1",
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
            channel=tuple(self.channel),
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


def _stream(
    units: Sequence[Unit], config: TokenizerConfig, rejected: Counter
) -> Iterator[tuple[dict, str, str]]:
    """(document, channel, training text) of all input files in turn order: files take turns of about
    ``TURN_CHARS`` characters read, so a prefix of the stream sees every source whatever its document
    sizes. A file split into several work units is one stream (its units in order): how finely files are
    cut (`input.unit_bytes`) must not give a file more turns. The order depends only on the inputs, so
    two passes over it read the same documents in the same order."""
    by_file = [list(group) for _path, group in itertools.groupby(units, key=lambda unit: unit.path)]
    streams = [
        itertools.chain.from_iterable(unit_documents(unit, config.input, rejected) for unit in file_units)
        for file_units in by_file
    ]
    while streams:
        for stream in list(streams):
            turn = 0
            while turn < TURN_CHARS:
                doc = next(stream, None)
                if doc is None:
                    streams.remove(stream)
                    break
                text = doc["text"][: config.max_doc_chars]
                turn += len(text)
                yield doc, config.heldout.channel_of(doc), text


def channel_rates(available: dict[str, int], config: TokenizerConfig) -> dict[str, float]:
    """How often each channel's documents go into the sample (1 = once; 2.5 = twice, and a third time
    for half of them; 0.5 = half of them), from the characters each channel has for training.

    The balance sets each channel's share of the sample, proportional to ``chars ** alpha`` (natural:
    alpha 1; equal: 0): the largest channel is read once and a smaller one repeated
    ``(largest / chars) ** (1 - alpha)`` times, at most ``max_repeat`` times (repeating a small channel
    further teaches its own documents by heart, not its language). ``channel_weights`` multiply the
    result (a weight-0 channel is left out); when the sample would exceed ``sample_chars``, every rate is
    scaled down alike, so the shares hold and documents are drawn from the whole input."""
    sampling = config.language_sampling
    weights = {c: config.channel_weights.get(c, 1.0) for c in available}
    live = {c: n for c, n in available.items() if n > 0 and weights[c] > 0}
    if not live:
        return {c: 0.0 for c in available}
    largest = max(live.values())
    exponent = 1.0 - sampling.exponent
    rates = {
        c: min(sampling.max_repeat, (largest / live[c]) ** exponent) * weights[c] if c in live else 0.0
        for c in available
    }
    total = sum(rates[c] * available[c] for c in available)
    scale = min(1.0, config.sample_chars / total)
    return {c: rate * scale for c, rate in sorted(rates.items())}


def sample_texts(
    units: Sequence[Unit],
    config: TokenizerConfig,
    stats: dict[str, Any],
    rejected: Counter,
    heldout_docs: dict[str, list[str]] | None = None,
) -> Iterator[str]:
    """Texts for training, in two passes over the inputs with memory bounded by the channel count.

    The first pass counts the training characters of each channel (held-out ids excluded), reading at
    most ``COUNT_FACTOR * sample_chars`` characters, and keeps up to ``REPORT_CHARS`` of held-out text
    per channel in ``heldout_docs`` (for the compression report); ``channel_rates`` turns the counts
    into rates. The second pass reads the same documents in the same order and repeats or draws each
    one by its channel's rate (a hash of its id decides the fractional part), stopping at
    ``sample_chars``. Records the reader rejects are counted into ``rejected`` (once)."""
    heldout = config.heldout
    available: Counter = Counter()
    read_docs = read_chars = 0
    for doc, channel, text in _stream(units, config, rejected):
        read_docs += 1
        read_chars += len(text)
        if heldout.holds(doc["id"], channel):
            if heldout_docs is not None:
                kept = heldout_docs.setdefault(channel, [])
                if sum(map(len, kept)) < REPORT_CHARS:
                    kept.append(doc["text"])
        else:
            available[channel] += len(text)
        if read_chars >= COUNT_FACTOR * config.sample_chars:
            break
    rates = channel_rates(dict(available), config)
    sampled: Counter = Counter()
    stats["channels"] = {
        c: {"available_chars": available[c], "rate": round(rates[c], 4)} for c in sorted(available)
    }
    budget = config.sample_chars
    second = _stream(units, config, Counter())
    for _position in range(read_docs):
        doc, channel, text = next(second)
        if heldout.holds(doc["id"], channel):
            stats["heldout_skipped"] += 1
            continue
        for _ in range(_repeats(doc["id"], rates[channel])):
            piece = text[:budget]
            stats["documents"] += 1
            stats["chars"] += len(piece)
            sampled[channel] += len(piece)
            budget -= len(piece)
            yield piece
            if budget <= 0:
                break
        if budget <= 0:
            break
    total = max(1, sum(sampled.values()))
    for channel, row in stats["channels"].items():
        row["sampled_chars"] = sampled[channel]
        row["share"] = round(sampled[channel] / total, 4)


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
    stats: dict[str, Any] = {"documents": 0, "chars": 0, "heldout_skipped": 0, "rejected": 0}
    rejected: Counter = Counter()
    heldout_docs: dict[str, list[str]] = {}
    texts = sample_texts(units, config, stats, rejected, heldout_docs)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    stats["rejected"] = sum(rejected.values())
    channels = stats.pop("channels", {})
    if stats["documents"] == 0:
        raise ValueError(f"no training documents in {list(map(str, inputs))}")
    write_bytes_atomic(output, tokenizer.to_str(pretty=True).encode())
    meta = {
        "special_tokens": {name: tokenizer.token_to_id(name) for name in (PAD, BOS, EOS)},
        "reserved_tokens": config.reserved_tokens,
        "trained_vocab_size": tokenizer.get_vocab_size(),
        "embedding_size": config.embedding_size,
        "added_tokens": [],
        "heldout": config.heldout.model_dump(),
        "config": config.model_dump(mode="json"),
        "sample": stats,
        "language_sampling": {**config.language_sampling.model_dump(), "channels": channels},
        "heldout_compression": text_compression(tokenizer, heldout_docs),
        "rejected_by_reason": dict(sorted(rejected.items())),
    }
    write_meta(output, meta)
    return meta


# Files of a Hugging Face model directory that the tokenizer commands read besides tokenizer.json.
MODEL_FILES = ("tokenizer_config.json", "special_tokens_map.json", "config.json")


def fetch_tokenizer(path: str | Path) -> Path:
    """A local copy of a tokenizer on object storage (``s3://.../tokenizer.json`` or a model folder
    there), with its .meta.json and model files; a local path is returned as it is.

    The tokenizer commands then read one local layout: ``tokenizers`` and ``transformers`` open only
    local files, and a tokenizer is small. The copy goes to a folder named by the URI and is refreshed
    on every call, so a tokenizer retrained in place is never read stale.
    """
    if not is_uri(path):
        return Path(path)
    uri = str(path)
    local = (
        Path(tempfile.gettempdir()) / "dataengine-tokenizers" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    )
    local.mkdir(parents=True, exist_ok=True)
    folder, name = (uri, "tokenizer.json") if is_dir(uri) else posixpath.split(uri)
    for each in (name, name.removesuffix(".json") + ".meta.json", *MODEL_FILES):
        if is_file(join(folder, each)):
            write_bytes_atomic(local / each, read_bytes(join(folder, each)))
        else:
            (local / each).unlink(missing_ok=True)
    if not (local / name).is_file():
        raise FileNotFoundError(f"{join(folder, name)}: no tokenizer file")
    return local if folder == uri else local / name


def tokenizer_file(path: str | Path) -> Path:
    """The tokenizer.json that ``path`` names: the file itself, or the one inside a Hugging Face model
    directory (which ``pack`` and the ``tokenizer`` commands accept as well); fetched when on object
    storage (``fetch_tokenizer``)."""
    path = fetch_tokenizer(path)
    return path / "tokenizer.json" if path.is_dir() else path


def meta_path(tokenizer_path: str | Path) -> Path | str:
    """The .meta.json beside a tokenizer: a local path, or a URI beside a tokenizer on object storage."""
    if is_uri(tokenizer_path):
        uri = str(tokenizer_path)
        file = join(uri, "tokenizer.json") if is_dir(uri) else uri
        return file.removesuffix(".json") + ".meta.json"
    path = tokenizer_file(tokenizer_path)
    return path.with_name(path.name.removesuffix(".json") + ".meta.json")


def write_meta(tokenizer_path: str | Path, meta: dict[str, Any]) -> None:
    text = json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_bytes_atomic(meta_path(tokenizer_path), text.encode())


def read_meta(tokenizer_path: str | Path) -> dict[str, Any]:
    """The sidecar metadata; for a tokenizer without one, what can be derived from its files."""
    path = meta_path(fetch_tokenizer(tokenizer_path))
    if path.is_file():
        return json.loads(path.read_text())
    tokenizer = load_tokenizer(tokenizer_path)
    return {
        "special_tokens": {name: tokenizer.token_to_id(name) for name in (PAD, BOS, EOS)},
        "embedding_size": derived_embedding_size(tokenizer_path, tokenizer.get_vocab_size()),
        "added_tokens": [],
    }


def derived_embedding_size(tokenizer_path: str | Path, vocab_size: int) -> int:
    """Embedding rows of a tokenizer trained elsewhere: a model directory's ``config.json``
    ``vocab_size`` when it has one (a model's embedding may be larger than its tokenizer: Qwen2 has
    151,936 rows for 151,665 tokens, and the free rows are where ``extend`` puts new tokens); else the
    vocabulary plus the default headroom, rounded as ``tokenizer train`` sizes it."""
    model_vocab = model_vocab_size(tokenizer_path)
    if model_vocab is not None:
        return max(model_vocab, vocab_size)
    defaults = TokenizerConfig.model_fields
    return embedding_size_for(
        vocab_size, defaults["embedding_headroom"].default, defaults["embedding_multiple"].default
    )


def model_vocab_size(tokenizer_path: str | Path) -> int | None:
    """``vocab_size`` of the ``config.json`` of a Hugging Face model directory given as the tokenizer;
    None for a tokenizer file or a directory without one."""
    tokenizer_path = fetch_tokenizer(tokenizer_path)
    config = tokenizer_path / "config.json"
    if not tokenizer_path.is_dir() or not config.is_file():
        return None
    try:
        vocab_size = json.loads(config.read_text(encoding="utf-8")).get("vocab_size")
    except json.JSONDecodeError as err:
        raise ValueError(f"{config}: not JSON ({err})") from err
    if vocab_size is not None and not isinstance(vocab_size, int):
        raise ValueError(f"{config}: vocab_size {vocab_size!r} is not an integer")
    return vocab_size


def load_tokenizer(path: str | Path) -> Tokenizer:
    """The tokenizer of a tokenizer.json or of a Hugging Face model directory (its tokenizer.json),
    local or on object storage."""
    path = fetch_tokenizer(path)
    file = tokenizer_file(path)
    if not file.is_file():
        hint = " (a model directory needs a tokenizer.json; tokenizer.model alone is not read)"
        raise FileNotFoundError(f"{file}: no tokenizer file" + (hint if Path(path).is_dir() else ""))
    try:
        return Tokenizer.from_file(str(file))
    except Exception as err:  # tokenizers raises a bare Exception for malformed JSON
        raise ValueError(f"{file}: not a Hugging Face tokenizer.json ({err})") from err


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
    return hashlib.sha256(read_bytes(path)).hexdigest()
