"""Packing on Ray: conservation, exact round trip, held-out rule, determinism, order plug-in, CLI
(one command shape, the tokenizer's held-out setting, the readers and ids of `dataengine run`);
and the block packer (rows carried across tokenize blocks) without Ray. Real en/zh/code text from
the bundled corpus."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from dataengine.config import PipelineConfig
from dataengine.io.paths import expand_inputs
from dataengine.io.readers import read_unit
from dataengine.io.readers.rows import stable_id
from dataengine.io.units import plan_units
from dataengine.pack.cli import PACK_EPILOG, pack_command, tokenizer_app
from dataengine.pack.holdout import Heldout, is_heldout
from dataengine.pack.inputs import document_tables, reader_config
from dataengine.pack.order import DocumentOrder, register_order
from dataengine.pack.packer import PackConfig, SplitBlock, StreamPacker, pack, tokenize_block
from dataengine.pack.sample_corpus import write_sample_corpus
from dataengine.pack.shards import ShardReader, ShardWriter
from dataengine.pack.specials import special_ids
from dataengine.pack.tokenizer import TokenizerConfig, load_tokenizer, train_tokenizer

SEQ_LEN = 256
HELDOUT = 0.1


@pytest.fixture(scope="module")
def inputs(corpus, tmp_path_factory) -> list[Path]:
    """en and zh as JSONL (lang only), code as Parquet with lang and category columns (§3.1)."""
    root = tmp_path_factory.mktemp("pack_inputs")
    corpus = write_sample_corpus(corpus, root, max_chars=120_000)
    code = [json.loads(line) for line in open(corpus["code"], encoding="utf-8")]
    table = pa.Table.from_pylist(
        [
            {"id": d["id"], "text": d["text"], "source": d["source"], "lang": "code", "category": "code"}
            for d in code
        ]
    )
    pq.write_table(table, root / "code.parquet", row_group_size=16)
    return [corpus["en"], corpus["zh"], root / "code.parquet"]


@pytest.fixture(scope="module")
def tokenizer_path(inputs, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pack_tok") / "tokenizer.json"
    train_tokenizer(inputs, path, TokenizerConfig(vocab_size=2048, heldout_fraction=HELDOUT))
    return path


def _documents(inputs: list[Path]) -> dict[str, dict]:
    docs = {}
    for path in inputs:
        if path.suffix == ".parquet":
            rows = pq.read_table(path).to_pylist()
        else:
            rows = [json.loads(line) for line in open(path, encoding="utf-8")]
        for row in rows:
            docs[row["id"]] = row
    return docs


def _tokens_by_document(root: Path, split: str) -> dict[str, list[int]]:
    """Each document's tokens, joined from its spans in shard/row/position order; a document's
    pieces must be contiguous in the stream."""
    reader = ShardReader(root, split)
    tokens: dict[str, list[int]] = {}
    order: list[str] = []
    for shard, row in reader.sequence_ids():
        sequence = reader.sequence(shard, row)
        for span in reader.spans(shard, row):
            if not order or order[-1] != span["doc_id"]:
                assert span["doc_id"] not in tokens, f"{span['doc_id']} is not contiguous"
                order.append(span["doc_id"])
            tokens.setdefault(span["doc_id"], []).extend(sequence[span["start"] : span["end"]].tolist())
    return tokens


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.ray
def test_pack_conserves_documents_and_round_trips(ray_session, inputs, tokenizer_path, tmp_path):
    out = tmp_path / "shards"
    manifest = pack(
        inputs, tokenizer_path, out, PackConfig(seq_len=SEQ_LEN, heldout_fraction=HELDOUT, rows_per_shard=40)
    )
    docs = _documents(inputs)
    tokenizer = load_tokenizer(tokenizer_path)
    eos = manifest["eos_id"]

    splits = manifest["splits"]
    assert (
        manifest["documents_in"] == len(docs) == splits["train"]["documents"] + splits["heldout"]["documents"]
    )
    assert manifest["tokens_in"] == splits["train"]["tokens"] + splits["heldout"]["tokens"]
    assert manifest["channels"] == [
        "code",
        "en",
        "zh",
    ]  # channels by lang (phase 1 gives source files lang=code)
    assert manifest["seq_len"] == SEQ_LEN and manifest["dtype"] == "uint16"
    assert (out / "tokenizer.json").read_bytes() == tokenizer_path.read_bytes()

    seen: dict[str, str] = {}
    for split in ("train", "heldout"):
        reader = ShardReader(out, split)
        assert reader.num_shards >= (2 if split == "train" else 1)
        by_doc = _tokens_by_document(out, split)
        assert len(by_doc) == splits[split]["documents"]
        assert sum(map(len, by_doc.values())) == splits[split]["tokens"]
        for doc_id, ids in by_doc.items():
            assert doc_id not in seen, f"{doc_id} in both {seen.get(doc_id)} and {split}"
            seen[doc_id] = split
            assert ids[-1] == eos and eos not in ids[:-1]
            assert tokenizer.decode(ids[:-1], skip_special_tokens=False) == docs[doc_id]["text"], doc_id
        for doc_id in by_doc:
            assert is_heldout(doc_id, HELDOUT) == (split == "heldout")
        # padding only at the very end of the split, with channel -1
        last = reader.sequence_ids()[-1]
        for shard, row in reader.sequence_ids():
            channel_ids = reader.channel_ids(shard, row)
            padding = channel_ids == -1
            assert (reader.sequence(shard, row)[padding] == manifest["pad_id"]).all()
            if (shard, row) != last:
                assert not padding.any()
    assert set(seen) == set(docs)
    long_docs = [d for d, ids in _tokens_by_document(out, "train").items() if len(ids) > 3 * (SEQ_LEN + 1)]
    assert long_docs, "some documents should be longer than several rows (split, not dropped)"


@pytest.mark.ray
def test_pack_is_deterministic_across_workers_and_batches(ray_session, inputs, tokenizer_path, tmp_path):
    base = {
        "seq_len": SEQ_LEN,
        "heldout_fraction": HELDOUT,
        "order": "shuffle",
        "seed": 7,
        "rows_per_shard": 64,
    }
    pack(inputs, tokenizer_path, tmp_path / "a", PackConfig(**base, num_workers=2, batch_size=64))
    pack(
        inputs,
        tokenizer_path,
        tmp_path / "b",
        PackConfig(**base, num_workers=1, batch_size=200, block_bytes=1 << 16, task_text_bytes=3000),
    )
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")

    pack(inputs, tokenizer_path, tmp_path / "c", PackConfig(**{**base, "seed": 8}))
    first = ShardReader(tmp_path / "a").spans(0, 0)[0]["doc_id"]
    assert (
        _digest(tmp_path / "a") != _digest(tmp_path / "c")
        or first != ShardReader(tmp_path / "c").spans(0, 0)[0]["doc_id"]
    )


def _pack_blocks(blocks: list[SplitBlock], root: Path, writer_args: dict) -> StreamPacker:
    packer = StreamPacker(ShardWriter(root, "train", SEQ_LEN, "uint16", **writer_args))
    for block in blocks:
        packer.add(block)
    packer.close()
    return packer


def test_blocks_carry_rows_and_give_the_same_bytes(inputs, tokenizer_path, tmp_path):
    """Real en/zh/code documents tokenized as one block or as many small blocks (one document,
    blocks with no train document at all) pack to the same bytes: the partial row at a block's
    end is carried, rows are full except the last, and the tokens are the documents' in order."""
    tokenizer = load_tokenizer(tokenizer_path)
    ids = special_ids(tokenizer)
    heldout = Heldout(fraction=HELDOUT)
    tables = list(document_tables(inputs, reader_config(), rejected=Counter(), batch_size=10_000))
    eos = ids["eos"]
    whole = [tokenize_block(tokenizer.to_str(), eos, pa.concat_tables(tables), heldout, "uint16")["train"]]
    documents = pa.concat_tables(tables)
    small, start, size = [], 0, 1
    while start < documents.num_rows:  # block sizes 1, 2, 3, 1, 2, 3, ...
        batch = documents.slice(start, size)
        small.append(tokenize_block(tokenizer.to_str(), eos, batch, heldout, "uint16")["train"])
        start, size = start + size, size % 3 + 1
    assert any(len(b.lengths) == 0 for b in small), "some blocks hold only held-out documents"

    writer_args = {
        "vocab_size": tokenizer.get_vocab_size(),
        "pad_id": ids["pad"],
        "eos_id": ids["eos"],
        "tokenizer_sha256": "test",
        "rows_per_shard": 50,
    }
    one = _pack_blocks(whole, tmp_path / "one", writer_args)
    many = _pack_blocks(small, tmp_path / "many", writer_args)
    assert _digest(tmp_path / "one") == _digest(tmp_path / "many")
    assert (
        (one.documents, one.tokens)
        == (many.documents, many.tokens)
        == (len(whole[0].lengths), len(whole[0].tokens))
    )

    rows = np.concatenate([np.load(p) for p in sorted((tmp_path / "many" / "train").glob("*.npy"))])
    stream = np.concatenate([b.tokens for b in small])
    assert rows.shape[0] == -(-len(stream) // (SEQ_LEN + 1)) > 10
    assert (rows.reshape(-1)[: len(stream)] == stream).all()
    assert (rows.reshape(-1)[len(stream) :] == ids["pad"]).all()


class LongestFirst(DocumentOrder):
    """A test order through the plug-in interface: longest documents first."""

    def apply(self, ds):
        def add_length(batch: pa.Table) -> pa.Table:
            return batch.append_column("_len", pa.compute.utf8_length(batch["text"]))

        return (
            ds.map_batches(add_length, batch_format="pyarrow")
            .sort(["_len", "id"], descending=[True, False])
            .drop_columns(["_len"])
        )


@pytest.mark.ray
def test_order_plug_in(ray_session, inputs, tokenizer_path, tmp_path):
    register_order("longest_first", LongestFirst)
    pack(
        inputs,
        tokenizer_path,
        tmp_path / "s",
        PackConfig(seq_len=SEQ_LEN, heldout_fraction=0.0, order="longest_first"),
    )
    reader = ShardReader(tmp_path / "s")
    docs = _documents(inputs)
    order = list(_tokens_by_document(tmp_path / "s", "train"))
    lengths = [len(docs[d]["text"]) for d in order]
    assert lengths == sorted(lengths, reverse=True)
    assert reader.manifest["order"]["name"] == "longest_first"
    with pytest.raises(ValueError, match="order 'nope'"):
        pack(inputs, tokenizer_path, tmp_path / "x", PackConfig(order="nope"))


@pytest.mark.ray
def test_unreadable_records_are_skipped_and_counted_as_run_rejects_them(
    ray_session, tokenizer_path, tmp_path
):
    """The records `dataengine run` rejects while reading are not packed; the manifest counts them by reason."""
    bad = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"id": "a", "text": "The first line is fine English text."}),
        json.dumps({"id": "b", "text": 5}),
        "{not json",
        json.dumps({"id": "c", "text": "第三行是中文。"}),
        json.dumps({"id": "d", "body": "no text key"}),
    ]
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    manifest = pack([bad], tokenizer_path, tmp_path / "out", PackConfig(seq_len=16, heldout_fraction=0.0))
    assert manifest["documents_in"] == 2
    assert manifest["rejected_by_reason"] == {
        "io:invalid_json": 1,
        "io:missing_text": 1,
        "io:non_string_text": 1,
    }
    assert set(_tokens_by_document(tmp_path / "out", "train")) == {"a", "c"}


