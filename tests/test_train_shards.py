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
from dataengine.usage.ledger import UsageLedger
from train.config import TrainConfig, load_train_config
from train.data import SequenceSource, sequence_channels
from train.sampler import DataExhaustedError, Sampler

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
    """The shipped tiny config made small and quiet."""
    return [
        f"data.shards={shards}",
        f"run_dir={run_dir}",
        "train.max_steps=8",
        "train.log_interval=1",
        "checkpoint.interval=3",
        "eval.interval=0",
        "metrics.tensorboard=false",
        *extra,
    ]


def run_ledger_steps(run_dir: Path) -> list[tuple[int, int, int]]:
    """(step, shard, row) a run recorded in its own ledger, under the id in RUN/run.json."""
    ledger = UsageLedger(run_dir / "usage.sqlite")
    try:
        return ledger.run_steps(json.loads((run_dir / "run.json").read_text())["run_id"])
    finally:
        ledger.close()


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


def _stream(sampler: Sampler, steps: int) -> np.ndarray:
    return np.concatenate([sampler.draw(step) for step in range(steps)])


def test_one_epoch_reads_every_sequence_exactly_once(train_shards):
    reader = ShardReader(train_shards)
    channels = sequence_channels(reader)
    n, batch = len(channels), 16
    drawn = _stream(Sampler(channels, reader.channels, seed=7, batch_size=batch), 2 * n // batch + 1)
    first, second = drawn[:n], drawn[n : 2 * n]
    assert np.array_equal(np.sort(first), np.arange(n)) and np.array_equal(np.sort(second), np.arange(n))
    assert not np.array_equal(first, second)  # each epoch has its own permutation
    assert not np.array_equal(first, np.arange(n))  # and it is shuffled


def test_order_depends_on_seed_and_step_only(train_shards):
    reader = ShardReader(train_shards)
    channels = sequence_channels(reader)
    a = Sampler(channels, reader.channels, seed=7, batch_size=16)
    reference = [a.draw(step).copy() for step in range(10)]
    b = Sampler(channels, reader.channels, seed=7, batch_size=16)
    for step in range(4):
        b.draw(step)
    resumed = Sampler(channels, reader.channels, seed=7, batch_size=16)
    resumed.load_state_dict(b.state_dict(4), None)  # what a checkpoint at step 4 carries
    assert all(np.array_equal(resumed.draw(step), reference[step]) for step in range(4, 10))
    assert np.array_equal(a.draw(9), reference[9])  # a recent step is answered again
    with pytest.raises(ValueError, match="at step 10, asked for step 12"):
        a.draw(12)
    other_seed = Sampler(channels, reader.channels, seed=8, batch_size=16)
    assert not np.array_equal(other_seed.draw(0), reference[0])


def test_channel_weights_are_met_in_every_prefix_and_per_channel_epoch(train_shards):
    reader = ShardReader(train_shards)
    channels = sequence_channels(reader)
    weights = {"web": 0.8, "zh": 0.2, "code": 0.0}
    sampler = Sampler(channels, reader.channels, seed=0, batch_size=32, channel_weights=weights)
    drawn = _stream(sampler, 30)
    web, zh = reader.channels.index("web"), reader.channels.index("zh")
    assert not np.isin(channels[drawn], [reader.channels.index("code")]).any()  # code excluded
    for prefix in (32, 320, 960):
        counts = np.bincount(channels[drawn[:prefix]], minlength=3)
        assert abs(counts[web] - 0.8 * prefix) <= 1 and abs(counts[zh] - 0.2 * prefix) <= 1
    zh_stream = drawn[channels[drawn] == zh]
    n_zh = int(np.count_nonzero(channels == zh))
    assert len(zh_stream) > n_zh  # zh is oversampled: more than one zh epoch in 30 steps
    assert np.array_equal(np.sort(zh_stream[:n_zh]), np.flatnonzero(channels == zh))
    with pytest.raises(ValueError, match="unnamed channels \\['zh'\\]"):
        Sampler(channels, reader.channels, seed=0, batch_size=8, channel_weights={"web": 1.0, "code": 1.0})


def test_prior_use_orders_epochs_and_max_repeats_retires_data(train_shards):
    reader = ShardReader(train_shards)
    channels = sequence_channels(reader)
    n = len(channels)
    prior = np.zeros(n, dtype=np.int64)
    prior[: n // 2] = 1  # an earlier run used the first half once
    sampler = Sampler(channels, reader.channels, seed=0, batch_size=8, decay=0.01, prior=prior, max_repeats=2)
    epoch = sampler.epoch_order(0, 0)
    assert np.array_equal(np.sort(epoch), np.arange(n))  # nothing dropped within the epoch
    assert np.mean(epoch[: n // 2] >= n // 2) > 0.9  # the unused half comes first (weight 100:1)
    # epoch 1: the used half has reached max_repeats (1 prior + 1 in this run) and leaves the pool
    assert np.array_equal(np.sort(sampler.epoch_order(0, 1)), np.arange(n // 2, n))
    assert sampler.epoch_size(0, 2) == 0
    steps = (2 * n - n // 2) // 8
    uses = np.bincount(_stream(sampler, steps), minlength=n)
    assert (uses <= 2 - prior).all() and uses.sum() == 8 * steps  # 2 uses in all, prior ones included
    with pytest.raises(DataExhaustedError, match="usage.max_repeats=2"):
        for step in range(steps, steps + 2):
            sampler.draw(step)
    no_decay = Sampler(channels, reader.channels, seed=0, batch_size=8, decay=1.0, prior=prior)
    assert np.mean(no_decay.epoch_order(0, 0)[: n // 2] >= n // 2) < 0.7  # decay 1: prior use ignored


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
