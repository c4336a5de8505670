"""Process group setup and the wrappers applied to the model from outside (as torchtitan does).

On CPU, linear layers first move to oneDNN's GEMM (dataengine/cpu_linear.py). Order per block:
activation checkpointing, then torch.compile, then FSDP2 `fully_shard`; the root is sharded last so
embeddings, final norm and head (tied or not) form one unit. bf16 parameters with fp32 gradient
reduction on GPU, fp32 throughout on CPU. A single CPU process skips sharding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from dataengine.cpu_linear import CpuLinear, use_onednn_linears


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_pref: str = "auto") -> Dist:
    """Join the process group that torchrun / Ray Train announced in the environment, if any."""
    use_cuda = device_pref == "cuda" or (device_pref == "auto" and torch.cuda.is_available())
    if device_pref == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device: cuda requested but no CUDA device is visible")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    # On GPUs, NCCL for CUDA tensors and gloo beside it for the few CPU ones (ledger counts, barriers).
    backend = "cpu:gloo,cuda:nccl" if use_cuda else "gloo"
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
    elif not dist.is_initialized() and use_cuda:  # one GPU: a group of one, so FSDP's bf16 policy applies
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    if dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), local_rank, device)
    return Dist(0, 1, 0, device)


def close_distributed() -> None:
    """Leave the process group before the process exits: a gloo rank that exits with the group's threads
    still alive can abort at interpreter shutdown ("terminate called without an active exception")."""
    if dist.is_initialized():
        dist.destroy_process_group()


def parallelize(
    model: nn.Module,
    dist_info: Dist,
    *,
    activation_checkpointing: bool,
    compile: bool,
    cpu_linear: CpuLinear = "auto",
) -> nn.Module:
    """Wrap `model.layers` blocks in place and shard; returns the model to train.

    `compile` compiles in place, so parameter names (and checkpoints) stay the same. A sharded model
    is compiled block by block (FSDP's hooks sit between blocks); an unsharded one (a single CPU
    process) as one graph, so that embedding, final norm and head fuse with the blocks too.
    """
    on_gpu = dist_info.device.type == "cuda"
    if not on_gpu:
        use_onednn_linears(model, cpu_linear)
    sharded = dist_info.world_size > 1 or on_gpu
    for i, block in enumerate(model.layers):
        if activation_checkpointing:
            block = checkpoint_wrapper(block, preserve_rng_state=False)
        if compile and sharded:
            block.compile()
        model.layers[i] = block
    if not sharded:
        if compile:
            model.compile()
        return model
    mesh = init_device_mesh(dist_info.device.type, (dist_info.world_size,))
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if on_gpu else None
    kwargs = {"mesh": mesh, **({"mp_policy": mp} if mp else {})}
    for i, block in enumerate(model.layers):
        # The last block's parameters are needed again right away by backward: keep them gathered.
        fully_shard(block, reshard_after_forward=i < len(model.layers) - 1, **kwargs)
    fully_shard(model, **kwargs)
    return model


def set_gradient_sync(model: nn.Module, enabled: bool) -> None:
    """Skip the reduce-scatter on all but the last micro-batch of a step."""
    if isinstance(model, FSDPModule):
        model.set_requires_gradient_sync(enabled)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
