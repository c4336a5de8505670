"""oneDNN linear layers for CPU training: the same fp32 products as aten's, forward and backward."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from test_train_shards import tiny_config, torch_one_thread, train_shards  # noqa: F401
from torch import nn

from dataengine.cpu_linear import OneDNNLinear, onednn_available, onednn_linear, use_onednn_linears
from train.model import ModelConfig, Transformer
from train.trainer import Trainer

pytestmark = pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN")


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5) -> None:
    scale = b.abs().max().item()
    assert (a - b).abs().max().item() <= rtol * scale, (a - b).abs().max().item() / scale


@pytest.mark.parametrize("bias", [False, True])
def test_products_match_aten(bias: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 37, 96, generator=gen, requires_grad=True)
    w = torch.randn(160, 96, generator=gen, requires_grad=True)
    b = torch.randn(160, generator=gen, requires_grad=True) if bias else None
    grad = torch.randn(3, 37, 160, generator=gen)

    y = onednn_linear(x, w, b)
    ours = torch.autograd.grad(y, [x, w, *([b] if bias else [])], grad)
    ref_y = F.linear(x, w, b)
    ref = torch.autograd.grad(ref_y, [x, w, *([b] if bias else [])], grad)

    assert y.shape == ref_y.shape
    _close(y, ref_y)
    for got, want in zip(ours, ref, strict=True):
        _close(got, want)


def _tiny(qkv_bias: bool, tie: bool) -> Transformer:
    cfg = ModelConfig(
        vocab_size=300, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=160, max_seq_len=64,
        qkv_bias=qkv_bias, tie_embeddings=tie,
    )  # fmt: skip
    model = Transformer(cfg)
    model.init_weights(1)
    return model


@pytest.mark.parametrize(("qkv_bias", "tie"), [(False, False), (True, True)])
def test_swapped_model_trains_like_the_original(qkv_bias: bool, tie: bool) -> None:
    """Same names, same tied parameter, same loss and gradients to fp32 rounding."""
    ref = _tiny(qkv_bias, tie)
    model = copy.deepcopy(ref)
    names = list(model.state_dict())
    swapped = use_onednn_linears(model, "onednn")

    assert swapped == sum(isinstance(m, nn.Linear) for m in ref.modules()) == 2 * 7 + 1
    assert all(type(m) is not nn.Linear for m in model.modules())
    assert list(model.state_dict()) == names
    assert (model.head.weight is model.embed.weight) == tie

    tokens = torch.randint(0, 300, (2, 48), generator=torch.Generator().manual_seed(2))
    losses = []
    for m in (ref, model):
        logits = m(tokens[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    for p, q in zip(ref.parameters(), model.parameters(), strict=True):
        _close(q.grad, p.grad, rtol=1e-4)


def test_compiled_matches_eager_and_repeats_bitwise() -> None:
    model = _tiny(False, False)
    use_onednn_linears(model, "onednn")
    tokens = torch.randint(0, 300, (2, 32), generator=torch.Generator().manual_seed(3))
    eager = [model(tokens) for _ in range(2)]
    assert torch.equal(eager[0], eager[1])  # deterministic, as bitwise resume needs
    compiled = torch.compile(model)(tokens)
    _close(compiled, eager[0])


def test_empty_and_non_fp32_inputs_fall_back_to_torch() -> None:
    layer = _tiny(False, False).layers[0].ffn.w1
    use_onednn_linears(layer, "onednn")
    assert isinstance(layer, OneDNNLinear)
    empty = torch.zeros(2, 0, 64, requires_grad=True)
    assert layer(empty).shape == (2, 0, 160)
    half = layer.to(torch.bfloat16)(torch.randn(3, 64, dtype=torch.bfloat16))
    assert half.dtype == torch.bfloat16 and half.shape == (3, 160)


def test_aten_choice_keeps_nn_linear() -> None:
    model = _tiny(False, False)
    assert use_onednn_linears(model, "aten") == 0
    assert not any(isinstance(m, OneDNNLinear) for m in model.modules())


def test_trainer_on_real_shards_uses_onednn_and_agrees_with_aten(train_shards, tmp_path):  # noqa: F811
    """en/zh/code shards from the bundled corpus (tests/data): the trainer swaps its linears, and its losses over three
    steps follow torch's default GEMM to fp32 rounding."""
    losses = {}
    for choice in ("onednn", "aten"):
        run_dir = tmp_path / choice
        cfg = tiny_config(train_shards, run_dir, "train.max_steps=3", f"train.cpu_linear={choice}")
        trainer = Trainer(cfg)
        try:
            linears = [m for m in trainer.model.modules() if isinstance(m, nn.Linear)]
            assert linears and all(isinstance(m, OneDNNLinear) == (choice == "onednn") for m in linears)
            losses[choice] = [trainer.train_step()["loss"] for _ in range(3)]
        finally:
            trainer.close()
    assert losses["onednn"] == pytest.approx(losses["aten"], rel=1e-4)
    assert losses["onednn"][-1] < losses["onednn"][0]
