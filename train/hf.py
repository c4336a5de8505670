"""Hugging Face Llama/Qwen2 directories <-> our model: config, weight names, tokenizer files.

Both use the rotate-half RoPE layout, so weights map one to one by name; Qwen2 differs only by q/k/v
biases, Llama 3.1+ by its RoPE frequency scaling (rope_type llama3). Import reads config.json and
the safetensors (single or sharded) one tensor at a time; export writes a directory that
`transformers.AutoModelForCausalLM.from_pretrained` loads, with the tokenizer files copied.
"""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors import safe_open
from safetensors.torch import save_file

from train.model import ModelConfig, RopeScaling

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)
RUN_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SUPPORTED_TYPES = ("llama", "qwen2")
SHARD_BYTES = 4 << 30

_BLOCK_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn.wq.weight": "self_attn.q_proj.weight",
    "attn.wq.bias": "self_attn.q_proj.bias",
    "attn.wk.weight": "self_attn.k_proj.weight",
    "attn.wk.bias": "self_attn.k_proj.bias",
    "attn.wv.weight": "self_attn.v_proj.weight",
    "attn.wv.bias": "self_attn.v_proj.bias",
    "attn.wo.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn.w1.weight": "mlp.gate_proj.weight",
    "ffn.w3.weight": "mlp.up_proj.weight",
    "ffn.w2.weight": "mlp.down_proj.weight",
}
_TOP_NAMES = {
    "embed.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "head.weight": "lm_head.weight",
}


def hf_name(ours: str) -> str:
    if ours in _TOP_NAMES:
        return _TOP_NAMES[ours]
    _, index, rest = ours.split(".", 2)  # layers.<i>.<rest>
    return f"model.layers.{index}.{_BLOCK_NAMES[rest]}"


def read_hf_config(hf_dir: str | Path) -> ModelConfig:
    path = Path(hf_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"init_from: {path} not found (expected a Hugging Face model directory)")
    c = json.loads(path.read_text())
    kind = c.get("model_type")
    if kind not in SUPPORTED_TYPES:
        raise ValueError(f"{path}: model_type {kind!r} is not supported (expected one of {SUPPORTED_TYPES})")
    rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
    problems = [k for k in ("mlp_bias", "use_sliding_window") if c.get(k)] + (
        [] if c.get("hidden_act", "silu") == "silu" else ["hidden_act"]
    )
    if rope.get("partial_rotary_factor", c.get("partial_rotary_factor", 1.0)) != 1.0:
        problems.append("partial_rotary_factor")
    if kind == "llama" and c.get("attention_bias"):
        problems.append("attention_bias (o_proj bias)")
    if problems:
        raise ValueError(f"{path}: unsupported settings {problems}")
    return ModelConfig(
        vocab_size=c["vocab_size"],
        dim=c["hidden_size"],
        n_layers=c["num_hidden_layers"],
        n_heads=c["num_attention_heads"],
        n_kv_heads=c.get("num_key_value_heads") or c["num_attention_heads"],
        head_dim=c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"],
        ffn_dim=c["intermediate_size"],
        norm_eps=c.get("rms_norm_eps", 1e-6),
        rope_theta=rope.get("rope_theta", c.get("rope_theta", 10000.0)),
        rope_scaling=_rope_scaling(path, c, rope),
        max_seq_len=c.get("max_position_embeddings", 2048),
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
        qkv_bias=kind == "qwen2",
    )


def _rope_scaling(path: Path, c: dict, rope: dict) -> RopeScaling | None:
    """The config's RoPE scaling (transformers 5 writes `rope_parameters`, older ones `rope_scaling`):
    none, or llama3's; any other kind would change the positions and is refused."""
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind == "default":
        return None
    key = "rope_parameters" if c.get("rope_parameters") else "rope_scaling"
    if kind != "llama3":
        raise ValueError(f"{path}: {key}.rope_type {kind!r} is not supported (only default and llama3)")
    fields = {k: rope[k] for k in RopeScaling.model_fields if k in rope}
    fields.setdefault(
        "original_max_position_embeddings",
        c.get("original_max_position_embeddings", c.get("max_position_embeddings")),
    )
    try:
        return RopeScaling(**fields)
    except ValidationError as err:
        raise ValueError(f"{path}: {key}: {err}") from err


class HFWeights:
    """A Hugging Face directory's tensors by our parameter name, read one at a time from the
    safetensors files (memory-mapped), so a base is never held whole in memory. Use as a context
    manager: the files stay open until it exits."""

    def __init__(self, hf_dir: str | Path):
        self.dir = Path(hf_dir)
        files = sorted(self.dir.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"init_from: no *.safetensors in {self.dir}")
        self._stack = ExitStack()
        self._where: dict[str, tuple[Path, Any]] = {}  # checkpoint key -> (file, open handle)
        for f in files:
            handle = self._stack.enter_context(safe_open(f, framework="pt"))
            self._where.update(dict.fromkeys(handle.keys(), (f, handle)))

    def __enter__(self) -> HFWeights:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def key(self, name: str) -> str:
        """The checkpoint key of our parameter `name`; a tied checkpoint stores the head as the embedding."""
        key = hf_name(name)
        if key not in self._where and name == "head.weight":
            return _TOP_NAMES["embed.weight"]
        return key

    def missing(self, names: list[str]) -> list[str]:
        return [self.key(n) for n in names if self.key(n) not in self._where]

    def get(self, name: str) -> torch.Tensor:
        """The tensor of our parameter `name`, as stored (dtype and shape of the checkpoint)."""
        return self._where[self.key(name)][1].get_tensor(self.key(name))

    def file(self, name: str) -> Path:
        return self._where[self.key(name)][0]


