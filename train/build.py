"""Build the model of a run: its shape, its construction on the meta device, sharding, then weights.

* Shape: a Hugging Face base's (`init_from`) or the YAML's, with the embedding sized for the shards:
  the manifest's `embedding_size` (the tokenizer's rows with headroom for `dataengine tokenizer
  extend`), else its vocabulary. A base is never shrunk (Qwen2 keeps 151936 rows for 151665 tokens).
* Meta device: the model is built without storage, sharded (train/parallelize.py), and only then
  materialised, so no process ever holds the whole model before its shards. `init_weights` draws
  every full tensor from the seeded generator and each process keeps its piece, so the initial
  weights are the same as an eager build's for any world size.
* A base's weights are read one tensor at a time (safetensors, memory-mapped) and copied into each
  (possibly sharded) parameter. Before any of it, the base's tokenizer is compared with the shards'
  (`init_tokenizer`): the model must read the ids the shards hold the way the base learned them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.distributed.tensor.experimental import implicit_replication

from dataengine.io.paths import is_file, join, read_bytes
from dataengine.pack.shards import MANIFEST, ShardReader
from train.config import TrainConfig
from train.hf import HFWeights, read_hf_config
from train.model import ModelConfig, Transformer
from train.parallelize import Dist, parallelize

EMBEDDING_ROWS = ("embed.weight", "head.weight")
CHECKPOINT_WRAPPER = "_checkpoint_wrapped_module."  # torch's activation checkpointing prefix
SHOWN_DIFFERENCES = 5


@dataclass(frozen=True)
class FreshRows:
    """Which rows of a base's embedding (and untied head) start from the mean of its rows."""

    ids: list[int]  # ids of the shards' tokenizer whose token the base's row does not stand for
    mean_of: int | None  # the mean is over the base rows [0, mean_of): its tokenizer's ids; None = all


def embedding_rows(reader: ShardReader) -> int:
    """Rows the shards' tokenizer needs: its embedding size (manifest `embedding_size`), else its vocabulary."""
    rows = reader.manifest.get("embedding_size") or reader.vocab_size
    if rows < reader.vocab_size:
        raise ValueError(
            f"{join(reader.root, MANIFEST)}: embedding_size {rows} < vocab_size {reader.vocab_size}"
        )
    return rows


def model_config(cfg: TrainConfig, reader: ShardReader) -> ModelConfig:
    """The model the run builds: the base's shape with init_from (model: is ignored), else the YAML's;
    vocab_size = the embedding rows the shards need unless the YAML sets it or a base has more."""
    rows = embedding_rows(reader)
    if cfg.init_from:
        model_cfg = read_hf_config(cfg.init_from)
        model_cfg = model_cfg.model_copy(update={"vocab_size": max(model_cfg.vocab_size, rows)})
    elif "vocab_size" in cfg.model.model_fields_set:
        model_cfg = cfg.model
        if model_cfg.vocab_size < reader.vocab_size:
            raise ValueError(
                f"model.vocab_size {model_cfg.vocab_size} < shards vocab_size {reader.vocab_size} "
                f"({join(reader.root, MANIFEST)})"
            )
    else:
        model_cfg = cfg.model.model_copy(update={"vocab_size": rows})
    if model_cfg.max_seq_len < reader.seq_len:
        raise ValueError(f"model.max_seq_len {model_cfg.max_seq_len} < shards seq_len {reader.seq_len}")
    return model_cfg


