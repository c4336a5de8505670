"""`dataengine pack` and `tokenizer extend` with tokenizers trained elsewhere: Qwen2- and Llama-3-style
model directories (tests/foreign_tokenizers.py, trained offline on the bundled English and Chinese
text), a Qwen2-sized vocabulary (ids past 65,535), and the refusals that come before any work."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
import typer
from foreign_tokenizers import (
    QWEN2_PATTERN,
    QWEN2_SPECIALS,
    build_llama3_style_dir,
    build_qwen2_style_dir,
    bundled_documents,
    train_byte_level_bpe,
)
from pydantic import ValidationError
from typer.testing import CliRunner

from dataengine.pack.cli import PACK_EPILOG, pack_command
from dataengine.pack.extend import extend_tokenizer
from dataengine.pack.packer import PackConfig, pack
from dataengine.pack.shards import ShardReader, dtype_for_vocab
from dataengine.pack.specials import special_ids, special_tokens_for
from dataengine.pack.tokenizer import embedding_size_for, load_tokenizer, read_meta

SEQ_LEN = 128
HELDOUT = 0.1
QWEN2_FIRST_SPECIAL = 151_643  # Qwen2's <|endoftext|>
QWEN2_EMBEDDING = 151_936


@pytest.fixture(scope="module")
def documents(corpus) -> list[dict]:
    return bundled_documents(corpus, max_chars=60_000)


@pytest.fixture(scope="module")
def inputs(documents, tmp_path_factory) -> list[Path]:
    """The documents as kept-document JSONL, one file per language."""
    root = tmp_path_factory.mktemp("foreign_inputs")
    paths = []
    for lang in ("en", "zh"):
        path = root / f"{lang}.jsonl"
        rows = [json.dumps(d, ensure_ascii=False) for d in documents if d["lang"] == lang]
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def texts(documents) -> list[str]:
    return [d["text"] for d in documents]


@pytest.fixture(scope="module")
def qwen2_dir(texts, tmp_path_factory) -> Path:
    return build_qwen2_style_dir(tmp_path_factory.mktemp("qwen2") / "model", texts)


@pytest.fixture(scope="module")
def llama3_dir(texts, tmp_path_factory) -> Path:
    return build_llama3_style_dir(tmp_path_factory.mktemp("llama3") / "model", texts)


def _packed_documents(root: Path) -> dict[str, list[int]]:
    """Each packed document's tokens (both splits), joined from its spans in stream order."""
    tokens: dict[str, list[int]] = {}
    for split in ("train", "heldout"):
        reader = ShardReader(root, split)
        for shard, row in reader.sequence_ids():
            sequence = reader.sequence(shard, row)
            for span in reader.spans(shard, row):
                tokens.setdefault(span["doc_id"], []).extend(sequence[span["start"] : span["end"]].tolist())
    return tokens


def _check_round_trip(root: Path, documents: list[dict], eos: int) -> None:
    """Every document is packed once, ends with the eos (and holds no other), and decodes to its text
    (NFC: Qwen2's normalizer; the bundled text is NFC already)."""
    tokenizer = load_tokenizer(root / "tokenizer.json")
    packed = _packed_documents(root)
    assert set(packed) == {d["id"] for d in documents}
    for doc in documents:
        ids = packed[doc["id"]]
        assert ids[-1] == eos and eos not in ids[:-1], doc["id"]
        decoded = tokenizer.decode(ids[:-1], skip_special_tokens=False)
        assert decoded == unicodedata.normalize("NFC", doc["text"]), doc["id"]


