"""Config loading (sizes, --set, errors naming file and key), LR schedules and model shapes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from test_train_shards import torch_one_thread  # noqa: F401

from dataengine.configio import ConfigError
from train.config import load_train_config
from train.metrics import flops_per_token
from train.model import ModelConfig, Transformer, document_mask, num_params
from train.schedule import ScheduleConfig, lr_factor

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs/train/tiny.yaml"


def test_tiny_config_has_the_contract_keys_and_overrides_apply():
    cfg = load_train_config(TINY, ["train.max_steps=7", "model.n_layers=2", "resume=never"])
    assert cfg.train.max_steps == 7 and cfg.model.n_layers == 2 and cfg.resume == "never"
    assert cfg.model.dim == 128  # from configs/model/tiny.yaml
    assert cfg.data.shards and cfg.train.seed == 0 and cfg.run_dir and cfg.checkpoint.interval
    assert cfg.init_from is None
    swapped = load_train_config(TINY, ["model=125M"])
    assert swapped.model.dim == 768 and swapped.model.n_layers == 12


@pytest.mark.parametrize(
    "override,expected",
    [
        ("train.max_stepz=3", "train.max_stepz: unknown key"),
        ("train.max_steps=zero", "train.max_steps: Input should be a valid integer"),
        ("model=13B", "model: '13B' is neither a size"),
        ("train.micro_batch_size=3", "must be a multiple of train.micro_batch_size"),
        ("model.n_kv_heads=3", "n_heads (4) must be a multiple of n_kv_heads (3)"),
    ],
)
def test_errors_name_the_file_and_the_key(override, expected):
    with pytest.raises(ConfigError) as err:
        load_train_config(TINY, [override])
    assert expected in str(err.value) and "tiny.yaml" in str(err.value)


def test_missing_required_keys_are_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("run_dir: x\nmodel: tiny\ntrain: {seed: 1}\n")
    with pytest.raises(ConfigError) as err:
        load_train_config(path)
    assert "bad.yaml" in str(err.value) and "data: Field required" in str(err.value)
    assert "train.max_steps: Field required" in str(err.value)


def test_every_model_size_builds_with_the_expected_parameter_count():
    expected = {
        "tiny": (0.5e6, 1.0e6),
        "125M": (100e6, 135e6),
        "350M": (320e6, 380e6),
        "1B": (0.95e9, 1.3e9),
        "7B": (6.5e9, 7e9),
    }
    for name, (low, high) in expected.items():
        cfg = load_train_config(TINY, [f"model={name}", "model.vocab_size=32000"]).model
        with torch.device("meta"):
            model = Transformer(cfg)
        vocab = 512 if name == "tiny" else 32000  # tiny is checked at a test-shard vocabulary
        n = num_params(model) - (32000 - vocab) * cfg.dim * (1 if cfg.tie_embeddings else 2)
        assert low < n < high, (name, n)


def test_wsd_and_cosine_schedules():
    wsd = ScheduleConfig(kind="wsd", warmup_steps=10, decay_fraction=0.2, decay_shape="linear")
    assert lr_factor(0, 100, wsd) == pytest.approx(0.1) and lr_factor(9, 100, wsd) == 1.0
    assert lr_factor(50, 100, wsd) == 1.0 and lr_factor(79, 100, wsd) == 1.0
    assert lr_factor(89, 100, wsd) == pytest.approx(0.5) and lr_factor(99, 100, wsd) == 0.0
    sqrt = wsd.model_copy(update={"decay_shape": "1-sqrt"})
    assert lr_factor(84, 100, sqrt) == pytest.approx(1 - math.sqrt(0.25))
    cos = wsd.model_copy(update={"decay_shape": "cosine", "min_lr_ratio": 0.1})
    assert lr_factor(89, 100, cos) == pytest.approx(0.1 + 0.9 * 0.5)
    cosine = ScheduleConfig(kind="cosine", warmup_steps=0, min_lr_ratio=0.0)
    assert lr_factor(0, 100, cosine) == 1.0 and lr_factor(50, 100, cosine) == pytest.approx(0.5)


def test_document_mask_blocks_attention_across_documents():
    docs = torch.tensor([[0, 0, 0, 1, 1, -1]])
    mask = document_mask(docs)[0, 0]
    assert mask[4].tolist() == [False, False, False, True, True, False]
    assert mask[2].tolist() == [True, True, True, False, False, False]
    # with the mask, tokens of document 1 do not depend on document 0
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=50, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64))
    a = torch.tensor([[5, 6, 7, 8, 9, 3]])
    b = torch.tensor([[11, 12, 13, 8, 9, 3]])
    with torch.no_grad():
        out_a, out_b = model(a, docs), model(b, docs)
        assert torch.allclose(out_a[0, 3:5], out_b[0, 3:5], atol=1e-6)
        assert not torch.allclose(model(a)[0, 3:5], model(b)[0, 3:5], atol=1e-4)


def test_flops_formula():
    cfg = ModelConfig(vocab_size=1000, dim=64, n_layers=2, n_heads=4, ffn_dim=128, tie_embeddings=True)
    model = Transformer(cfg)
    block = 4 * 64 * 64 + 3 * 64 * 128 + 2 * 64
    assert flops_per_token(model, 32) == 6 * (2 * block + 64 + 1000 * 64) + 12 * 2 * 4 * 16 * 32
