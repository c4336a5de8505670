"""Hugging Face round trip on tiny randomly initialised models made here with transformers (no
downloads): import (Llama and Qwen2) with logits equal within 1e-4 in fp32, continued pretraining with
a fresh warmup, and `python -m train.export` loading back through AutoModelForCausalLM/AutoTokenizer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_train_shards import tiny_config, torch_one_thread, train_shards  # noqa: F401
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from dataengine.pack.shards import ShardReader
from dataengine.usage.ledger import UsageLedger
from train.build import FreshRows, load_base, materialize
from train.export import load_model
from train.hf import hf_name, read_hf_config, write_tokenizer_config
from train.model import Transformer
from train.trainer import run

ROOT = Path(__file__).resolve().parents[1]
SHAPE = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=128, rms_norm_eps=1e-5)  # fmt: skip


def _make_hf(kind: str, out: Path, shards: Path, tie: bool) -> Path:
    """A random HF model with the shards' vocabulary and tokenizer, saved like a hub checkpoint."""
    vocab = ShardReader(shards).vocab_size
    torch.manual_seed(3)
    if kind == "llama":
        model = LlamaForCausalLM(
            LlamaConfig(vocab_size=vocab, tie_word_embeddings=tie, rope_theta=50000.0, **SHAPE)
        )
    else:
        model = Qwen2ForCausalLM(
            Qwen2Config(vocab_size=vocab, tie_word_embeddings=tie, rope_theta=50000.0, **SHAPE)
        )
    model.save_pretrained(out)
    (out / "tokenizer.json").write_bytes((shards / "tokenizer.json").read_bytes())
    write_tokenizer_config(out, eos_id=1, pad_id=0)
    return out


def imported(hf_dir: Path) -> Transformer:
    """Our model with the base's weights, as the trainer loads them (meta device, tensor by tensor)."""
    with torch.device("meta"):
        model = Transformer(read_hf_config(hf_dir))
    materialize(model, "cpu")
    with torch.no_grad():
        load_base(model, hf_dir, FreshRows([], None))
    return model.eval()


def _real_ids(shards: Path) -> torch.Tensor:
    reader = ShardReader(shards, "heldout")
    return torch.tensor(reader.sequence(0, 0)[:48].astype("int64"))[None]


@pytest.mark.parametrize("kind,tie", [("llama", False), ("llama", True), ("qwen2", False)])
def test_import_matches_transformers_logits(kind, tie, train_shards, tmp_path):  # noqa: F811
    hf_dir = _make_hf(kind, tmp_path / "hf", train_shards, tie)
    cfg = read_hf_config(hf_dir)
    assert cfg.qkv_bias == (kind == "qwen2") and cfg.tie_embeddings == tie and cfg.rope_theta == 50000.0
    ours = imported(hf_dir)
    theirs = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    ids = _real_ids(train_shards)
    with torch.no_grad():
        diff = (ours(ids) - theirs(ids).logits).abs().max().item()
    assert diff < 1e-4


def test_continued_pretraining_and_export_round_trip(train_shards, tmp_path):  # noqa: F811
    hf_in = _make_hf("llama", tmp_path / "hf_in", train_shards, tie=False)
    run_dir = tmp_path / "run"
    overrides = (f"init_from={hf_in}", "train.max_steps=4", "schedule.warmup_steps=4", "data.doc_mask=false")
    records = run(tiny_config(train_shards, run_dir, *overrides))
    # a fresh schedule: warmup starts again from step 1
    assert [r["lr"] for r in records] == pytest.approx([3e-3 * k / 4 for k in (1, 2, 3, 4)])
    # the first loss is the imported model's loss on the first batch (as recorded in the ledger)
    theirs = AutoModelForCausalLM.from_pretrained(hf_in, dtype=torch.float32).eval()
    ledger = UsageLedger(run_dir / "usage.sqlite")
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    first = [(shard, row) for step, shard, row in ledger.run_steps(run_id) if step == 1]
    ledger.close()
    reader = ShardReader(train_shards)
    tokens = torch.tensor(np.stack([reader.sequence(*s) for s in first]).astype("int64"))
    valid = torch.tensor(np.stack([reader.channel_ids(*s) for s in first]))[:, 1:].flatten() >= 0
    with torch.no_grad():
        logits = theirs(tokens[:, :-1]).logits.flatten(0, 1)
    token_loss = F.cross_entropy(logits, tokens[:, 1:].flatten(), reduction="none")
    assert records[0]["loss"] == pytest.approx(float(token_loss[valid].mean()), rel=1e-5)
    assert json.loads((run_dir / "checkpoints/step-0000004/meta.json").read_text())["model"]["dim"] == 64

    out = tmp_path / "hf_out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "train.export", str(run_dir), "--output", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "tokenizer.json").is_file() and (out / "tokenizer_config.json").is_file()
    exported = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ours, meta = load_model(run_dir)
    ids = _real_ids(train_shards)
    with torch.no_grad():
        assert (ours(ids) - exported(ids).logits).abs().max().item() < 1e-4
        # training moved the weights away from the imported ones
        assert (exported(ids).logits - theirs(ids).logits).abs().max().item() > 1e-3
    tokenizer = AutoTokenizer.from_pretrained(out)
    text = "Continued pretraining 继续预训练 def f(x): return x"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.eos_token_id == meta["eos_id"]
    assert hf_name("layers.1.ffn.w1.weight") == "model.layers.1.mlp.gate_proj.weight"


def test_unsupported_hf_configs_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="model_type 'gpt2' is not supported"):
        read_hf_config(tmp_path)
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        read_hf_config(tmp_path / "missing")