def _hf_config(
    cfg: ModelConfig, eos_id: int | None, pad_id: int | None, bos_id: int | None, dtype: torch.dtype
) -> dict:
    from transformers import LlamaConfig, Qwen2Config

    rope = {"rope_type": "default", "rope_theta": cfg.rope_theta}
    if cfg.rope_scaling is not None:
        rope.update(cfg.rope_scaling.model_dump())

    common = dict(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.dim,
        intermediate_size=cfg.hidden_dim,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.kv_heads,
        head_dim=cfg.hdim,
        rms_norm_eps=cfg.norm_eps,
        rope_parameters=rope,
        max_position_embeddings=cfg.max_seq_len,
        tie_word_embeddings=cfg.tie_embeddings,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        bos_token_id=bos_id,
    )
    if cfg.qkv_bias:
        hf = Qwen2Config(**common, architectures=["Qwen2ForCausalLM"])
    else:
        hf = LlamaConfig(**common, attention_bias=False, mlp_bias=False, architectures=["LlamaForCausalLM"])
    out = hf.to_dict()
    out["dtype"] = str(dtype).removeprefix("torch.")
    # The keys transformers 4.x and vLLM read, beside transformers 5's rope_parameters.
    out["rope_theta"] = cfg.rope_theta
    out["rope_scaling"] = None if cfg.rope_scaling is None else cfg.rope_scaling.model_dump()
    return out


def save_hf(
    out_dir: str | Path,
    cfg: ModelConfig,
    state_dict: dict[str, torch.Tensor],
    tokenizer_dir: str | Path | None,
    *,
    eos_id: int | None = None,
    pad_id: int | None = None,
    bos_id: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write config.json, model safetensors (sharded above 4 GiB) and the tokenizer files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {
        hf_name(k): v.detach().to(dtype).contiguous()
        for k, v in state_dict.items()
        if not (cfg.tie_embeddings and k == "head.weight")
    }
    (out / "config.json").write_text(
        json.dumps(_hf_config(cfg, eos_id, pad_id, bos_id, dtype), indent=2) + "\n"
    )
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    if len(shards) == 1:
        save_file(shards[0], out / "model.safetensors", metadata={"format": "pt"})
    else:
        weight_map = {}
        for i, shard in enumerate(shards):
            fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, out / fname, metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(shard, fname))
        index = {
            "metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
            "weight_map": weight_map,
        }
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    if tokenizer_dir is not None:
        copy_tokenizer_files(tokenizer_dir, out)
    return out


def copy_tokenizer_files(src: str | Path, dst: str | Path) -> list[str]:
    copied = []
    for name in TOKENIZER_FILES:
        if (Path(src) / name).is_file():
            shutil.copy2(Path(src) / name, Path(dst) / name)
            copied.append(name)
    return copied


def write_tokenizer_config(
    tokenizer_dir: str | Path, eos_id: int | None, pad_id: int | None, bos_id: int | None = None
) -> None:
    """A tokenizer_config.json beside a bare tokenizer.json, so AutoTokenizer loads it."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1 << 30}
    for key, token_id in (("bos_token", bos_id), ("eos_token", eos_id), ("pad_token", pad_id)):
        if token_id is not None:
            config[key] = tok.id_to_token(token_id)
    (Path(tokenizer_dir) / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def write_run_tokenizer(
    shards_dir: str | Path, tokenizer_dir: str | Path, eos_id: int, pad_id: int, bos_id: int | None
) -> None:
    """RUN/tokenizer: the shards' tokenizer, the ids the model is trained on (an init_from base's may
    differ: `tokenizer extend` appends tokens, `init_tokenizer: shards` replaces some). Its
    tokenizer_config.json when the shards folder has one, else one made from the manifest's ids. A
    file an earlier start left that the shards lack is removed (export copies every one there)."""
    from dataengine.io.paths import is_file, is_uri, join, read_bytes

    if not is_file(join(shards_dir, "tokenizer.json")):
        return
    Path(tokenizer_dir).mkdir(exist_ok=True)
    for name in TOKENIZER_FILES:
        source, target = join(shards_dir, name), Path(tokenizer_dir) / name
        if name in RUN_TOKENIZER_FILES and is_file(source):
            if is_uri(source):  # shards on object storage (s3://...): the run folder is local
                target.write_bytes(read_bytes(source))
            else:
                shutil.copy2(source, target)
        else:
            target.unlink(missing_ok=True)
    if not is_file(join(shards_dir, "tokenizer_config.json")):
        write_tokenizer_config(tokenizer_dir, eos_id, pad_id, bos_id)
