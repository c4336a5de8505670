"""The eval module's inputs on a local S3 server (moto): held-out JSONL and gzipped text, token shards
(written there by ShardWriter, decoded with their tokenizer.json), probe YAML and run records, each
giving what the same file gives locally; the input checks accept them and name a missing one. Real
Chinese (CMRC 2018 zh-Wikipedia) and English (Frankenstein, sample/pg84.txt) text."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from s3_server import put_bytes, upload
from stage_corpora import cmrc_paragraphs

from dataengine.pack.shards import ShardWriter
from dataengine.pack.specials import special_ids
from dataengine.pack.tokenizer import TokenizerConfig, load_tokenizer, train_tokenizer
from eval.checks import input_problems
from eval.config import DataConfig, EvalConfig
from eval.heldout import iter_docs
from eval.probes import load_probes
from eval.scaling import read_records

SAMPLE = Path(__file__).resolve().parents[1] / "sample"


def test_heldout_files_probes_and_records_on_s3(corpus, s3_uri, tmp_path):
    zh = corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl"
    book = tmp_path / "pg84.txt.gz"
    book.write_bytes(gzip.compress((SAMPLE / "pg84.txt").read_bytes()[:200_000]))
    remote_zh, remote_book = upload(zh, f"{s3_uri}/h/{zh.name}"), upload(book, f"{s3_uri}/h/pg84.txt.gz")
    cfg = DataConfig()
    for local, remote, many in ((zh, remote_zh, True), (book, remote_book, False)):  # text: one document
        here, there = list(iter_docs(local, cfg)), list(iter_docs(remote, cfg))
        assert (len(there) > 10 if many else len(there) == 1) and [(d.domain, d.text) for d in there] == [
            (d.domain, d.text) for d in here
        ]
    assert {d.domain for d in iter_docs(remote_book, cfg)} == {"pg84"}

    probes = put_bytes(
        f"{s3_uri}/probes.yaml",
        "probes:\n  - name: capital_zh\n    kind: continuation\n    prompt: 中国的首都是\n"
        "    continuation: 北京\n".encode(),
    )
    records = put_bytes(f"{s3_uri}/runs.jsonl", b'{"params": 1e6, "tokens": 2e7, "loss": 3.5}\n')
    assert [p.name for p in load_probes([probes])] == ["capital_zh"]
    assert read_records(records, ("params", "tokens", "loss"))["loss"].tolist() == [3.5]

    good = EvalConfig(data={"heldout": [remote_zh, remote_book]}, probes={"files": [probes]})
    assert input_problems(good, ["perplexity", "probes"]) == []
    missing = f"{s3_uri}/h/none.jsonl"
    problems = input_problems(EvalConfig(data={"heldout": [missing]}), ["perplexity"])
    assert problems == [f"data.heldout[0]: {missing} does not exist"]


def test_heldout_shards_on_s3_decode_to_the_documents(corpus, s3_uri, tmp_path):
    """ShardWriter writes the shards straight to S3; eval decodes them there with their tokenizer.json."""
    texts = cmrc_paragraphs(corpus)[:6]
    tok_path = tmp_path / "tokenizer.json"
    train_tokenizer(
        [corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl"],
        tok_path,
        TokenizerConfig(vocab_size=600, sample_chars=60_000),
    )
    tokenizer = load_tokenizer(tok_path)
    eos, seq_len = special_ids(tokenizer)["eos"], 64
    root = f"{s3_uri}/shards"
    upload(tok_path, f"{root}/tokenizer.json")
    writer = ShardWriter(
        root, "heldout", seq_len, "uint16", vocab_size=tokenizer.get_vocab_size(), pad_id=eos, eos_id=eos,
        tokenizer_sha256="test", rows_per_shard=8,
    )  # fmt: skip
    for i, text in enumerate(texts):  # each document over several rows, as the packer writes it
        ids = tokenizer.encode(text, add_special_tokens=False).ids + [eos]
        for start in range(0, len(ids), seq_len + 1):
            piece = ids[start : start + seq_len + 1]
            row = np.full(seq_len + 1, eos)
            row[: len(piece)] = piece
            span = {
                "start": 0,
                "end": len(piece),
                "doc_id": f"d{i}",
                "channel": "zh",
                "lang": "zh",
                "source": "t",
            }
            writer.write_row(row, [span])
    counts = writer.close()
    assert len(counts["shard_sequences"]) > 1  # several shards, all on S3

    docs = list(iter_docs(root, DataConfig()))
    assert [d.text for d in docs] == texts and {d.domain for d in docs} == {"zh"}
    assert input_problems(EvalConfig(data={"heldout": [root]}), ["perplexity"]) == []
    assert (
        "no 'train' split"
        in input_problems(EvalConfig(data={"heldout": [root], "split": "train"}), ["perplexity"])[0]
    )