def _cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command("pack", epilog=PACK_EPILOG)(pack_command)
    app.command("noop")(lambda: None)  # keeps `pack` a named subcommand, as in the main CLI
    return app


def _run_ids(path: Path) -> list[str]:
    """The ids `dataengine run` gives the records of ``path``: its own planning and readers."""
    config = PipelineConfig().input
    units = plan_units(expand_inputs([str(path)]), config)
    return [row["id"] for unit in units for row in read_unit(unit, config) if row["reject"] is None]


@pytest.fixture(scope="module")
def plain_inputs(corpus, tmp_path_factory) -> list[Path]:
    """JSONL without ids: English C4 web pages (gzip, as bundled) and Chinese Wikipedia paragraphs."""
    root = tmp_path_factory.mktemp("plain")
    zh = root / "zh_plain.jsonl"
    with (
        open(corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8") as src,
        open(zh, "w", encoding="utf-8") as out,
    ):
        for line in list(src)[:300]:
            out.write(json.dumps({"text": json.loads(line)["text"]}, ensure_ascii=False) + "\n")
    return [corpus / "web" / "text" / "c4-sample.01.jsonl.gz", zh]


@pytest.mark.ray
def test_cli_plain_jsonl_gets_the_ids_of_dataengine_run(ray_session, plain_inputs, tmp_path):
    """tokenizer train and pack read JSONL without ids; every packed document carries the id
    `dataengine run` gives it (a hash of file@offset), and the held-out setting is given once."""
    runner = CliRunner()
    tok = tmp_path / "tok.json"
    given = [x for p in plain_inputs for x in ("--input", str(p))]
    result = runner.invoke(
        tokenizer_app,
        ["train", *given, "--vocab-size", "1024", "--heldout-fraction", "0.2", "--output", str(tok)],
    )
    assert result.exit_code == 0, result.output
    trained = json.loads(result.output)
    assert trained["documents"] > 0 and trained["heldout"] == {
        "fraction": 0.2,
        "seed": 0,
        "by_channel": {},
        "channel": ["lang"],
    }
    meta = json.loads(tok.with_name("tok.meta.json").read_text())
    assert meta["heldout"]["fraction"] == 0.2

    out = tmp_path / "shards"
    result = runner.invoke(
        _cli_app(), ["pack", *given, "--tokenizer", str(tok), "--seq-len", "128", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["heldout_setting"]["fraction"] == 0.2  # from the tokenizer, not given again
    run_ids = [i for p in plain_inputs for i in _run_ids(p)]
    first = plain_inputs[1].resolve()
    assert run_ids[-300] == stable_id(f"{first}@0")  # the first Chinese record: its file and offset
    packed = {**_tokens_by_document(out, "train"), **_tokens_by_document(out, "heldout")}
    assert set(packed) == set(run_ids) and len(run_ids) == summary["documents_in"]
    for doc_id in _tokens_by_document(out, "heldout"):
        assert is_heldout(doc_id, 0.2)


@pytest.mark.ray
def test_cli_pack_refuses_a_heldout_setting_the_tokenizer_trained_on(
    ray_session, inputs, tokenizer_path, tmp_path
):
    """The tokenizer was trained holding out HELDOUT; a larger share (or another seed) would hold out
    documents it saw, so pack stops before any work; a smaller share is a subset and is accepted."""
    runner, out = CliRunner(), tmp_path / "shards"
    base = ["pack", "--input", str(inputs[1]), "--tokenizer", str(tokenizer_path), "--output", str(out)]
    for extra in (["--heldout-fraction", "0.3"], ["--set", "heldout_seed=5"]):
        result = runner.invoke(_cli_app(), base + extra)
        assert result.exit_code == 2, result.output
        assert "would hold out documents the tokenizer trained on" in result.output
        assert "tokenizer.meta.json" in result.output and not out.exists()
    result = runner.invoke(_cli_app(), base + ["--heldout-fraction", "0.05", "--seq-len", "64"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["heldout_setting"]["fraction"] == 0.05


def test_cli_help_lists_every_key_with_the_model_default():
    result = CliRunner().invoke(_cli_app(), ["pack", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for name, field in PackConfig.model_fields.items():
        if name not in ("input", "similar", "special_tokens"):  # sections: their keys are listed one by one
            assert f"{name} = {json.dumps(field.get_default(call_default_factory=True))}" in result.output, (
                name
            )
    assert 'input.carry_fields = ["lang", "category", "source"]' in result.output
    assert "similar.knn.k = 20" in result.output and 'similar.embed.embedder = "hashed"' in result.output
    assert "inputs = required" in result.output
    train_help = CliRunner().invoke(tokenizer_app, ["train", "--help"], terminal_width=200).output
    assert "vocab_size = 32000" in train_help and "heldout_fraction = 0.01" in train_help


@pytest.mark.ray
def test_cli_train_report_extend_pack(ray_session, inputs, tmp_path):
    runner = CliRunner()
    tok = tmp_path / "tok.json"
    config = tmp_path / "tokenizer.yaml"
    config.write_text(
        "inputs: [" + ", ".join(json.dumps(str(p)) for p in inputs) + "]\n"
        f"output: {json.dumps(str(tok))}\nvocab_size: 1024\nheldout_fraction: 0.1\n",
        encoding="utf-8",
    )
    result = runner.invoke(tokenizer_app, ["train", str(config), "--channel-weight", "zh=2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["documents"] > 0 and tok.is_file()
    assert json.loads(tok.with_name("tok.meta.json").read_text())["config"]["channel_weights"] == {"zh": 2.0}

    result = runner.invoke(tokenizer_app, ["report", "--tokenizer", str(tok), "--input", str(inputs[1])])
    assert result.exit_code == 0, result.output
    assert "| zh |" in result.output
    result = runner.invoke(
        tokenizer_app,
        ["report", "--tokenizer", str(tok), "--input", str(inputs[1]), "--heldout-fraction", "0.5"],
    )
    assert result.exit_code == 2 and "heldout_fraction=0.5" in result.output

    words = tmp_path / "words.txt"
    words.write_text("阿莫西林\n青霉素\n", encoding="utf-8")
    result = runner.invoke(
        tokenizer_app,
        [
            "extend",
            "--tokenizer",
            str(tok),
            "--add-tokens",
            str(words),
            "--output",
            str(tmp_path / "ext.json"),
            "--domain",
            str(inputs[1]),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "阿莫西林" in json.loads(result.output.splitlines()[0])["added"]

    result = runner.invoke(
        tokenizer_app, ["train", "--input", str(inputs[0]), "--output", str(tok), "--channel-weight", "zh"]
    )
    assert result.exit_code == 2 and "CHANNEL=NUMBER" in result.output
    result = runner.invoke(tokenizer_app, ["train", str(config), "--set", "vocab_sise=2000"])
    assert (
        result.exit_code == 2
        and "tokenizer.yaml" in result.output
        and "vocab_sise: unknown key" in result.output
    )

    out = tmp_path / "shards"
    result = runner.invoke(
        _cli_app(),
        [
            "pack",
            "--input",
            str(inputs[1]),
            "--tokenizer",
            str(tok),
            "--seq-len",
            "64",
            "--output",
            str(out),
            "--order",
            "shuffle",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["documents_in"] == summary["train"]["documents"] + summary["heldout"]["documents"]
    assert len(ShardReader(out)) == summary["train"]["sequences"]
    assert np.load(next((out / "train").glob("*.npy"))).shape[1] == 65

    result = runner.invoke(
        _cli_app(),
        ["pack", "--input", str(inputs[1]), "--tokenizer", str(tok), "--seq-len", "0", "--output", str(out)],
    )
    assert result.exit_code == 2 and "seq_len" in result.output
    result = runner.invoke(_cli_app(), ["pack", "--tokenizer", str(tok), "--output", str(out)])
    assert result.exit_code == 2 and "inputs" in result.output and "required" in result.output
