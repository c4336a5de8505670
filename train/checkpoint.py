"""Checkpoints (DESIGN §3.5) with torch.distributed.checkpoint, crash-safe by construction.

Every process writes its shards into `checkpoints/.tmp-step-NNNNNNN`; rank 0 then adds meta.json
(step, tokens, RNG of every rank, trainer and sampler state, config hash) and, when the run names
earlier runs, sampler_prior.npy (their use counts per sequence, which order the epochs), renames
the directory to `step-NNNNNNN` and points `latest` at it (write + os.replace). A crash at any moment
leaves the previous complete checkpoint reachable; leftovers are removed by the next save.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

LATEST = "latest"
META = "meta.json"
PRIOR = "sampler_prior.npy"


def step_dir_name(step: int) -> str:
    return f"step-{step:07d}"


def _is_rank0() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict[str, Any]:
    """This process's RNG states, JSON-ready."""
    state = {
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
        "numpy": list(np.random.get_state(legacy=True)[1].tolist()),
        "numpy_pos": int(np.random.get_state(legacy=True)[2]),
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = base64.b64encode(torch.cuda.get_rng_state().numpy().tobytes()).decode()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(
        torch.from_numpy(np.frombuffer(base64.b64decode(state["torch"]), dtype=np.uint8).copy())
    )
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        cuda = np.frombuffer(base64.b64decode(state["cuda"]), dtype=np.uint8).copy()
        torch.cuda.set_rng_state(torch.from_numpy(cuda))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint: `latest` if it names one, else the highest step-* with meta.json."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    pointer = ckpt_dir / LATEST
    if pointer.is_file():
        named = ckpt_dir / pointer.read_text().strip()
        if (named / META).is_file():
            return named
    complete = sorted(p for p in ckpt_dir.glob("step-*") if (p / META).is_file())
    return complete[-1] if complete else None


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    meta: dict[str, Any],
    prior: np.ndarray | None,
    keep_last: int,
) -> Path:
    """Collective: every process calls it. Returns the published directory."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    final = ckpt_dir / step_dir_name(step)
    tmp = ckpt_dir / f".tmp-{final.name}"
    if _is_rank0():
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for stale in ckpt_dir.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
    _barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save(
        {"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp), no_dist=not dist.is_initialized()
    )
    ranks_rng = [None] * dist.get_world_size() if dist.is_initialized() else None
    if dist.is_initialized():
        dist.all_gather_object(ranks_rng, rng_state())
    else:
        ranks_rng = [rng_state()]
    if _is_rank0():
        if prior is not None:
            np.save(tmp / PRIOR, prior.astype(np.min_scalar_type(int(prior.max()))))
        full_meta = {**meta, "step": step, "rng": ranks_rng}
        (tmp / META).write_text(json.dumps(full_meta, indent=1))
        _publish(tmp, final)
        _prune(ckpt_dir, keep_last)
    _barrier()
    return final


def _publish(tmp: Path, final: Path) -> None:
    _fsync_dir(tmp)
    if final.exists():  # re-saving a step after `resume: never` in a used run_dir
        shutil.rmtree(final)
    os.rename(tmp, final)
    pointer_tmp = final.parent / f".{LATEST}.tmp"
    pointer_tmp.write_text(final.name + "\n")
    os.replace(pointer_tmp, final.parent / LATEST)
    _fsync_dir(final.parent)


def _prune(ckpt_dir: Path, keep_last: int) -> None:
    complete = sorted(p for p in ckpt_dir.glob("step-*") if (p / META).is_file())
    for old in complete[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def read_meta(path: str | Path) -> dict[str, Any]:
    return json.loads((Path(path) / META).read_text())


def load_checkpoint(
    path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Restore model (and optimizer) in place; reshards across world sizes. Returns (meta, prior use
    counts or None).

    RNG states are restored when the world size matches the one that saved; otherwise the caller
    reseeds (nothing in training draws from them; the sampler has its own (seed, step) generator).
    """
    path = Path(path)
    meta = read_meta(path)
    if optimizer is None:
        model_sd = model.state_dict()
        dcp.load({"model": model_sd}, checkpoint_id=str(path), no_dist=not dist.is_initialized())
        model.load_state_dict(model_sd)
    else:
        model_sd, optim_sd = get_state_dict(model, optimizer)
        state = {"model": model_sd, "optim": optim_sd}
        dcp.load(state, checkpoint_id=str(path), no_dist=not dist.is_initialized())
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    if len(meta["rng"]) == world:
        set_rng_state(meta["rng"][rank])
    prior = path / PRIOR
    return meta, np.load(prior).astype(np.int64) if prior.is_file() else None