def _qwen2_sized(source: Path, target: Path) -> Path:
    """``source`` (a Qwen2-style directory) with its vocabulary padded by unused entries so the special
    tokens get Qwen2's ids (<|endoftext|> = 151,643) and config.json Qwen2's 151,936 rows: ids past
    uint16, as with the real model. No merge produces the padding entries."""
    target.mkdir(parents=True)
    data = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = data["model"]["vocab"]
    vocab.update({f"<unused_{i}>": i for i in range(len(vocab), QWEN2_FIRST_SPECIAL)})
    for offset, token in enumerate(data["added_tokens"]):
        token["id"] = QWEN2_FIRST_SPECIAL + offset
    (target / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    tokenizer_config = json.loads((source / "tokenizer_config.json").read_text(encoding="utf-8"))
    tokenizer_config["added_tokens_decoder"] = {
        str(QWEN2_FIRST_SPECIAL + i): entry
        for i, entry in enumerate(tokenizer_config["added_tokens_decoder"].values())
    }
    (target / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    config.update(
        vocab_size=QWEN2_EMBEDDING, bos_token_id=QWEN2_FIRST_SPECIAL, eos_token_id=QWEN2_FIRST_SPECIAL
    )
    (target / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return target


def test_special_tokens_follow_each_family(qwen2_dir, llama3_dir, texts, tmp_path):
    """tokenizer_config.json decides (Qwen2: no bos although config.json names one; Llama-3: no pad, so
    pad = eos); a bare tokenizer.json falls back to conventions among its added tokens; the mapping
    overrides both; this project's own tokens come before the other conventions."""
    qwen2 = load_tokenizer(qwen2_dir)
    assert special_tokens_for(qwen2, qwen2_dir / "tokenizer.json") == {
        "eos": "<|endoftext|>",
        "pad": "<|endoftext|>",
        "bos": None,
    }
    llama3 = load_tokenizer(llama3_dir)
    assert special_tokens_for(llama3, llama3_dir / "tokenizer.json") == {
        "eos": "<|end_of_text|>",
        "pad": "<|end_of_text|>",
        "bos": "<|begin_of_text|>",
    }

    bare = tmp_path / "bare" / "tokenizer.json"  # Llama-3's tokenizer.json alone: conventions find the same
    bare.parent.mkdir()
    bare.write_bytes((llama3_dir / "tokenizer.json").read_bytes())
    assert special_tokens_for(llama3, bare) == special_tokens_for(llama3, llama3_dir / "tokenizer.json")

    instruct = tmp_path / "instruct"  # a Qwen2-Instruct-like config: eos <|im_end|>, pad <|endoftext|>
    instruct.mkdir()
    (instruct / "tokenizer.json").write_bytes((qwen2_dir / "tokenizer.json").read_bytes())
    (instruct / "tokenizer_config.json").write_text(
        json.dumps({"eos_token": {"content": "<|im_end|>"}, "pad_token": "<|endoftext|>", "bos_token": None})
    )
    tokens = special_tokens_for(qwen2, instruct / "tokenizer.json")
    assert tokens == {"eos": "<|im_end|>", "pad": "<|endoftext|>", "bos": None}
    mapped = special_tokens_for(qwen2, instruct / "tokenizer.json", {"eos": "<|endoftext|>", "pad": None})
    assert mapped == {"eos": "<|endoftext|>", "pad": "<|endoftext|>", "bos": None}
    endoftext = qwen2.token_to_id("<|endoftext|>")
    assert special_ids(qwen2, mapped) == {"eos": endoftext, "pad": endoftext, "bos": None}

    ours = train_byte_level_bpe(
        texts[:50], ["<|pad|>", "<|bos|>", "<|eos|>", "<|endoftext|>"], QWEN2_PATTERN, 300
    )
    assert special_ids(ours) == {role: ours.token_to_id(f"<|{role}|>") for role in ("eos", "pad", "bos")}


def test_dtype_holds_every_id():
    assert dtype_for_vocab(65_536) == "uint16"
    assert dtype_for_vocab(65_537) == dtype_for_vocab(151_665) == dtype_for_vocab(QWEN2_EMBEDDING) == "uint32"


@pytest.mark.ray
def test_pack_a_qwen2_model_directory(ray_session, qwen2_dir, inputs, documents, tmp_path):
    """A Qwen2-style directory: eos and pad <|endoftext|>, no bos, embedding size from config.json;
    the tokenizer files go with the shards; every document ends with the eos and round-trips."""
    out = tmp_path / "shards"
    manifest = pack(inputs, qwen2_dir, out, PackConfig(seq_len=SEQ_LEN, heldout_fraction=HELDOUT))
    tokenizer = load_tokenizer(qwen2_dir)
    eos = tokenizer.token_to_id("<|endoftext|>")
    assert eos == tokenizer.get_vocab_size() - len(QWEN2_SPECIALS)  # specials follow the learned vocabulary
    assert (manifest["eos_id"], manifest["pad_id"], manifest["bos_id"]) == (eos, eos, None)
    assert manifest["special_tokens"] == {"eos": "<|endoftext|>", "pad": "<|endoftext|>", "bos": None}
    config = json.loads((qwen2_dir / "config.json").read_text())
    assert (
        manifest["embedding_size"]
        == config["vocab_size"]
        > manifest["vocab_size"]
        == tokenizer.get_vocab_size()
    )
    assert manifest["tokenizer_source"] == str(qwen2_dir) and manifest["channels"] == ["en", "zh"]
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (out / name).read_bytes() == (qwen2_dir / name).read_bytes()
    assert manifest["splits"]["heldout"]["documents"] > 0
    _check_round_trip(out, documents, eos)


@pytest.mark.ray
def test_pack_a_llama3_tokenizer_file(ray_session, llama3_dir, inputs, documents, tmp_path):
    """Llama-3's tokenizer.json given as a file: its tokenizer_config.json beside it still decides (bos
    <|begin_of_text|>, eos <|end_of_text|>, pad = eos); the post-processor's BOS is not inserted; without
    a model directory the embedding size is the vocabulary plus the default headroom. A
    special_tokens_map.json an earlier pack left in the folder goes (this tokenizer has none)."""
    out = tmp_path / "shards"
    out.mkdir()
    (out / "special_tokens_map.json").write_text("{}")
    manifest = pack(
        inputs, llama3_dir / "tokenizer.json", out, PackConfig(seq_len=SEQ_LEN, heldout_fraction=0.0)
    )
    tokenizer = load_tokenizer(llama3_dir)
    bos, eos = tokenizer.token_to_id("<|begin_of_text|>"), tokenizer.token_to_id("<|end_of_text|>")
    assert (manifest["eos_id"], manifest["pad_id"], manifest["bos_id"]) == (eos, eos, bos)
    assert manifest["embedding_size"] == embedding_size_for(tokenizer.get_vocab_size(), 1000)
    assert manifest["dtype"] == "uint16"
    assert not (out / "special_tokens_map.json").exists() and (out / "tokenizer_config.json").is_file()
    packed = _packed_documents(out)
    assert all(bos not in ids for ids in packed.values())
    _check_round_trip(out, documents, eos)


@pytest.mark.ray
def test_pack_a_qwen2_sized_vocabulary_in_uint32(ray_session, qwen2_dir, inputs, documents, tmp_path):
    """Ids past 65,535 (Qwen2's <|endoftext|> is 151,643): auto picks uint32 and every eos survives;
    asking for uint16 is refused before the output is touched."""
    model = _qwen2_sized(qwen2_dir, tmp_path / "qwen2_sized")
    with pytest.raises(ValueError, match="dtype uint16: .*151646 token ids"):
        pack(inputs, model, tmp_path / "refused", PackConfig(dtype="uint16"))
    assert not (tmp_path / "refused").exists()
    out = tmp_path / "shards"
    manifest = pack(inputs[1:], model, out, PackConfig(seq_len=SEQ_LEN, heldout_fraction=0.0))
    assert manifest["dtype"] == "uint32" and manifest["eos_id"] == QWEN2_FIRST_SPECIAL
    assert manifest["embedding_size"] == QWEN2_EMBEDDING
    _check_round_trip(out, [d for d in documents if d["lang"] == "zh"], QWEN2_FIRST_SPECIAL)


@pytest.mark.ray
def test_extend_a_foreign_tokenizer_into_the_model_headroom(
    ray_session, qwen2_dir, inputs, documents, tmp_path
):
    """New words take the rows config.json has beyond the tokenizer; more than those are refused. The
    extended file, away from its directory, keeps the directory's special tokens (sidecar
    special_roles) and embedding size, so packing with it ends documents with the same eos."""
    tokenizer = load_tokenizer(qwen2_dir)
    room = json.loads((qwen2_dir / "config.json").read_text())["vocab_size"] - tokenizer.get_vocab_size()
    words = ["中国", "北京大学", "维基百科", "Wikipedia", "government"]
    extended = tmp_path / "extended" / "tokenizer.json"
    result = extend_tokenizer(qwen2_dir, words, extended)
    assert result["added"] and all(
        tokenizer.get_vocab_size() <= i < tokenizer.get_vocab_size() + room for i in result["added"].values()
    )
    meta = read_meta(extended)
    assert meta["special_roles"] == {"eos": "<|endoftext|>", "pad": "<|endoftext|>", "bos": None}
    assert meta["embedding_size"] == tokenizer.get_vocab_size() + room

    many = [f"词{i}词" for i in range(room + 1)]
    with pytest.raises(ValueError, match=f"{qwen2_dir / 'tokenizer.json'}: {room + 1} new tokens do not fit"):
        extend_tokenizer(qwen2_dir, many, tmp_path / "too_many.json")

    manifest = pack(inputs, extended, tmp_path / "shards", PackConfig(seq_len=SEQ_LEN, heldout_fraction=0.0))
    eos = tokenizer.token_to_id("<|endoftext|>")
    assert manifest["eos_id"] == manifest["pad_id"] == eos and manifest["bos_id"] is None
    assert manifest["embedding_size"] == tokenizer.get_vocab_size() + room
    packed = _packed_documents(tmp_path / "shards")
    assert any(set(result["added"].values()) & set(ids) for ids in packed.values())
    _check_round_trip(tmp_path / "shards", documents, eos)


def _cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command("pack", epilog=PACK_EPILOG)(pack_command)
    app.command("noop")(lambda: None)  # keeps `pack` a named subcommand, as in the main CLI
    return app


@pytest.fixture(scope="module")
def no_eos_tokenizer(texts, tmp_path_factory) -> Path:
    """A tokenizer.json whose only specials follow no known convention, and nothing beside it."""
    path = tmp_path_factory.mktemp("no_eos") / "tokenizer.json"
    train_byte_level_bpe(texts[:100], ["<|doc_end|>", "<|sep|>"], QWEN2_PATTERN, 400).save(str(path))
    return path


def test_refused_before_any_work(no_eos_tokenizer, qwen2_dir, inputs, tmp_path):
    """No recognisable eos: the error names the file and the key to set; a mapped token, or one that
    tokenizer_config.json names, that the vocabulary lacks is refused naming it; an unknown role is a
    config error. Nothing is written."""
    out = tmp_path / "shards"
    with pytest.raises(ValueError) as err:
        pack(inputs, no_eos_tokenizer, out, PackConfig())
    assert str(no_eos_tokenizer) in str(err.value) and "special_tokens.eos" in str(err.value)

    with pytest.raises(
        ValueError, match=r"special_tokens.eos: '<\|nope\|>' is not in the vocabulary of .*tokenizer.json"
    ):
        pack(inputs, qwen2_dir, out, PackConfig(special_tokens={"eos": "<|nope|>"}))

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer.json").write_bytes((qwen2_dir / "tokenizer.json").read_bytes())
    (broken / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    with pytest.raises(
        ValueError, match=r"tokenizer_config.json: eos_token: '</s>' is not in the vocabulary"
    ):
        pack(inputs, broken, out, PackConfig())
    assert not out.exists()

    with pytest.raises(ValidationError, match="sep"):
        PackConfig(special_tokens={"sep": "<|sep|>"})
    with pytest.raises(ValidationError, match="eos"):
        PackConfig(special_tokens={"eos": ""})


@pytest.mark.ray
def test_cli_names_the_key_and_takes_the_mapping(ray_session, no_eos_tokenizer, inputs, tmp_path):
    """`dataengine pack` exits 2 naming the tokenizer file and `special_tokens.eos`; given with --set,
    the mapping is used and recorded."""
    runner, out = CliRunner(), tmp_path / "shards"
    base = ["pack", "--input", str(inputs[0]), "--tokenizer", str(no_eos_tokenizer), "--output", str(out)]
    result = runner.invoke(_cli_app(), base, terminal_width=400)
    assert result.exit_code == 2, result.output
    assert "no end-of-document token" in result.output and "special_tokens.eos" in result.output
    assert str(no_eos_tokenizer) in result.output and not out.exists()
    result = runner.invoke(
        _cli_app(), [*base, "--seq-len", "64", "--set", "special_tokens.eos=<|doc_end|>"], terminal_width=400
    )
    assert result.exit_code == 0, result.output
    manifest = ShardReader(out).manifest
    eos = load_tokenizer(no_eos_tokenizer).token_to_id("<|doc_end|>")
    assert manifest["special_tokens"] == {"eos": "<|doc_end|>", "pad": "<|doc_end|>", "bos": None}
    assert manifest["eos_id"] == manifest["pad_id"] == eos


def test_help_lists_the_special_token_keys():
    result = CliRunner().invoke(_cli_app(), ["pack", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for role in ("eos", "pad", "bos"):
        assert f"special_tokens.{role} = null" in result.output
    assert "tokenizer_config.json" in result.output and "<|end_of_text|>" in result.output
    assert "Hugging Face model directory" in result.output