def _vocabulary(path: Path | str) -> dict[int, str]:
    """id -> token of a tokenizer.json (local or on object storage), added tokens included."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(read_bytes(path).decode("utf-8"))
    return {i: t for t, i in tokenizer.get_vocab(with_added_tokens=True).items()}


def check_tokenizers(base_dir: str | Path, shards_dir: str | Path, mode: str) -> FreshRows:
    """Compare the base's tokenizer.json with the shards'; refuse (mode `check`) unless every id of the
    base's vocabulary holds the same token in the shards' (equal, or the base's plus appended tokens).
    Mode `shards` takes the shards' tokenizer as it is. Either way, ids whose token the base's row does
    not stand for are returned, to start from the mean row."""
    base_path, shards_path = Path(base_dir) / "tokenizer.json", join(shards_dir, "tokenizer.json")
    if mode == "check":
        for path in (base_path, shards_path):
            if not is_file(path):
                raise ValueError(
                    f"init_tokenizer: check: {path} not found, so the base's and the shards' vocabularies "
                    f"cannot be compared; set init_tokenizer: shards to train on the shards' ids as they are"
                )
    base = _vocabulary(base_path) if base_path.is_file() else {}
    shards = _vocabulary(shards_path) if is_file(shards_path) else {}
    base_size = max(base, default=-1) + 1
    if mode == "check":
        differing = [i for i in range(base_size) if base.get(i) != shards.get(i)]
        if differing:
            shown = "; ".join(
                f"id {i}: {base.get(i)!r} vs {shards.get(i)!r}" for i in differing[:SHOWN_DIFFERENCES]
            )
            raise ValueError(
                f"init_from: the base's tokenizer {base_path} and the shards' {shards_path} differ at "
                f"{len(differing)} of the base's {base_size} ids ({shown}). Pack the shards with the "
                f"base's tokenizer (or one made from it by `dataengine tokenizer extend`), or set "
                f"init_tokenizer: shards to train on the shards' ids (ids whose token differs start "
                f"from the mean embedding)"
            )
    fresh = sorted(i for i, token in shards.items() if base.get(i) != token)
    return FreshRows(fresh, base_size or None)


def materialize(model: Transformer, device: torch.device | str) -> None:
    """Allocate a meta-built model's storage on `device`: parameters uninitialised, rope tables computed
    (derived from the config, they are in no checkpoint or base). to_empty gives each module a new
    tensor, which unties a tied head (FSDP2 keeps shared parameters shared): tie it again."""
    model.to_empty(device=device)
    if model.cfg.tie_embeddings and model.head.weight is not model.embed.weight:
        model.head.weight = model.embed.weight
    model.reset_rope()


def build_model(
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    dist_info: Dist,
    log: Callable[[str], None],
    initialise: bool = True,
) -> nn.Module:
    """The run's model, sharded and initialised: seeded init, or the init_from base's weights. With
    `initialise` off (a resume: the checkpoint overwrites every weight) only the storage is made."""
    fresh = check_tokenizers(cfg.init_from, cfg.data.shards, cfg.init_tokenizer) if cfg.init_from else None
    with torch.device("meta"):
        model = Transformer(model_cfg)
    model = parallelize(
        model,
        dist_info,
        activation_checkpointing=cfg.train.activation_checkpointing,
        compile=cfg.train.compile,
        cpu_linear=cfg.train.cpu_linear,
    )
    materialize(model, dist_info.device)
    if not initialise:
        return model
    with torch.no_grad(), implicit_replication():  # full tensors into sharded ones: each rank its piece
        if fresh is None:
            model.init_weights(cfg.train.seed)
        else:
            load_base(model, cfg.init_from, fresh)
            log(
                f"init_from {cfg.init_from}: {model_cfg.vocab_size} embedding rows, "
                f"{len(fresh.ids)} token ids start from the base's mean embedding"
            )
    return model


def _with_fresh_rows(value: torch.Tensor, rows: int, fresh: FreshRows) -> torch.Tensor:
    """A base's embedding (or head) grown to `rows`: the fresh ids' rows and every row past the base's
    are the mean of the base's vocabulary rows (not of the padding rows past it, never trained), so a
    new token starts as an average token, not as noise whose logit could dominate."""
    if rows == value.shape[0] and not fresh.ids:
        return value
    mean = value[: fresh.mean_of].mean(0)
    grown = torch.cat([value, mean.expand(rows - value.shape[0], -1)])
    grown[torch.tensor([i for i in fresh.ids if i < rows], dtype=torch.long)] = mean
    return grown


def load_base(model: nn.Module, hf_dir: str | Path, fresh: FreshRows) -> None:
    """Copy the base's tensors, one at a time, into the model's (possibly sharded) parameters."""
    params = [(name.replace(CHECKPOINT_WRAPPER, ""), p) for name, p in model.named_parameters()]
    with HFWeights(hf_dir) as weights:
        missing = weights.missing([name for name, _ in params])
        if missing:
            raise ValueError(
                f"init_from {hf_dir}: tensors missing: {missing[:5]}{' ...' if len(missing) > 5 else ''}"
            )
        for name, p in params:
            value = weights.get(name).to(device=p.device, dtype=p.dtype)
            if name in EMBEDDING_ROWS and value.shape[0] <= p.shape[0]:
                value = _with_fresh_rows(value, p.shape[0], fresh)
            if value.shape != p.shape:
                raise ValueError(
                    f"init_from: {weights.file(name)}: {weights.key(name)} has shape {tuple(value.shape)}, "
                    f"the model built from {Path(hf_dir) / 'config.json'} needs {tuple(p.shape)}"
                )
            p.copy_(value)
