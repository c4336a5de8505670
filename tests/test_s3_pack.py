"""`dataengine tokenizer train|report|extend` and `dataengine pack` on object storage: inputs, tokenizer and
shards on a local S3 server (moto), read and written through ``dataengine.io.paths``. Each result must
equal the same command's on local files, byte for byte: the records carry their ids, so nothing
depends on where a file lives. Real English (C4) and Chinese (CMRC 2018 zh-Wikipedia) text from
tests/data, the Chinese gzipped (read through a ranged S3 stream).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from s3_server import get_bytes, list_files, put_bytes, upload
from typer.testing import CliRunner

from dataengine.cli import app
from dataengine.pack.sample_corpus import write_sample_corpus
from dataengine.pack.shards import ShardReader
from train.data import SequenceSource

TRAIN = ["--vocab-size", "1024", "--sample-chars", "400000", "--heldout-fraction", "0.1"]
PACK = ["--seq-len", "128", "--rows-per-shard", "200", "--num-workers", "2"]


def _cli(*args: str) -> dict:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def _local_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def local_run(corpus, tmp_path_factory) -> dict[str, Path]:
    """The tokenizer of the same command on the local files: what S3 must match. en.jsonl and
    zh.jsonl.gz, documents with id and lang."""
    root = tmp_path_factory.mktemp("local")
    files = write_sample_corpus(corpus, root / "in", max_chars=150_000, channels=("en", "zh"))
    zh = files["zh"].with_suffix(".jsonl.gz")
    zh.write_bytes(gzip.compress(files["zh"].read_bytes(), mtime=0))
    files["zh"].unlink()
    tokenizer = root / "tokenizer.json"
    _cli("tokenizer", "train", "-i", str(root / "in"), "-o", str(tokenizer), *TRAIN)
    return {"tokenizer": tokenizer, "inputs": root / "in", "root": root}


@pytest.fixture
def s3_inputs(s3_uri, local_run) -> str:
    return upload(local_run["inputs"], f"{s3_uri}/in")


def test_tokenizer_train_reads_and_writes_s3(s3_inputs, s3_uri, local_run):
    """The user's report: `s3:/bucket/...: no such file`. A folder URI as input, a URI as output."""
    out = f"{s3_uri}/tok/tokenizer.json"
    summary = _cli("tokenizer", "train", "-i", s3_inputs, "-o", out, *TRAIN)
    assert summary["output"] == out and summary["documents"] > 0
    assert sorted(list_files(f"{s3_uri}/tok")) == ["tokenizer.json", "tokenizer.meta.json"]
    assert get_bytes(out) == local_run["tokenizer"].read_bytes()
    remote_meta = json.loads(get_bytes(f"{s3_uri}/tok/tokenizer.meta.json"))
    local_meta = json.loads(local_run["tokenizer"].with_name("tokenizer.meta.json").read_text())
    for meta in (remote_meta, local_meta):  # the config records where inputs and output were
        del meta["config"]["inputs"], meta["config"]["output"]
    assert remote_meta == local_meta
    assert set(remote_meta["language_sampling"]["channels"]) == {"en", "zh"}


def test_tokenizer_report_and_extend_on_s3(s3_inputs, s3_uri, local_run):
    tok = upload(local_run["tokenizer"], f"{s3_uri}/tok/tokenizer.json")
    upload(local_run["tokenizer"].with_name("tokenizer.meta.json"), f"{s3_uri}/tok/tokenizer.meta.json")
    report = CliRunner().invoke(
        app, ["tokenizer", "report", "-t", tok, "-i", s3_inputs, "--json", f"{s3_uri}/report.json"]
    )
    assert report.exit_code == 0, report.output
    rows = json.loads(get_bytes(f"{s3_uri}/report.json"))
    assert set(rows) >= {"en", "zh"} and rows["zh"]["chars_per_token"] > 0

    words = put_bytes(f"{s3_uri}/words.txt", "北京大学\nInternational\n".encode())
    extended = f"{s3_uri}/ext/tokenizer.json"
    result = CliRunner().invoke(
        app, ["tokenizer", "extend", "-t", tok, "--add-tokens", words, "-o", extended]
    )
    assert result.exit_code == 0, result.output
    assert "北京大学" in json.loads(result.stdout.splitlines()[0])["added"]
    meta = json.loads(get_bytes(f"{s3_uri}/ext/tokenizer.meta.json"))
    assert "北京大学" in meta["added_tokens"]


@pytest.mark.ray
def test_pack_s3_inputs_tokenizer_and_shards(ray_session, s3_inputs, s3_uri, local_run):
    """Inputs, tokenizer and SHARDS on S3 give the local command's shards byte for byte; the shards are
    read in place by ShardReader and the trainer's SequenceSource (read-only)."""
    tok = upload(local_run["tokenizer"], f"{s3_uri}/tok/tokenizer.json")
    upload(local_run["tokenizer"].with_name("tokenizer.meta.json"), f"{s3_uri}/tok/tokenizer.meta.json")
    local = local_run["root"] / "shards"
    if not local.is_dir():
        _cli(
            "pack", "-i", str(local_run["inputs"]), "-t", str(local_run["tokenizer"]), "-o", str(local), *PACK
        )
    shards = f"{s3_uri}/shards"
    summary = _cli("pack", "-i", s3_inputs, "-t", tok, "-o", shards, *PACK)
    assert summary["output"] == shards and summary["train"]["documents"] > 0

    local_files = _local_files(local)
    assert list_files(shards) == sorted(local_files)
    assert any(name.startswith("heldout/") for name in local_files)
    for name, data in local_files.items():
        if name != "manifest.json":
            assert get_bytes(f"{shards}/{name}") == data, name
    remote_manifest = json.loads(get_bytes(f"{shards}/manifest.json"))
    local_manifest = json.loads(local_files["manifest.json"])
    assert remote_manifest.pop("tokenizer_source") == tok
    local_manifest.pop("tokenizer_source")
    assert remote_manifest == local_manifest
    assert local_manifest["channels"] == ["en", "zh"]

    for split in ("train", "heldout"):
        remote, here = ShardReader(shards, split), ShardReader(local, split)
        assert remote.remote and len(remote) == len(here) and remote.num_shards == here.num_shards
        last = remote.num_shards - 1
        for shard, row in [(0, 0), (0, 7), (last, remote.shard_sequences[last] - 1)]:
            assert np.array_equal(remote.sequence(shard, row), here.sequence(shard, row))
            assert remote.spans(shard, row) == here.spans(shard, row)
        assert np.array_equal(remote.shard_array(last), here.shard_array(last))
        with pytest.raises(IndexError, match="out of range"):
            remote.sequence(0, remote.shard_sequences[0])

    rows = np.arange(0, len(here), 5)
    remote_batch = SequenceSource(ShardReader(shards)).batch(rows)
    local_batch = SequenceSource(ShardReader(local)).batch(rows)
    for name, tensor in vars(local_batch).items():
        assert (getattr(remote_batch, name) == tensor).all(), name


def test_missing_s3_input_names_the_uri(s3_uri, tmp_path):
    missing = f"{s3_uri}/no/such.jsonl"
    result = CliRunner().invoke(app, ["tokenizer", "train", "-i", missing, "-o", str(tmp_path / "t.json")])
    assert result.exit_code != 0 and missing in result.output
    result = CliRunner().invoke(
        app, ["pack", "-i", missing, "-t", f"{s3_uri}/tok.json", "-o", str(tmp_path / "s")]
    )
    assert result.exit_code != 0 and "s3://" in result.output
