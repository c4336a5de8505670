"""Continued pretraining from Hugging Face bases: a Qwen2 with tied embeddings and a Llama 3 with llama3
RoPE scaling, both random and built here with transformers (no downloads). Logits equal transformers'
(beyond original_max_position_embeddings too); init_from runs, resumes and exports; the base's
tokenizer must match the shards' (or be extended by `dataengine tokenizer extend`, whose new rows
start from the mean embedding); the meta-device build gives bitwise the eager initial weights, in one
process and sharded over two."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from foreign_tokenizers import build_llama3_style_dir, build_qwen2_style_dir, bundled_documents
from test_train_hf import SHAPE
from test_train_shards import (  # noqa: F401
    MAX_CHARS,
    SEQ_LEN,
    TINY_YAML,
    real_documents,
    tiny_config,
    tiny_overrides,
    torch_one_thread,
    train_shards,
)
from test_train_shards import pack as pack_greedy
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Qwen2Config

from dataengine.pack.extend import extend_tokenizer
from dataengine.pack.packer import PackConfig, pack
from dataengine.pack.shards import ShardReader, ShardWriter
from train.build import build_model, model_config
from train.export import export, load_model
from train.hf import read_hf_config, write_tokenizer_config
from train.model import ModelConfig, RopeScaling, Transformer
from train.parallelize import Dist
from train.trainer import Trainer, run

ROOT = Path(__file__).resolve().parents[1]
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 32}  # fmt: skip
QWEN_PADDING_ROWS = 64  # a Qwen2 base has more embedding rows than tokens (151936 for 151665)
NEW_WORDS = ["return", "self", "中国"]
EMBEDDING_SIZE = 640  # the extended shards' manifest: 512 tokens + 3 added, rows with headroom
CPU = Dist(0, 1, 0, torch.device("cpu"))


def make_base(kind: str, out: Path, tokenizer: Path, vocab: int) -> Path:
    """A random base saved like a hub checkpoint, with `tokenizer` as its tokenizer. Queries and keys
    are scaled up so that attention, and so RoPE, visibly shapes the logits."""
    torch.manual_seed(3)
    if kind == "qwen2":
        config = Qwen2Config(vocab_size=vocab + QWEN_PADDING_ROWS, tie_word_embeddings=True, **SHAPE)
    else:
        rope = {**LLAMA3_ROPE, "rope_theta": 10000.0}
        config = LlamaConfig(vocab_size=vocab, tie_word_embeddings=False, rope_parameters=rope, **SHAPE)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                p.mul_(20)
    model.save_pretrained(out)
    (out / "tokenizer.json").write_bytes(tokenizer.read_bytes())
    write_tokenizer_config(out, eos_id=1, pad_id=0)
    return out


def long_ids(shards: Path, length: int = 120) -> torch.Tensor:
    """Real token ids, longer than the llama3 base's original_max_position_embeddings (32)."""
    reader = ShardReader(shards, "heldout")
    ids = [int(t) for row in range(3) for t in reader.sequence(0, row)]
    return torch.tensor(ids[:length])[None]


def max_logit_diff(ours: torch.nn.Module, hf_dir: Path, ids: torch.Tensor) -> float:
    theirs = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return (ours(ids) - theirs(ids).logits).abs().max().item()


def base_model(hf_dir: Path, shards: Path, tmp_path: Path) -> torch.nn.Module:
    """The base as the trainer loads it (meta device, tensor by tensor), in one process."""
    cfg = tiny_config(shards, tmp_path / "probe", f"init_from={hf_dir}")
    return build_model(cfg, model_config(cfg, ShardReader(shards)), CPU, print).eval()


@pytest.fixture(scope="module")
def bases(train_shards, tmp_path_factory) -> dict[str, Path]:  # noqa: F811
    root = tmp_path_factory.mktemp("bases")
    vocab = ShardReader(train_shards).vocab_size
    return {k: make_base(k, root / k, train_shards / "tokenizer.json", vocab) for k in ("qwen2", "llama3")}


