"""The training loop: one global batch per step from the sampler, micro-batches per process, exact
per-token per-channel loss, clipping, AdamW, spike guard, metrics, checkpoints and the usage ledger.

Loss normalisation is global: every process divides its token-loss sum by the number of target tokens
in the whole global batch (times the world size, since FSDP averages gradients), so the update is the
same mathematics for any number of processes.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml

from dataengine.cpu_linear import OneDNNLinear
from dataengine.pack.shards import ShardReader
from dataengine.usage.ledger import UsageLedger, dataset_fingerprint
from train.build import build_model, model_config
from train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from train.config import TrainConfig
from train.data import Batch, SequenceSource, sequence_channels
from train.hf import write_run_tokenizer
from train.metrics import IntervalMeans, MetricsLog, flops_per_token, peak_flops
from train.parallelize import all_reduce_sum, set_gradient_sync, setup_distributed
from train.preemption import StopRequest
from train.sampler import DataExhaustedError, Sampler
from train.schedule import lr_factor
from train.spike import SpikeGuard
from train.usage import prior_counts, run_identity, run_ledger


class TrainingStoppedError(RuntimeError):
    """The spike guard saw spike.max_consecutive spikes in a row and could not roll back."""


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.dist = setup_distributed(cfg.train.device)
        self.device = self.dist.device
        self._deterministic_before = torch.are_deterministic_algorithms_enabled()
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=self.device.type == "cuda")
        self.run_dir = Path(cfg.run_dir)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.reader = ShardReader(cfg.data.shards, "train")
        self.source = SequenceSource(self.reader)
        self.seq_len = self.reader.seq_len
        self.heldout = self._heldout_source()
        self.eval_hook = None
        self.channels = self.reader.channels
        self._check_batching()

        checkpoint = self._resume_checkpoint()
        self.model_cfg = model_config(cfg, self.reader)
        torch.manual_seed(cfg.train.seed)
        self.model = build_model(cfg, self.model_cfg, self.dist, self._log, initialise=checkpoint is None)
        self.flops_per_token = flops_per_token(self.model, self.seq_len)
        self.peak = peak_flops(self.device, cfg.metrics.peak_flops)
        if swapped := sum(isinstance(m, OneDNNLinear) for m in self.model.modules()):
            self._log(
                f"{swapped} linear layers on oneDNN's CPU GEMM (train.cpu_linear: {cfg.train.cpu_linear})"
            )
        if cfg.data.doc_mask and self.reader.manifest.get("order", {}).get("name") == "similar":
            self._log(
                "the shards are packed in similarity order (In-Context Pretraining) but data.doc_mask is on: "
                "attention stops at each document, so the related documents of a row are never read"
            )
        # Compiled, the fp32 upcast, log-softmax and gather fuse into two passes over the [tokens, vocab]
        # logits instead of materialising fp32 copies of them (gigabytes per micro-batch at 32k vocab).
        self.token_losses = torch.compile(token_losses) if cfg.train.compile else token_losses
        self.optimizer = self._optimizer()

        self.dataset = dataset_fingerprint(cfg.data.shards)
        self.ledger, self.run_id = None, None
        if self.dist.is_main:  # one writer; the id lives in RUN/run.json, not in the path
            ledger_file = run_ledger(self.run_dir, cfg.usage.ledger)
            self.run_id = run_identity(self.run_dir, ledger_file)
            self.ledger = UsageLedger(ledger_file)
            self.ledger.register_run(self.run_id, self.dataset)
        spike = cfg.spike
        self.guard = SpikeGuard(spike.window, cfg.spike_min_history, spike.z_threshold, spike.enabled)
        self.step, self.tokens = 0, 0
        self.skip_steps: set[int] = set()
        self.prepared: tuple[int, Batch] | None = None  # (step, this rank's batch), fetched ahead
        self.rollbacks, self.consecutive_spikes = 0, 0
        self.pending_usage: list[tuple[int, list[tuple[int, int]]]] = []
        self.interval = IntervalMeans(len(self.channels))
        self.stop = StopRequest(self.run_dir, watch_file=self.dist.is_main)
        self.stopping: str | None = None
        self.sampler = Sampler(
            sequence_channels(self.reader),
            self.channels,
            seed=cfg.train.seed,
            batch_size=cfg.train.global_batch_size,
            channel_weights=cfg.data.channel_weights,
            decay=cfg.usage.decay,
            max_repeats=cfg.usage.max_repeats,
            prior=None if checkpoint is not None else self._prior_counts(),  # else the checkpoint's
        )
        if checkpoint is not None:
            self.restore(checkpoint)
        elif self.ledger is not None:
            self.ledger.truncate(self.run_id, 0)  # a fresh start forgets this run's old records
        self.metrics = (
            MetricsLog(self.run_dir, cfg.metrics.tensorboard, self.step) if self.dist.is_main else None
        )
        if self.dist.is_main:
            self._write_run_files()

    # ---- setup -------------------------------------------------------------------------------
    def _heldout_source(self) -> SequenceSource | None:
        if not self.cfg.eval.interval:
            return None
        if "heldout" not in self.reader.manifest["splits"]:
            raise ValueError(f"eval.interval is set but {self.cfg.data.shards} has no heldout split")
        return SequenceSource(ShardReader(self.cfg.data.shards, "heldout"))

    def _check_batching(self) -> None:
        t = self.cfg.train
        per_process = t.global_batch_size // self.dist.world_size
        if t.global_batch_size % self.dist.world_size or per_process % t.micro_batch_size:
            raise ValueError(
                f"train.global_batch_size {t.global_batch_size} must split into {self.dist.world_size} processes "
                f"x whole micro-batches of train.micro_batch_size {t.micro_batch_size}"
            )
        self.per_process = per_process
        self.grad_accum = per_process // t.micro_batch_size

    def _optimizer(self) -> torch.optim.Optimizer:
        t = self.cfg.train
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": t.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
        # The fused kernel updates each parameter in one pass with no full-size temporaries (the
        # foreach path allocates sqrt(v) etc. per step); it exists for CPU too since torch 2.4.
        return torch.optim.AdamW(groups, lr=t.lr, betas=t.betas, eps=t.eps, fused=True)

    def _resume_checkpoint(self) -> Path | None:
        resume = self.cfg.resume
        if resume == "never":
            return None
        if resume == "auto":
            return latest_checkpoint(self.run_dir)
        path = Path(resume)
        if not (path / "meta.json").is_file():
            raise FileNotFoundError(f"resume: {path} is not a checkpoint directory (no meta.json)")
        return path

    def _prior_counts(self) -> np.ndarray | None:
        """Use counts of the earlier runs usage.prior_runs names (rank 0 reads, every rank gets them)."""
        if not self.cfg.usage.prior_runs:
            return None
        counts = torch.zeros(len(self.source), dtype=torch.int64)
        if self.dist.is_main:
            found = prior_counts(self.cfg.usage.prior_runs, self.dataset, self.reader.shard_sequences)
            counts = torch.from_numpy(found)
        if dist.is_initialized():
            dist.broadcast(counts, src=0)
        return counts.numpy()

    def _write_run_files(self) -> None:
        """RUN/config.yaml with `model:` the model built (a base's shape, the final embedding size), not
        the YAML's; RUN/tokenizer the shards' tokenizer, the ids the model reads."""
        config = self.cfg.model_dump(mode="json")
        config["model"] = self.model_cfg.model_dump(mode="json")
        (self.run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        write_run_tokenizer(
            self.cfg.data.shards,
            self.run_dir / "tokenizer",
            self.reader.eos_id,
            self.reader.pad_id,
            self.reader.manifest.get("bos_id"),
        )

    # ---- checkpoints -------------------------------------------------------------------------
    def config_hash(self) -> str:
        return hashlib.sha256(self.cfg.model_dump_json().encode()).hexdigest()[:16]

    def save(self) -> Path:
        if self.ledger is not None:
            self.ledger.register_run(self.run_id, self.dataset)
            self.ledger.record(self.run_id, self.pending_usage)
        self.pending_usage = []
        meta = {
            "tokens": self.tokens,
            "seed": self.cfg.train.seed,
            "world_size": self.dist.world_size,
            "config_hash": self.config_hash(),
            "model": self.model_cfg.model_dump(),
            "dataset": self.dataset,
            "eos_id": self.reader.eos_id,
            "pad_id": self.reader.pad_id,
            "bos_id": self.reader.manifest.get("bos_id"),
            "sampler": self.sampler.state_dict(self.step),
            "spike_guard": self.guard.state_dict(),
            "skip_steps": sorted(self.skip_steps),
            "rollbacks": self.rollbacks,
            "consecutive_spikes": self.consecutive_spikes,
        }
        return save_checkpoint(
            self.run_dir,
            self.step,
            self.model,
            self.optimizer,
            meta,
            self.sampler.prior,
            self.cfg.checkpoint.keep_last,
        )

    def restore(self, path: Path) -> None:
        """Load a checkpoint into the live trainer and cut the ledger back to its step."""
        meta, prior = load_checkpoint(path, self.model, self.optimizer)
        if meta.get("dataset") != self.dataset:
            raise ValueError(f"{path}: saved on dataset {meta.get('dataset')}, data.shards is {self.dataset}")
        if "sampler" not in meta:
            raise ValueError(
                f"{path}: written by an older trainer (no sampler state); start with resume: never"
            )
        self.step, self.tokens = meta["step"], meta["tokens"]
        self.sampler.load_state_dict(meta["sampler"], prior)
        self.guard.load_state_dict(meta["spike_guard"])
        self.skip_steps |= set(meta["skip_steps"])
        self.rollbacks = max(self.rollbacks, meta["rollbacks"])
        self.consecutive_spikes = meta["consecutive_spikes"]
        self.pending_usage = []
        self.prepared = None
        self.interval = IntervalMeans(len(self.channels))
        if self.ledger is not None:
            self.ledger.truncate(self.run_id, self.step)
        if len(meta["rng"]) != self.dist.world_size:
            torch.manual_seed(self.cfg.train.seed + self.step * 1000 + self.dist.rank)
        self._log(f"resumed from {path} at step {self.step}")

    # ---- the loop ----------------------------------------------------------------------------
    def train(self, stop_at: int | None = None) -> list[dict[str, Any]]:
        """Train to train.max_steps (or stop, unsaved, after step `stop_at`: an interruption). A stop
        request (SIGTERM, SIGUSR1, RUN/STOP) saves a checkpoint after the current step and returns."""
        end = self.cfg.train.max_steps if stop_at is None else min(stop_at, self.cfg.train.max_steps)
        records = []
        while self.step < end:
            record = self.train_step()
            records.append(record)
            self._log_step(record)
            if record.get("spike") == "rollback":  # back at a checkpointed step: nothing new to save
                continue
            if self.cfg.eval.interval and self.step % self.cfg.eval.interval == 0:
                evaluated = {"step": self.step, "tokens": self.tokens, **self.evaluate()}
                if self.metrics is not None:
                    self.metrics.log(evaluated)
                    self._log(self._summary(evaluated))
            last = self.step == self.cfg.train.max_steps
            if self.step % self.cfg.checkpoint.interval == 0 or last or self.stopping:
                self.save()
            if self.stopping:
                self.stop.clear()
                self._log(
                    f"stop requested ({self.stopping}): checkpoint saved at step {self.step}; "
                    "run the same command to resume"
                )
                break
        return records

    def _log_step(self, record: dict[str, Any]) -> None:
        """metrics.jsonl: interval means every log_interval steps, spikes as they happen."""
        if "spike" in record or record.get("skipped"):
            self.interval.skip()
        if self.metrics is None:
            return
        if "spike" in record:
            self.metrics.log(record)
            self._log(self._summary(record))
        if record["step"] % self.cfg.train.log_interval == 0 or self.stopping:
            means = self.interval.flush(self.channels)
            mfu = self._mfu(means.get("tokens_per_s"))
            line = {
                "step": self.step,
                "tokens": self.tokens,
                "lr": self._lr(self.step - 1),
                **means,
                "mfu": mfu,
            }
            self.metrics.log(line)
            self._log(self._summary(line))

    def _mfu(self, tokens_per_s: float | None) -> float | None:
        """Model FLOPs utilisation (train/metrics.py); None without a peak (CPU) or a rate."""
        if not (self.peak and tokens_per_s):
            return None
        return self.flops_per_token * tokens_per_s / (self.peak * self.dist.world_size)

    def _lr(self, step: int) -> float:
        return self.cfg.train.lr * lr_factor(step, self.cfg.train.max_steps, self.cfg.schedule)

    def train_step(self) -> dict[str, Any]:
        s = self.step
        indices, batch = self._take_prepared(s)
        if s + 1 in self.skip_steps:  # a batch a rollback ruled out
            self.step += 1
            return {"step": self.step, "tokens": self.tokens, "skipped": True}
        start = time.perf_counter()
        if batch is None:
            batch = self.fetch(self._mine(indices), s)
        lr = self._lr(s)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        n_targets = all_reduce_sum((batch.target_channels >= 0).sum().to(self.device, torch.float64))
        sums = torch.zeros(2, len(self.channels) + 1, dtype=torch.float64, device=self.device)
        mb = self.cfg.train.micro_batch_size
        for i in range(self.grad_accum):
            micro = Batch(*(t[i * mb : (i + 1) * mb] for t in vars(batch).values())).to(self.device)
            set_gradient_sync(self.model, i == self.grad_accum - 1)
            token_loss = self._token_loss(micro)
            (token_loss.sum() * self.dist.world_size / n_targets.float()).backward()
            self._accumulate(sums, token_loss.detach(), micro.target_channels)
        # The device is still running this step's backward: draw and fetch the next step's batch
        # meanwhile (a skipped step consumes its batch too, so the draw does not depend on the verdict).
        self._prepare(s + 1)
        grad_norm = self._clip()
        all_reduce_sum(sums)
        loss = sums[0, 1:].sum() / n_targets
        spike = self._gate(loss, grad_norm)
        self.optimizer.step()  # a no-op where the gate is shut (AdamW's found_inf, on the device)
        self.optimizer.zero_grad(set_to_none=True)
        stop = torch.tensor([float(self.stop.local())], device=self.device)
        all_reduce_sum(stop)
        # The step's one host read, after the update is queued: loss, norm, verdict, stop requests and
        # the per-channel sums.
        status = torch.cat(
            [torch.stack([loss, grad_norm.double(), spike.double()]), stop.double(), sums.flatten()]
        )
        status = status.cpu()
        loss_value, norm_value, sums = float(status[0]), float(status[1]), status[4:].view_as(sums)
        if status[3] > 0:
            self.stopping = self.stop.reason or "another rank was asked to stop"
        if status[2] > 0:
            z = self.guard.z_scores(loss_value, norm_value)
            self.guard.observe(loss_value, norm_value)
            return self._on_spike(s, indices, loss_value, norm_value, z)
        self.guard.observe(loss_value, norm_value)
        self.consecutive_spikes = 0
        self.pending_usage.append((s + 1, [self.source.sequence_id(int(i)) for i in indices]))
        step_tokens = self.cfg.train.global_batch_size * self.seq_len
        self.step, self.tokens = s + 1, self.tokens + step_tokens
        elapsed = time.perf_counter() - start
        self.interval.add(sums, norm_value, elapsed, step_tokens)
        tokens_per_s = step_tokens / elapsed
        record: dict[str, Any] = {"step": self.step, "tokens": self.tokens, "loss": loss_value, "lr": lr}
        record.update({"grad_norm": norm_value, "tokens_per_s": tokens_per_s})
        record["mfu"] = self._mfu(tokens_per_s)
        record.update(self._channel_losses(sums, "loss"))
        return record

    def _gate(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> torch.Tensor:
        """Shut the optimizer step on the guard's device-side verdict: fused AdamW skips its whole
        update (moments and step count too) where found_inf is 1."""
        spike = self.guard.is_spike(loss, grad_norm)
        self.optimizer.found_inf = spike.float()
        return spike

    def fetch(self, indices: np.ndarray, step: int) -> Batch:
        """This process's slice of the global batch of (0-based) `step`; a seam tests use to inject a
        corrupted batch."""
        return self.source.batch(indices)

    def _mine(self, indices: np.ndarray) -> np.ndarray:
        rank = self.dist.rank
        return indices[rank * self.per_process : (rank + 1) * self.per_process]

    def _take_prepared(self, step: int) -> tuple[np.ndarray, Batch | None]:
        """The global batch indices of `step` and, when fetched during the previous step, its batch."""
        prepared, self.prepared = self.prepared, None
        indices = self.sampler.draw(step)
        if prepared is not None and prepared[0] == step:
            return indices, prepared[1]
        return indices, None

    def _prepare(self, step: int) -> None:
        """Draw and fetch `step`'s batch ahead, so the device does not wait on reading shards."""
        if step >= self.cfg.train.max_steps:
            return
        try:
            indices = self.sampler.draw(step)
        except DataExhaustedError:
            return  # raised again when that step draws for itself
        self.prepared = (step, self.fetch(self._mine(indices), step))

    def _token_loss(self, batch: Batch) -> torch.Tensor:
        doc_ids = batch.doc_ids if self.cfg.data.doc_mask else None
        return self.token_losses(self.model(batch.inputs, doc_ids), batch.targets, batch.target_channels)

    def _accumulate(self, sums: torch.Tensor, token_loss: torch.Tensor, channels: torch.Tensor) -> None:
        """Row 0: loss sum per channel, row 1: token count per channel; column 0 is padding."""
        slot = (channels + 1).flatten()
        sums[0].index_add_(0, slot, token_loss.flatten().double())
        sums[1].index_add_(0, slot, torch.ones_like(slot, dtype=torch.float64))

    def _channel_losses(self, sums: torch.Tensor, prefix: str) -> dict[str, float]:
        out = {}
        for c, name in enumerate(self.channels):
            if sums[1, c + 1] > 0:
                out[f"{prefix}/{name}"] = float(sums[0, c + 1] / sums[1, c + 1])
        return out

    def _clip(self) -> torch.Tensor:
        """The total gradient norm (before clipping), left on the device."""
        max_norm = self.cfg.train.grad_clip or math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm, foreach=True)
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        return norm

    def _on_spike(
        self, s: int, indices: np.ndarray, loss: float, grad_norm: float, z: tuple[float, float]
    ) -> dict[str, Any]:
        """Skip (the update was never applied), roll back, or stop after too many spikes in a row."""
        spike = self.cfg.spike
        self.consecutive_spikes += 1
        too_many = self.consecutive_spikes >= spike.max_consecutive
        checkpoint = latest_checkpoint(self.run_dir) if spike.policy == "rollback" or too_many else None
        can_roll_back = checkpoint is not None and self.rollbacks < spike.max_rollbacks
        action = "skip"
        if can_roll_back and (spike.policy == "rollback" or too_many):
            action = "rollback"
        elif too_many:
            action = "stop"
        event = {
            "step": s + 1,
            "action": action,
            "loss": loss,
            "grad_norm": grad_norm,
            "z_loss": z[0],
            "z_grad": z[1],
            "consecutive": self.consecutive_spikes,
            "sequences": self.source.describe(indices),
        }
        if self.dist.is_main:
            with (self.run_dir / "spikes.jsonl").open("a") as f:
                f.write(json.dumps(event) + "\n")
        self._log(
            f"spike at step {s + 1}: loss {loss:.4f} (z {z[0]:.1f}), grad_norm {grad_norm:.3g} (z {z[1]:.1f}) -> {action}"
        )
        if action == "stop":
            why = (
                "no checkpoint to roll back to" if checkpoint is None else f"{self.rollbacks} rollbacks used"
            )
            raise TrainingStoppedError(
                f"step {s + 1}: {self.consecutive_spikes} spikes in a row (spike.max_consecutive) and {why}; "
                f"the run stops. Each is in {self.run_dir / 'spikes.jsonl'}. Lower train.lr or raise "
                "spike.z_threshold, then resume (the last checkpoint is intact)"
            )
        if action == "rollback":  # the batches of this run of spikes are ruled out on the replay
            self.skip_steps.update(range(s + 2 - self.consecutive_spikes, s + 2))
            self.rollbacks += 1
            self.restore(checkpoint)
        else:
            self.step += 1
        return {"step": s + 1, "tokens": self.tokens, "loss": loss, "grad_norm": grad_norm, "spike": action}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Held-out loss per channel on a fixed set (eval.sequences held-out sequences, evenly spaced),
        plus the eval module's metrics when eval.hook names an eval config."""
        out = self._heldout_loss() if self.heldout is not None else {}
        if self.cfg.eval.hook:
            out.update(self._eval_hook()(self.model, self.step))
        return out

    def _eval_hook(self):
        """The eval module's in-loop hook, built on first use (after RUN/tokenizer is written)."""
        if self.eval_hook is None:
            from eval.hook import InLoopEval

            self.eval_hook = InLoopEval(
                self.cfg.eval.hook, self.run_dir / "tokenizer", self.model_cfg.max_seq_len, self.device
            )
        return self.eval_hook

    @torch.no_grad()
    def _heldout_loss(self) -> dict[str, float]:
        assert self.heldout is not None
        total = len(self.heldout)
        n = min(self.cfg.eval.sequences, total)
        # evenly spaced over the split: held-out shards run channel by channel, so the first n would
        # measure one channel only
        picks = np.unique(np.linspace(0, total - 1, n).round().astype(np.int64)).tolist() if n else []
        n = len(picks)
        world, mb = self.dist.world_size, self.cfg.train.micro_batch_size
        mine = picks[self.dist.rank :: world]
        per_rank = math.ceil(math.ceil(n / world) / mb) * mb  # equal forward calls on every rank (FSDP)
        weights = [1.0] * len(mine) + [0.0] * (per_rank - len(mine))
        mine += [0] * (per_rank - len(mine))
        sums = torch.zeros(2, len(self.channels) + 1, dtype=torch.float64, device=self.device)
        for i in range(0, per_rank, mb):
            batch = self.heldout.batch(np.array(mine[i : i + mb]))
            keep = torch.tensor(weights[i : i + mb])[:, None].expand_as(batch.target_channels) > 0
            batch.target_channels = torch.where(keep, batch.target_channels, -1)
            batch = batch.to(self.device)
            self._accumulate(sums, self._token_loss(batch), batch.target_channels)
        all_reduce_sum(sums)
        out = {"heldout/loss": float(sums[0, 1:].sum() / sums[1, 1:].sum().clamp(min=1))}
        out.update(self._channel_losses(sums, "heldout/loss"))
        return out

    # ---- output ------------------------------------------------------------------------------
    def _summary(self, record: dict[str, Any]) -> str:
        parts = [f"step {record['step']}"]
        for key in ("loss", "heldout/loss", "lr", "grad_norm", "tokens_per_s", "mfu", "skipped", "spike"):
            value = record.get(key)
            if value is not None and not (key == "skipped" and value == 0):
                parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
        return "  ".join(parts)

    def _log(self, message: str) -> None:
        if self.dist.is_main:
            print(f"[train] {message}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.stop.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.ledger is not None:
            self.ledger.close()
        torch.use_deterministic_algorithms(self._deterministic_before)


def token_losses(logits: torch.Tensor, targets: torch.Tensor, target_channels: torch.Tensor) -> torch.Tensor:
    """Per-token fp32 cross-entropy [B, T]; zero where the target is padding (channel < 0)."""
    flat = F.cross_entropy(
        logits.float().flatten(0, 1), targets.flatten(), reduction="none", ignore_index=-100
    ).view_as(targets)
    return flat * (target_channels >= 0)


def run(cfg: TrainConfig, stop_at: int | None = None) -> list[dict[str, Any]]:
    """Train to completion (or `stop_at`); returns this process's step records."""
    trainer = Trainer(cfg)
    try:
        return trainer.train(stop_at)
    finally:
        trainer.close()
