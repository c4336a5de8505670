"""Shard format round trip on real English and Chinese text, with UTF-8 bytes as token ids.

Byte tokens keep this test independent of tokenizer training: the format is what is tested.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from shard_builders import write_greedy

from dataengine.pack.shards import ShardReader, ShardWriter

PAD, EOS, OFFSET = 0, 1, 2
VOCAB = 256 + OFFSET
SEQ_LEN = 63


def _docs(corpus: Path) -> list[dict]:
    docs = []
    with gzip.open(corpus / "web/text/c4-sample.01.jsonl.gz", "rt") as f:
        for i, line in zip(range(6), f, strict=False):
            docs.append({"id": f"en-{i}", "text": json.loads(line)["text"], "lang": "en", "channel": "web"})
    with open(corpus / "zh/cmrc2018_zhwiki_contexts.jsonl") as f:
        for i, line in zip(range(6), f, strict=False):
            docs.append({"id": f"zh-{i}", "text": json.loads(line)["text"], "lang": "zh", "channel": "wiki"})
    return docs


def _write(root: Path, split: str, docs: list[dict], rows_per_shard: int) -> dict:
    """Greedy byte packing: each document + EOS, cut into rows of SEQ_LEN + 1."""
    writer = ShardWriter(
        root,
        split,
        SEQ_LEN,
        "uint16",
        vocab_size=VOCAB,
        pad_id=PAD,
        eos_id=EOS,
        tokenizer_sha256="bytes",
        rows_per_shard=rows_per_shard,
    )
    write_greedy(
        writer,
        (
            (
                [b + OFFSET for b in doc["text"].encode()] + [EOS],
                {"doc_id": doc["id"], "channel": doc["channel"], "lang": doc["lang"], "source": "test"},
            )
            for doc in docs
        ),
        PAD,
    )
    return writer.close()


def _decode_all(reader: ShardReader) -> dict[str, str]:
    pieces: dict[str, list[int]] = {}
    for shard, row in reader.sequence_ids():
        tokens = reader.sequence(shard, row)
        for span in reader.spans(shard, row):
            pieces.setdefault(span["doc_id"], []).extend(tokens[span["start"] : span["end"]].tolist())
    out = {}
    for doc_id, ids in pieces.items():
        assert ids[-1] == EOS, f"{doc_id} does not end with its EOS"
        out[doc_id] = bytes(i - OFFSET for i in ids[:-1]).decode()
    return out


def test_round_trip_spans_channels_and_manifest(tmp_path, corpus):
    docs = _docs(corpus)
    train, heldout = docs[:-3], docs[-3:]
    train_counts = _write(tmp_path, "train", train, rows_per_shard=16)
    _write(tmp_path, "heldout", heldout, rows_per_shard=16)

    reader = ShardReader(tmp_path, "train")
    assert reader.num_shards > 1, "test should span several shards"
    assert reader.channels == ["web", "wiki"]
    assert reader.vocab_size == VOCAB and reader.seq_len == SEQ_LEN
    assert len(reader) == train_counts["sequences"] == len(reader.sequence_ids())
    assert _decode_all(reader) == {d["id"]: d["text"] for d in train}
    assert _decode_all(ShardReader(tmp_path, "heldout")) == {d["id"]: d["text"] for d in heldout}

    expected_tokens = sum(len(d["text"].encode()) + 1 for d in train)
    assert reader.counts["tokens"] == expected_tokens
    assert reader.counts["documents"] == len(train)
    assert reader.manifest["splits"]["heldout"]["documents"] == len(heldout)

    last = reader.sequence_ids()[-1]
    channel_ids = reader.channel_ids(*last)
    tokens = reader.sequence(*last)
    assert channel_ids.dtype == np.int16 and channel_ids.shape == (SEQ_LEN + 1,)
    assert (channel_ids == -1).any(), "the last row should end in padding"
    assert (tokens[channel_ids == -1] == PAD).all()
    for span in reader.spans(*last):
        expected = reader.channels.index(span["channel"])
        assert (channel_ids[span["start"] : span["end"]] == expected).all()

    assert not list(tmp_path.rglob("*.tmp")), "temporary files left behind"
    assert isinstance(reader.sequence(0, 0), np.memmap)


def test_rewrite_gives_same_bytes(tmp_path, corpus):
    docs = _docs(corpus)

    def digest(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    _write(tmp_path / "a", "train", docs, rows_per_shard=8)
    _write(tmp_path / "b", "train", docs, rows_per_shard=8)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")

    # a shorter rerun into the same root leaves no stale shard from the longer run
    _write(tmp_path / "a", "train", docs[:2], rows_per_shard=8)
    reader = ShardReader(tmp_path / "a")
    assert len(list((tmp_path / "a" / "train").glob("*.npy"))) == reader.num_shards


def test_bad_rows_and_reader_errors(tmp_path):
    writer = ShardWriter(
        tmp_path, "train", 7, "uint16", vocab_size=VOCAB, pad_id=PAD, eos_id=EOS, tokenizer_sha256="x"
    )
    meta = {"doc_id": "d", "channel": "c", "lang": "en", "source": "s"}
    with pytest.raises(ValueError, match="row shape"):
        writer.write_row(np.zeros(7, dtype=np.int64), [])
    with pytest.raises(ValueError, match="out of range"):
        writer.write_row(np.full(8, VOCAB), [])
    with pytest.raises(ValueError, match="overlaps"):
        writer.write_row(np.zeros(8), [{"start": 0, "end": 5, **meta}, {"start": 4, "end": 8, **meta}])
    with pytest.raises(FileNotFoundError, match="manifest"):
        ShardReader(tmp_path)
    writer.write_row(np.full(8, EOS), [{"start": 0, "end": 8, **meta}])
    writer.close()
    reader = ShardReader(tmp_path)
    with pytest.raises(KeyError, match="heldout"):
        ShardReader(tmp_path, "heldout")
    with pytest.raises(IndexError):
        reader.sequence(0, 1)
    with pytest.raises(ValueError, match="disagree"):
        ShardWriter(
            tmp_path, "heldout", 9, "uint16", vocab_size=VOCAB, pad_id=PAD, eos_id=EOS, tokenizer_sha256="x"
        ).close()
