"""Token shards from real English web text, Chinese Wikipedia and source code, for the trainer tests.

A small byte-level BPE is trained here on the same text (offline, a second or two); documents are
packed greedily with EOS into rows of SEQ_LEN + 1 through dataengine.pack.shards.ShardWriter.
The tests in this file check the sampler and batching on those shards.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from shard_builders import write_greedy
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from dataengine.pack.shards import ShardReader, ShardWriter
from train.config import TrainConfig, load_train_config
from train.data import DataExhaustedError, Sampler, SequenceSource, sequence_channels

SEQ_LEN = 64
VOCAB = 512
MAX_CHARS = 800


def real_documents(corpus: Path, per_channel: int = 40) -> list[dict]:
    docs = []
    with gzip.open(corpus / "web/text/c4-sample.01.jsonl.gz", "rt") as f:
        for i, line in enumerate(itertools.islice(f, per_channel)):
            docs.append({"id": f"c4-{i}", "text": json.loads(line)["text"], "channel": "web", "lang": "en"})
    with open(corpus / "zh/cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(itertools.islice(f, per_channel)):
            docs.append(
                {"id": f"zhwiki-{i}", "text": json.loads(line)["text"], "channel": "zh", "lang": "zh"}
            )
    with gzip.open(corpus / "code/code_files.jsonl.gz", "rt") as f:
        rows = (json.loads(line) for line in f)
        code = (r for r in rows if r["language"] == "Python" and 500 < r["size"] < 4000)
        for r in itertools.islice(code, per_channel):
            docs.append(
                {"id": f"{r['repo']}/{r['path']}", "text": r["content"], "channel": "code", "lang": "code"}
            )
    return docs


def train_tokenizer(docs: list[dict], path: Path) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((d["text"] for d in docs), trainer)
    tok.save(str(path))
    return tok


def pack(writer: ShardWriter, tok: Tokenizer, docs: list[dict], eos: int, pad: int) -> None:
    meta = {"source": "tests/data"}
    tokenized = (
        (
            tok.encode(d["text"]).ids + [eos],
            {"doc_id": d["id"], "channel": d["channel"], "lang": d["lang"], **meta},
        )
        for d in docs
    )
    write_greedy(writer, tokenized, pad)


def build_shards(corpus: Path, root: Path, per_channel: int = 60, rows_per_shard: int = 64) -> Path:
    """Train + heldout shards (the heldout split takes every 10th document). Channels alternate and
    documents are cut at MAX_CHARS so that many rows hold tokens of two channels."""
    root.mkdir(parents=True, exist_ok=True)
    grouped = real_documents(corpus, per_channel)
    by_channel = [[d for d in grouped if d["channel"] == c] for c in ("web", "zh", "code")]
    docs = [{**d, "text": d["text"][:MAX_CHARS]} for trio in zip(*by_channel, strict=False) for d in trio]
    tok = train_tokenizer(docs, root / "tokenizer.json")
    pad, eos = tok.token_to_id("<pad>"), tok.token_to_id("<eos>")
    sha = hashlib.sha256((root / "tokenizer.json").read_bytes()).hexdigest()
    splits = {"train": [d for i, d in enumerate(docs) if i % 10], "heldout": docs[::10]}
    for split, split_docs in splits.items():
        writer = ShardWriter(
            root,
            split,
            SEQ_LEN,
            "uint16",
            vocab_size=tok.get_vocab_size(),
            pad_id=pad,
            eos_id=eos,
            tokenizer_sha256=sha,
            rows_per_shard=rows_per_shard,
        )
        pack(writer, tok, split_docs, eos, pad)
        writer.close()
    return root


TINY_YAML = Path(__file__).resolve().parents[1] / "configs/train/tiny.yaml"


def tiny_overrides(shards: Path, run_dir: Path, *extra: str) -> list[str]:
    """The shipped tiny config made small and quiet; a ledger per run keeps runs independent."""
    return [
        f"data.shards={shards}",
        f"run_dir={run_dir}",
        f"usage.ledger={run_dir}/usage.sqlite",
        "train.max_steps=8",
        "train.log_interval=1",
        "checkpoint.interval=3",
        "eval.interval=0",
        "metrics.tensorboard=false",
        "spike.enabled=false",
        *extra,
    ]


def tiny_config(shards: Path, run_dir: Path, *extra: str) -> TrainConfig:
    return load_train_config(TINY_YAML, tiny_overrides(shards, run_dir, *extra))


@pytest.fixture(autouse=True)
def torch_one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine spinning OpenMP
    threads make them ten times slower; restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def train_shards(corpus, tmp_path_factory) -> Path:
    return build_shards(corpus, tmp_path_factory.mktemp("train_shards"))


def test_shards_have_three_channels_of_real_text(train_shards):
    reader = ShardReader(train_shards)
    assert reader.channels == ["code", "web", "zh"]
    assert len(reader) > 200 and reader.num_shards >= 3
    channels = sequence_channels(reader)
    assert set(np.unique(channels)) == {0, 1, 2}


def test_sample_order_is_a_pure_function_of_seed_and_step(train_shards):
    reader = ShardReader(train_shards)
    channels = sequence_channels(reader)
    a = Sampler(channels, reader.channels, seed=7, decay=0.5)
    b = Sampler(channels, reader.channels, seed=7, decay=0.5)
    # a draws steps 0..4 in order; b jumps to step 3 with the counts a had there: same batch.
    for step in range(3):
        a.commit(a.draw(step, 16))
    b.counts = a.counts.copy()
    assert np.array_equal(a.draw(3, 16), b.draw(3, 16))
    assert len(set(a.draw(3, 16).tolist())) == 16  # no repeats within a global batch
    assert not np.array_equal(a.draw(3, 16), a.draw(4, 16))
    other_seed = Sampler(channels, reader.channels, seed=8, decay=0.5)
    other_seed.counts = a.counts.copy()
    assert not np.array_equal(a.draw(3, 16), other_seed.draw(3, 16))


def test_channel_weights_shape_the_mix(train_shards):
    reader = ShardReader(train_shards)
    channels = sequence_channels(reader)
    sampler = Sampler(channels, reader.channels, seed=0, channel_weights={"web": 0.8, "zh": 0.2, "code": 0.0})
    drawn = np.concatenate([sampler.draw(step, 32) for step in range(30)])
    share = np.bincount(channels[drawn], minlength=3) / len(drawn)
    assert share[0] == 0.0  # code excluded
    assert 0.7 < share[1] < 0.9 and 0.1 < share[2] < 0.3
    with pytest.raises(ValueError, match="unnamed channels \\['zh'\\]"):
        Sampler(channels, reader.channels, seed=0, channel_weights={"web": 1.0, "code": 1.0})


def test_usage_decay_and_max_repeats(train_shards):
    reader = ShardReader(train_shards)
    channels = sequence_channels(reader)
    n = len(channels)
    sampler = Sampler(channels, reader.channels, seed=0, decay=0.01, max_repeats=2)
    sampler.counts[: n // 2] = 1  # first half used once already: weight x 0.01
    drawn = np.concatenate([sampler.draw(step, 8) for step in range(20)])
    assert np.mean(drawn >= n // 2) > 0.9
    sampler.counts[:] = 2
    sampler.counts[:5] = 0
    with pytest.raises(DataExhaustedError, match="only 5 sequences are still drawable"):
        sampler.draw(0, 8)


def test_batch_channels_are_exact_per_token(train_shards):
    reader = ShardReader(train_shards)
    source = SequenceSource(reader)
    # find a row that holds two channels (a document boundary across channels)
    for index in range(len(source)):
        spans = reader.spans(*source.sequence_id(index))
        if len({s["channel"] for s in spans}) > 1:
            break
    batch = source.batch(np.array([index]))
    tokens = reader.sequence(*source.sequence_id(index))
    assert batch.targets[0].tolist() == tokens[1:].tolist()
    for k, span in enumerate(spans):
        chan = reader.channels.index(span["channel"])
        # target position t predicts token t+1: its channel is that token's span channel
        lo, hi = max(span["start"] - 1, 0), span["end"] - 1
        assert (batch.target_channels[0, lo:hi] == chan).all()
        assert (batch.doc_ids[0, span["start"] : min(span["end"], SEQ_LEN)] == k).all()
