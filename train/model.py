"""A Llama-architecture decoder in one plain file (in the spirit of nanoGPT).

RMSNorm, rotary position embeddings (configurable theta, the "rotate half" layout that Hugging Face
Llama/Qwen2 use, so weights map one to one), grouped-query attention through
`F.scaled_dot_product_attention` (flash kernels on GPU), SwiGLU, optional tied embeddings and optional
attention masking at document boundaries. Sharding, activation checkpointing and compilation are applied
from outside (train/parallelize.py); this file knows nothing about them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention


class RopeScaling(BaseModel):
    """Llama 3.1's RoPE frequency scaling (Hugging Face `rope_type: llama3`): wavelengths longer than
    original_max_position_embeddings / low_freq_factor are stretched by `factor`, those shorter than
    original_max_position_embeddings / high_freq_factor are kept, and the band between is blended.
    Other scaling kinds (linear, dynamic, yarn, longrope) are not implemented."""

    model_config = ConfigDict(extra="forbid")

    rope_type: Literal["llama3"] = "llama3"
    factor: float = Field(gt=0)
    low_freq_factor: float = Field(gt=0)
    high_freq_factor: float = Field(gt=0)
    original_max_position_embeddings: int = Field(ge=1)

    @model_validator(mode="after")
    def _check(self) -> RopeScaling:
        if self.high_freq_factor <= self.low_freq_factor:
            raise ValueError(
                f"high_freq_factor ({self.high_freq_factor}) must exceed low_freq_factor ({self.low_freq_factor})"
            )
        return self


class ModelConfig(BaseModel):
    """Shape of the network; sizes live in configs/model/*.yaml."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int = 32000
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 8
    n_kv_heads: int | None = None  # None = n_heads (plain multi-head attention)
    head_dim: int | None = None  # None = dim // n_heads
    ffn_dim: int | None = None  # None = the Llama rule: 2/3 * 4 * dim rounded up to multiple_of
    multiple_of: int = 256
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None  # None = plain RoPE
    max_seq_len: int = 2048
    tie_embeddings: bool = False
    qkv_bias: bool = False  # True for Qwen2-style checkpoints
    init_std: float = 0.02

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.n_heads % self.kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.kv_heads})")
        if self.head_dim is None and self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        return self

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def hdim(self) -> int:
        return self.head_dim or self.dim // self.n_heads

    @property
    def hidden_dim(self) -> int:
        if self.ffn_dim:
            return self.ffn_dim
        hidden = int(2 * 4 * self.dim / 3)
        return self.multiple_of * math.ceil(hidden / self.multiple_of)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:  # the same arithmetic as below, in one call (fewer passes on CPU)
            return F.rms_norm(x, (x.shape[-1],), self.weight, eps=self.eps)
        # Normalise in fp32 (as HF Llama does) so bf16 training and exported models agree.
        normed = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).type_as(x)
        return self.weight * normed


def llama3_inv_freq(inv_freq: torch.Tensor, scaling: RopeScaling) -> torch.Tensor:
    """The inverse frequencies scaled as transformers' `_compute_llama3_parameters` does, operation for
    operation, so that imported Llama 3.x models give the same logits at every position."""
    old_context_len = scaling.original_max_position_embeddings
    low_freq_wavelen = old_context_len / scaling.low_freq_factor
    high_freq_wavelen = old_context_len / scaling.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / scaling.factor, inv_freq)
    smooth = (old_context_len / wavelen - scaling.low_freq_factor) / (
        scaling.high_freq_factor - scaling.low_freq_factor
    )
    smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


def rope_tables(
    head_dim: int, max_seq_len: int, theta: float, scaling: RopeScaling | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and signed sin tables [max_seq_len, head_dim] in the rotate-half layout.

    The first half of the sin table is negated, so that apply_rope needs no negation of x: the
    products are the rotate-half products exactly (a sign flip is exact in floating point).
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    if scaling is not None:
        inv_freq = llama3_inv_freq(inv_freq, scaling)
    freqs = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    sign = torch.cat([-torch.ones(head_dim // 2), torch.ones(head_dim // 2)])
    return emb.cos(), emb.sin() * sign


def apply_rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """x: [B, H, T, D]; cos/signed_sin: [T, D] from rope_tables. Equals x * cos + rotate_half(x) * sin."""
    half = x.shape[-1] // 2
    swapped = torch.cat([x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + swapped * signed_sin).type_as(x)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.hdim
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * cfg.hdim, bias=cfg.qkv_bias)
        self.wk = nn.Linear(cfg.dim, cfg.kv_heads * cfg.hdim, bias=cfg.qkv_bias)
        self.wv = nn.Linear(cfg.dim, cfg.kv_heads * cfg.hdim, bias=cfg.qkv_bias)
        self.wo = nn.Linear(cfg.n_heads * cfg.hdim, cfg.dim, bias=False)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | BlockMask | None
    ) -> torch.Tensor:
        """mask from document_mask: None is plain causal attention (SDPA's flash path)."""
        bsz, seqlen, _ = x.shape
        q = self.wq(x).view(bsz, seqlen, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(bsz, seqlen, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(bsz, seqlen, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        gqa = self.n_kv_heads != self.n_heads
        if isinstance(mask, BlockMask):
            out = _fused(flex_attention)(q, k, v, block_mask=mask, enable_gqa=gqa)
        else:
            out = F.scaled_dot_product_attention(q, k, v, mask, is_causal=mask is None, enable_gqa=gqa)
        return self.wo(out.transpose(1, 2).reshape(bsz, seqlen, -1))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)
        self.w2 = nn.Linear(cfg.hidden_dim, cfg.dim, bias=False)
        self.w3 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn = FeedForward(cfg)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | BlockMask | None
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        return x + self.ffn(self.ffn_norm(x))


# Device types whose document masks are FlexAttention block masks. Not CPU: torch's CPU FlexAttention
# has no backward (torch 2.13), and at the sequence lengths CPUs train on the dense mask is cheap.
FLEX_DEVICE_TYPES = ("cuda",)


@functools.cache
def _compiled(fn: Callable) -> Callable:
    """torch.compile(fn), made on first use: the compiler's import costs ~2 s that users of the model
    without document masks on GPU (configs, export, CPU training) should not pay."""
    return torch.compile(fn)


def _fused(fn: Callable) -> Callable:
    """fn compiled, as FlexAttention needs: eager flex_attention is an unfused reference that builds the
    [B, H, T, T] scores, eager create_block_mask the dense mask. Inside a compiled block (train.compile)
    the call is traced into that block's graph instead."""
    return fn if torch.compiler.is_compiling() else _compiled(fn)


def document_mask(doc_ids: torch.Tensor) -> torch.Tensor | BlockMask:
    """Causal attention within each document of packed rows; doc_ids [B, T], -1 = padding.

    Built once per forward and shared by all layers. On FLEX_DEVICE_TYPES a FlexAttention BlockMask
    ([B, 1, T/128, T/128] block tables; its kernels skip the blocks across documents and never hold a
    T x T mask), elsewhere a boolean [B, 1, T, T] mask for SDPA. No row is all false, so no row's
    softmax is NaN: a token always sees itself (padding too, as -1 == -1).
    """
    bsz, seqlen = doc_ids.shape
    if doc_ids.device.type in FLEX_DEVICE_TYPES:

        def causal_same_doc(
            b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor
        ) -> torch.Tensor:
            return (q >= kv) & (doc_ids[b, q] == doc_ids[b, kv])

        return _fused(create_block_mask)(causal_same_doc, bsz, None, seqlen, seqlen, device=doc_ids.device)
    causal = torch.ones(seqlen, seqlen, dtype=torch.bool, device=doc_ids.device).tril()
    same_doc = doc_ids[:, :, None] == doc_ids[:, None, :]
    return (same_doc & causal)[:, None]


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        cos, sin = rope_tables(cfg.hdim, cfg.max_seq_len, cfg.rope_theta, cfg.rope_scaling)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def init_weights(self, seed: int) -> None:
        """Seeded init, identical on every rank; output projections scaled by depth (GPT-2 style)."""
        gen = torch.Generator().manual_seed(seed)
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            else:
                scale = (
                    std / math.sqrt(2 * self.cfg.n_layers)
                    if name.endswith(("wo.weight", "w2.weight"))
                    else std
                )
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=gen) * scale)
        self.reset_rope()

    def reset_rope(self) -> None:
        """Recompute the rope tables in place: a model built on the meta device and materialised with
        `to_empty` holds uninitialised buffers, and a loaded checkpoint does not carry them."""
        cfg = self.cfg
        cos, sin = rope_tables(cfg.hdim, cfg.max_seq_len, cfg.rope_theta, cfg.rope_scaling)
        self.rope_cos.copy_(cos)
        self.rope_sin.copy_(sin)

    def forward(self, tokens: torch.Tensor, doc_ids: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [B, T] -> logits [B, T, vocab]. doc_ids [B, T] masks attention across documents."""
        seqlen = tokens.shape[1]
        if seqlen > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {seqlen} exceeds model.max_seq_len {self.cfg.max_seq_len}")
        cos, sin = self.rope_cos[:seqlen], self.rope_sin[:seqlen]
        mask = None if doc_ids is None else document_mask(doc_ids)
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.head(self.norm(x))


def num_params(model: nn.Module, exclude_embedding: bool = False) -> int:
    """Parameter count; tied weights counted once. exclude_embedding drops the input embedding (MFU)."""
    seen, total = set(), 0
    for name, p in model.named_parameters():
        if id(p) in seen or (exclude_embedding and name.endswith("embed.weight")):
            continue
        seen.add(id(p))
        total += p.numel()
    return total