@pytest.mark.parametrize("kind", ["qwen2", "llama3"])
def test_bases_give_transformers_logits(kind, bases, train_shards, tmp_path):  # noqa: F811
    cfg = read_hf_config(bases[kind])
    if kind == "qwen2":
        assert cfg.tie_embeddings and cfg.qkv_bias and cfg.rope_scaling is None
    else:
        assert cfg.rope_scaling == RopeScaling(**LLAMA3_ROPE) and cfg.rope_theta == 10000.0
    ids = long_ids(train_shards)
    assert max_logit_diff(base_model(bases[kind], train_shards, tmp_path), bases[kind], ids) < 1e-4
    if kind == "llama3":  # the scaling matters at these positions: without it the logits differ
        plain = Transformer(cfg.model_copy(update={"rope_scaling": None}))
        plain.load_state_dict(base_model(bases[kind], train_shards, tmp_path).state_dict())
        assert max_logit_diff(plain.eval(), bases[kind], ids) > 1e-3


def test_rope_scaling_is_read_from_either_key_and_other_kinds_refused(bases, tmp_path):
    config = json.loads((bases["llama3"] / "config.json").read_text())
    legacy = {k: v for k, v in config.items() if k != "rope_parameters"}
    legacy |= {"rope_scaling": LLAMA3_ROPE, "rope_theta": 10000.0}
    (tmp_path / "config.json").write_text(json.dumps(legacy))
    assert read_hf_config(tmp_path).rope_scaling == RopeScaling(**LLAMA3_ROPE)
    yarn = {**config, "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}}
    (tmp_path / "config.json").write_text(json.dumps(yarn))
    with pytest.raises(ValueError, match=r"config.json: rope_parameters.rope_type 'yarn' is not supported"):
        read_hf_config(tmp_path)
    broken = {**config, "rope_parameters": {**config["rope_parameters"], "high_freq_factor": 0.5}}
    (tmp_path / "config.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="high_freq_factor .* must exceed low_freq_factor"):
        read_hf_config(tmp_path)
    with pytest.raises(ValueError, match="rope_type"):
        ModelConfig(rope_scaling={**LLAMA3_ROPE, "rope_type": "linear"})


@pytest.mark.parametrize("kind", ["qwen2", "llama3"])
def test_init_from_base_trains_records_and_exports(kind, bases, train_shards, tmp_path):  # noqa: F811
    run_dir = tmp_path / "run"
    # activation checkpointing renames the parameters the base is loaded into (a wrapper per block)
    overrides = (
        f"init_from={bases[kind]}",
        "train.max_steps=2",
        f"train.activation_checkpointing={kind == 'qwen2'}",
    )
    records = run(tiny_config(train_shards, run_dir, *overrides))
    assert len(records) == 2 and all(r["loss"] > 0 for r in records)
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text())["model"]
    base = read_hf_config(bases[kind])
    assert recorded == base.model_dump(mode="json")  # the base's shape, not the YAML's model: tiny
    if kind == "qwen2":  # never shrunk to the tokenizer's 512
        assert recorded["vocab_size"] == 512 + QWEN_PADDING_ROWS
    assert (run_dir / "tokenizer/tokenizer.json").read_bytes() == (
        train_shards / "tokenizer.json"
    ).read_bytes()

    out = export(run_dir, tmp_path / "hf_out")
    exported = json.loads((out / "config.json").read_text())
    assert exported["rope_parameters"]["rope_type"] == ("llama3" if kind == "llama3" else "default")
    ours, _ = load_model(run_dir)
    assert max_logit_diff(ours.eval(), out, long_ids(train_shards)) < 1e-4
    assert (out / "tokenizer.json").read_bytes() == (train_shards / "tokenizer.json").read_bytes()


def test_mismatched_tokenizer_is_refused_unless_the_shards_one_is_taken(bases, train_shards, tmp_path):  # noqa: F811
    base = tmp_path / "base"
    base.mkdir()
    for f in (bases["llama3"]).iterdir():
        (base / f.name).write_bytes(f.read_bytes())
    tokenizer = json.loads((base / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    first, second = sorted(vocab, key=vocab.get)[300:302]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (base / "tokenizer.json").write_text(json.dumps(tokenizer))
    cfg = tiny_config(train_shards, tmp_path / "run", f"init_from={base}")
    message = (
        f"{base}/tokenizer.json and the shards' {train_shards}/tokenizer.json differ at 2 of the base's "
        f"512 ids (id 300: {second!r} vs {first!r}; id 301: {first!r} vs {second!r})"
    )
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        with pytest.raises(ValueError, match=re.escape(message) + ".*init_tokenizer: shards"):
            Trainer(cfg)
    finally:  # the trainer set it before refusing, and never got to close()
        torch.use_deterministic_algorithms(deterministic)
    assert not (tmp_path / "run/config.yaml").exists()  # refused before any work

    taken = tiny_config(train_shards, tmp_path / "run", f"init_from={base}", "init_tokenizer=shards")
    trainer = Trainer(taken)
    try:
        embed = trainer.model.embed.weight.detach()
        mean = base_model(bases["llama3"], train_shards, tmp_path).embed.weight[:512].mean(0)
        assert torch.equal(embed[300], mean) and torch.equal(embed[301], mean)
    finally:
        trainer.close()


def pack_extended(corpus: Path, tokenizer: Path, root: Path) -> Path:
    """The test shards again, packed with `tokenizer` and an embedding_size in the manifest, as
    `dataengine pack` records it."""
    tok = Tokenizer.from_file(str(tokenizer))
    grouped = real_documents(corpus, 60)
    by_channel = [[d for d in grouped if d["channel"] == c] for c in ("web", "zh", "code")]
    docs = [{**d, "text": d["text"][:MAX_CHARS]} for trio in zip(*by_channel, strict=False) for d in trio]
    root.mkdir(parents=True)
    (root / "tokenizer.json").write_bytes(tokenizer.read_bytes())
    pad, eos = tok.token_to_id("<pad>"), tok.token_to_id("<eos>")
    for split, split_docs in {
        "train": [d for i, d in enumerate(docs) if i % 10],
        "heldout": docs[::10],
    }.items():
        writer = ShardWriter(root, split, SEQ_LEN, "uint16", vocab_size=tok.get_vocab_size(), pad_id=pad,
                             eos_id=eos, tokenizer_sha256="extended", rows_per_shard=64,
                             extra={"embedding_size": EMBEDDING_SIZE, "bos_id": None})  # fmt: skip
        pack_greedy(writer, tok, split_docs, eos, pad)
        writer.close()
    return root


def test_extended_tokenizer_init_from_resume_and_export(bases, train_shards, corpus, tmp_path):  # noqa: F811
    extended = tmp_path / "extended.json"
    added = extend_tokenizer(train_shards / "tokenizer.json", NEW_WORDS, extended)["added"]
    assert sorted(added.values()) == [512, 513, 514]
    shards = pack_extended(corpus, extended, tmp_path / "shards")
    base = bases["llama3"]
    steps = ("train.max_steps=4", "checkpoint.interval=2", "data.doc_mask=false")

    trainer = Trainer(tiny_config(shards, tmp_path / "probe", f"init_from={base}", *steps))
    try:  # 512 base rows kept, the 3 new tokens and the headroom start from the mean row
        loaded = base_model(base, train_shards, tmp_path)
        for ours, theirs in ((trainer.model.embed, loaded.embed), (trainer.model.head, loaded.head)):
            weight = ours.weight.detach()
            assert weight.shape == (EMBEDDING_SIZE, 64) and torch.equal(weight[:512], theirs.weight[:512])
            assert torch.equal(weight[512:], theirs.weight[:512].mean(0).expand(EMBEDDING_SIZE - 512, -1))
    finally:
        trainer.close()

    whole = run(tiny_config(shards, tmp_path / "whole", f"init_from={base}", *steps))
    run_dir = tmp_path / "run"
    first = run(tiny_config(shards, run_dir, f"init_from={base}", *steps), stop_at=3)
    resumed = run(tiny_config(shards, run_dir, f"init_from={base}", *steps))
    assert [r["step"] for r in resumed] == [3, 4]
    assert [r["loss"] for r in first[:2] + resumed] == [r["loss"] for r in whole]  # bitwise

    out = export(run_dir, tmp_path / "hf_out")
    assert (out / "tokenizer.json").read_bytes() == extended.read_bytes()
    assert json.loads((out / "config.json").read_text())["vocab_size"] == EMBEDDING_SIZE
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.encode("return self", add_special_tokens=False)[0] == added["return"]
    ours, _ = load_model(run_dir)
    assert max_logit_diff(ours.eval(), out, long_ids(shards)) < 1e-4


def eager(model_cfg: ModelConfig, seed: int) -> dict[str, torch.Tensor]:
    """The initial weights as the trainer made them before the meta-device build."""
    torch.manual_seed(seed)
    model = Transformer(model_cfg)
    model.init_weights(seed)
    return model.state_dict()


def test_meta_build_gives_the_eager_initial_weights_in_one_process(train_shards, tmp_path):  # noqa: F811
    for extra in ((), ("model.tie_embeddings=true", "train.activation_checkpointing=true")):
        cfg = tiny_config(train_shards, tmp_path, *extra)
        model_cfg = model_config(cfg, ShardReader(train_shards))
        built = build_model(cfg, model_cfg, CPU, print)
        assert built.head.weight is built.embed.weight or not model_cfg.tie_embeddings
        reference = eager(model_cfg, cfg.train.seed)
        state = {k.replace("_checkpoint_wrapped_module.", ""): v for k, v in built.state_dict().items()}
        assert state.keys() == reference.keys()
        assert all(torch.equal(state[k], reference[k]) for k in reference)
        assert torch.equal(built.rope_cos, Transformer(model_cfg).rope_cos)


SHARDED_BUILD = """
import sys
import torch
import torch.distributed as dist
from dataengine.pack.shards import ShardReader
from train.build import build_model, model_config
from train.config import load_train_config
from train.parallelize import setup_distributed

dist_info = setup_distributed("cpu")
for out, overrides in zip(sys.argv[2::2], sys.argv[3::2]):
    cfg = load_train_config(sys.argv[1], overrides.split())
    model = build_model(cfg, model_config(cfg, ShardReader(cfg.data.shards)), dist_info, print)
    assert dist_info.world_size == 2 and hasattr(model.embed.weight, "full_tensor")
    full = {name: p.full_tensor() for name, p in model.named_parameters()}
    if dist_info.is_main:
        torch.save(full, out)
dist.destroy_process_group()
"""


def test_meta_build_sharded_over_two_processes_gives_the_same_weights(bases, train_shards, tmp_path):  # noqa: F811
    """FSDP2 on gloo: each process initialises (or loads) only its shards, and the gathered weights are
    the one-process ones bitwise; the tied Qwen2 head stays tied."""
    script = tmp_path / "sharded_build.py"
    script.write_text(SHARDED_BUILD)
    runs = {
        "init": tiny_overrides(train_shards, tmp_path / "a", "model.tie_embeddings=true"),
        "qwen2": tiny_overrides(train_shards, tmp_path / "b", f"init_from={bases['qwen2']}"),
    }
    args = [str(part) for name, o in runs.items() for part in (tmp_path / f"{name}.pt", " ".join(o))]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", str(script),
           str(TINY_YAML), *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name, overrides in runs.items():
        sharded = torch.load(tmp_path / f"{name}.pt")
        cfg = tiny_config(train_shards, tmp_path / "one", *overrides[2:])
        one = build_model(cfg, model_config(cfg, ShardReader(train_shards)), CPU, print)
        expected = dict(one.named_parameters())
        assert sharded.keys() == expected.keys() and "head.weight" not in sharded  # tied: stored once
        assert all(torch.equal(sharded[k], expected[k]) for k in expected)


@pytest.mark.parametrize("family", ["qwen2", "llama3"])
def test_foreign_base_packed_with_its_tokenizer_trains_and_exports(family, ray_session, corpus, tmp_path):
    """End to end with the families' own tokenizers (tests/foreign_tokenizers.py): `dataengine pack`
    with the base directory, init_from, export; the run ships the shards' (= the base's) tokenizer files."""
    documents = bundled_documents(corpus, max_chars=30_000)
    build = build_qwen2_style_dir if family == "qwen2" else build_llama3_style_dir
    base = build(tmp_path / "base", [d["text"] for d in documents])
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base), dtype=torch.float32).save_pretrained(
        base
    )
    inputs = tmp_path / "docs.jsonl"
    inputs.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents), encoding="utf-8")
    shards = tmp_path / "shards"
    manifest = pack([inputs], base, shards, PackConfig(seq_len=SEQ_LEN, heldout_fraction=0.0))
    assert (manifest["bos_id"] is None) == (family == "qwen2")

    run_dir = tmp_path / "run"
    records = run(tiny_config(shards, run_dir, f"init_from={base}", "train.max_steps=2"))
    assert len(records) == 2
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (run_dir / "tokenizer" / name).read_bytes() == (base / name).read_bytes()
    out = export(run_dir, tmp_path / "hf_out")
    assert (out / "tokenizer_config.json").read_bytes() == (base / "tokenizer_config.json").read_bytes()
    reader = ShardReader(shards)
    ids = torch.tensor([int(t) for row in range(2) for t in reader.sequence(0, row)])[None]
    ours, _ = load_model(run_dir)
    assert max_logit_diff(ours.eval(), out, ids) < 1e-4
