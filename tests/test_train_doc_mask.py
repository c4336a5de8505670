"""Document masking: the FlexAttention block mask (CUDA) and the dense boolean mask (CPU fallback) give
the same outputs, build no T x T mask on the flex path, and keep documents independent of their row.

On CPU the flex path runs forward only (torch's CPU FlexAttention has no backward), by adding "cpu" to
train.model.FLEX_DEVICE_TYPES; the GPU test (marker `gpu`) compares both in bf16 with backward.
"""

from __future__ import annotations

import copy
import statistics
import time

import pytest
import torch
from test_train_shards import torch_one_thread  # noqa: F401
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.nn.attention.flex_attention import BlockMask

import train.model
from train.model import ModelConfig, Transformer, document_mask

CFG = ModelConfig(vocab_size=64, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=128)
SEQ_LEN = 320  # three 128-token blocks, the last one partial


def packed(rows: list[list[tuple[int, int]]], seqlen: int = SEQ_LEN) -> torch.Tensor:
    """doc ids [len(rows), seqlen] from (doc id, length) runs per row; the rest of a row is padding (-1)."""
    out = torch.full((len(rows), seqlen), -1, dtype=torch.int64)
    for r, runs in enumerate(rows):
        start = 0
        for doc, length in runs:
            out[r, start : start + length] = doc
            start += length
    return out


def flex_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train.model, "FLEX_DEVICE_TYPES", ("cpu", "cuda"))


def model(seed: int = 0, cfg: ModelConfig = CFG) -> Transformer:
    m = Transformer(cfg)
    m.init_weights(seed)
    return m.eval()


