"""The trainer config: what `python -m train CONFIG` validates before any work starts.

`model:` may be a size name (configs/model/<name>.yaml), a path to a model YAML, or an inline mapping;
`--set model.n_layers=2` overrides any key after the size file is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dataengine.configio import (
    CONFIG_DIR,
    ConfigError,
    apply_overrides,
    read_yaml,
    resolve_config_path,
    validate,
)
from train.model import ModelConfig
from train.schedule import ScheduleConfig

MODEL_DIR = CONFIG_DIR / "model"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(Strict):
    shards: str  # token shards directory (DESIGN §3.3)
    # Share of sampled sequences per channel; {} = the natural mix. When given, every channel in the
    # shards must be named (0 excludes one) so no data is dropped by omission.
    channel_weights: dict[str, float] = Field(default_factory=dict)
    doc_mask: bool = False  # attention stops at document boundaries (spans from the shards)


class OptimConfig(Strict):
    max_steps: int = Field(ge=1)
    seed: int = Field(0, ge=0)
    global_batch_size: int = Field(8, ge=1)  # sequences per optimizer step, whatever the world size
    micro_batch_size: int = Field(4, ge=1)  # sequences per forward pass per process
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = Field(1.0, ge=0)  # 0 = no clipping (the norm is still measured)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False  # torch.compile each block (applied in train/parallelize.py)
    activation_checkpointing: bool = False
    # CPU fp32 linear layers on oneDNN's GEMM (auto: on x86-64 when torch has oneDNN) or aten's (MKL).
    cpu_linear: Literal["auto", "onednn", "aten"] = "auto"
    deterministic: bool = True  # torch.use_deterministic_algorithms: bitwise resume on CPU
    log_interval: int = Field(1, ge=1)


class EvalConfig(Strict):
    interval: int = Field(0, ge=0)  # steps between held-out evaluations; 0 = off
    # N held-out sequences, evenly spaced (a fixed set, comparable over time)
    sequences: int = Field(16, ge=1)
    # an eval config (e.g. configs/eval/inloop.yaml): per-domain bits-per-byte and probes at each interval
    hook: str | None = None


class CheckpointConfig(Strict):
    interval: int = Field(100, ge=1)
    keep_last: int = Field(3, ge=1)


class SpikeConfig(Strict):
    """A spike is a step whose loss or gradient norm is z_threshold std above the last `window` steps
    (skipped ones included); non-finite values are always skipped, enabled or not."""

    enabled: bool = True
    window: int = Field(128, ge=2)  # recent steps, skipped ones included, the z-score is measured against
    min_history: int | None = Field(None, ge=2)  # no verdicts before this many steps; None = max(64, warmup)
    z_threshold: float = Field(6.0, gt=0)  # one-sided: only values above the window's mean count
    policy: Literal["skip", "rollback"] = "skip"
    # This many spikes in a row: roll back to the last checkpoint (skipping those batches), or stop the
    # run with a message when there is none or max_rollbacks are used up.
    max_consecutive: int = Field(8, ge=1)
    max_rollbacks: int = Field(5, ge=0)  # after this many, a rollback spike is skipped instead


class UsageConfig(Strict):
    """The ledger records what this run consumed. Sampling depends only on the run's own history
    unless `prior_runs` names earlier runs whose use should push their data back in the order."""

    ledger: str | None = None  # SQLite file; None = RUN/usage.sqlite (this run's own)
    prior_runs: list[str] = Field(default_factory=list)  # earlier run directories on the same shards
    decay: float = Field(0.5, gt=0, le=1)  # a sequence with u prior uses is drawn with weight decay**u
    max_repeats: int | None = Field(None, ge=1)  # uses (prior + this run's epochs) after which data leaves


class MetricsConfig(Strict):
    tensorboard: bool = True
    peak_flops: float | None = None  # per device, for MFU; None = looked up from the GPU name


class TrainConfig(Strict):
    run_dir: str = Field(..., description="where checkpoints, metrics.jsonl and tb/ go (DESIGN §3.5)")
    model: ModelConfig = Field(
        ...,
        description="a size name (tiny, 125M, ... in configs/model/), a model YAML path, or the keys below",
    )
    data: DataConfig
    train: OptimConfig
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    spike: SpikeConfig = Field(default_factory=SpikeConfig)
    usage: UsageConfig = Field(default_factory=UsageConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    init_from: str | None = None  # Hugging Face Llama/Qwen2 directory: continued pretraining
    # init_from's tokenizer vs the shards': check = the same vocabulary, or the base's with tokens
    # appended (`dataengine tokenizer extend`), else refuse; shards = the shards' tokenizer is the one:
    # ids whose token both share keep the base's rows, every other id gets the mean row.
    init_tokenizer: Literal["check", "shards"] = "check"
    resume: str = "auto"  # auto = latest checkpoint in run_dir; never; or a checkpoint directory

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.train.global_batch_size % self.train.micro_batch_size:
            raise ValueError(
                f"train.global_batch_size ({self.train.global_batch_size}) must be a multiple of "
                f"train.micro_batch_size ({self.train.micro_batch_size})"
            )
        return self

    @property
    def spike_min_history(self) -> int:
        return self.spike.min_history or max(64, self.schedule.warmup_steps)


def _resolve_model(value: object, config_path: Path | None) -> object:
    """A model size name or YAML path becomes its mapping; mappings pass through."""
    if not isinstance(value, str):
        return value
    candidates = [MODEL_DIR / f"{value}.yaml", Path(value)]
    if config_path is not None:
        candidates.insert(1, config_path.parent / value)
    for candidate in candidates:
        if candidate.is_file():
            return read_yaml(candidate)
    sizes = sorted(p.stem for p in MODEL_DIR.glob("*.yaml"))
    where = config_path or "(defaults)"
    raise ConfigError(f"{where}: model: {value!r} is neither a size ({', '.join(sizes)}) nor a YAML file")


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read the YAML, expand `model:`, apply `--set` overrides, validate (errors name file and key)."""
    config_path = resolve_config_path(path) if path is not None else None
    data = read_yaml(config_path) if config_path is not None else {}
    data["model"] = _resolve_model(data.get("model", {}), config_path)
    model_override = [o for o in overrides or [] if o.partition("=")[0].strip() == "model"]
    for item in model_override:  # `--set model=125M` swaps the whole size before key overrides
        data["model"] = _resolve_model(item.partition("=")[2].strip(), config_path)
    apply_overrides(data, [o for o in overrides or [] if o not in model_override])
    origin = str(config_path) if config_path is not None else "(defaults)"
    if overrides:
        origin += " with --set " + " ".join(overrides)
    cfg = validate(TrainConfig, data, origin)
    if cfg.eval.hook and cfg.eval.interval:  # the in-loop eval's inputs: checked now, not after training
        from eval.checks import check_inloop_config

        check_inloop_config(cfg.eval.hook, f"{origin}: eval.hook")
    return cfg