def test_flex_block_mask_gives_the_dense_outputs_with_padding_and_gqa(monkeypatch):
    # Padding inside a row as well as at its end; documents straddle the 128-token blocks.
    docs = packed([[(0, 100), (1, 150), (2, 30)], [(0, 7), (-1, 13), (1, 200), (2, 60)]])
    tokens = torch.randint(0, CFG.vocab_size, docs.shape, generator=torch.Generator().manual_seed(1))
    m = model()
    with torch.no_grad():
        dense_mask = document_mask(docs)
        assert dense_mask.shape == (2, 1, SEQ_LEN, SEQ_LEN)
        assert dense_mask.any(dim=-1).all()  # every row sees at least itself: no NaN softmax
        dense = m(tokens, docs)
        flex_everywhere(monkeypatch)
        block_mask = document_mask(docs)
        flex = m(tokens, docs)
    assert isinstance(block_mask, BlockMask)
    # Only block tables: nothing on the flex path is as large as one row's T x T mask.
    tables = [t for t in block_mask.as_tuple() if isinstance(t, torch.Tensor)]
    assert tables and max(t.numel() for t in tables) < SEQ_LEN * SEQ_LEN // 100
    assert torch.isfinite(flex).all() and torch.isfinite(dense).all()
    torch.testing.assert_close(flex, dense, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("flex", [False, True], ids=["dense", "flex"])
def test_a_document_gets_the_same_outputs_wherever_it_sits_in_the_row(monkeypatch, flex):
    """RoPE is relative, so a document shifted to the start of a row with no predecessor attends the
    same way: its outputs match up to float error."""
    if flex:
        flex_everywhere(monkeypatch)
    gen = torch.Generator().manual_seed(2)
    first = torch.randint(0, CFG.vocab_size, (90,), generator=gen)
    second = torch.randint(0, CFG.vocab_size, (150,), generator=gen)
    tokens = torch.zeros(2, SEQ_LEN, dtype=torch.int64)
    tokens[0, :90], tokens[0, 90:240], tokens[1, :150] = first, second, second
    docs = packed([[(0, 90), (1, 150)], [(0, 150)]])
    m = model()
    with torch.no_grad():
        out = m(tokens, docs)
        unmasked = m(tokens)
    torch.testing.assert_close(out[0, 90:240], out[1, :150], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(unmasked[0, 90:240], unmasked[1, :150], atol=1e-2)  # the mask matters


@pytest.mark.slow
def test_flex_traces_into_compiled_blocks_without_recompiling_per_mask(monkeypatch):
    """train.compile compiles each block (train/parallelize.py): the block mask is an input of those
    graphs, flex_attention is traced into them, and a new row's mask needs no new graph."""
    flex_everywhere(monkeypatch)
    docs = packed([[(0, 100), (1, 150), (2, 30)], [(0, 7), (-1, 13), (1, 200), (2, 60)]])
    tokens = torch.randint(0, CFG.vocab_size, docs.shape, generator=torch.Generator().manual_seed(4))
    m = model()
    with torch.no_grad():
        eager, eager_flipped = m(tokens, docs), m(tokens, docs.flip(1))
        for block in m.layers:
            block.compile(fullgraph=True)
        compiled = m(tokens, docs)
        with torch._dynamo.config.patch(error_on_recompile=True):
            compiled_flipped = m(tokens, docs.flip(1))
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(compiled_flipped, eager_flipped, atol=1e-5, rtol=1e-5)


def _fwd_bwd(m: Transformer, tokens: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
    logits = m(tokens, docs)
    logits.float().square().mean().backward()
    return logits.detach()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_flex_matches_dense_in_bf16_compiled_too_and_times_both(monkeypatch):
    cfg = ModelConfig(vocab_size=32000, dim=768, n_layers=4, n_heads=12, n_kv_heads=4, ffn_dim=2048)
    bsz, seqlen = 4, 2048
    gen = torch.Generator().manual_seed(3)
    rows = []
    for _ in range(bsz):  # seven documents at random boundaries, then 100 padding tokens
        cuts = (torch.randperm(seqlen - 101, generator=gen)[:6] + 1).sort().values.tolist()
        bounds = [0, *cuts, seqlen - 100]
        rows.append([(k, b - a) for k, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))])
    docs = packed(rows, seqlen).cuda()
    tokens = torch.randint(0, cfg.vocab_size, (bsz, seqlen), generator=gen).cuda()
    ref = model(cfg=cfg).cuda()
    bf16 = copy.deepcopy(ref)
    for child in bf16.children():  # bf16 parameters, fp32 RoPE tables: as FSDP's policy trains
        child.to(torch.bfloat16)

    monkeypatch.setattr(train.model, "FLEX_DEVICE_TYPES", ())
    with torch.no_grad():
        exact = ref(tokens, docs).float()
        dense = bf16(tokens, docs).float()
    monkeypatch.setattr(train.model, "FLEX_DEVICE_TYPES", ("cuda",))
    flex = _fwd_bwd(bf16, tokens, docs).float()
    assert torch.isfinite(flex).all()
    assert all(torch.isfinite(p.grad).all() for p in bf16.parameters())
    # bf16 flex is as close to the fp32 result as bf16 SDPA with the dense mask is.
    err_flex, err_dense = (exact - flex).abs().mean(), (exact - dense).abs().mean()
    print(f"mean |bf16 - fp32|: flex {err_flex:.2e}, dense {err_dense:.2e}")
    assert err_flex <= 1.5 * err_dense + 1e-4

    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    block_mask = document_mask(docs)
    torch.cuda.synchronize()
    assert isinstance(block_mask, BlockMask)
    assert torch.cuda.max_memory_allocated() - before < bsz * seqlen * seqlen // 16  # no dense mask

    # Blocks wrapped as parallelize does with train.compile (checkpointing, then compile): flex traced
    # into each block's graph.
    compiled = copy.deepcopy(bf16)
    for i, block in enumerate(compiled.layers):
        block = checkpoint_wrapper(block, preserve_rng_state=False)
        block.compile()
        compiled.layers[i] = block
    out = _fwd_bwd(compiled, tokens, docs).float()
    assert (out - flex).abs().mean() <= 2 * err_dense  # bf16 rounding apart

    for name, kinds in (("dense", ()), ("flex", ("cuda",))):
        monkeypatch.setattr(train.model, "FLEX_DEVICE_TYPES", kinds)
        times = []
        for _ in range(6):
            torch.cuda.synchronize()
            start = time.perf_counter()
            _fwd_bwd(bf16, tokens, docs)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        print(
            f"{name}: fwd+bwd {cfg.n_layers} layers B={bsz} T={seqlen}: {statistics.median(times[1:]) * 1e3:.1f} ms"
        )
