"""Learning-rate schedules as pure functions of the step, so resuming needs only the step number.

WSD (warmup-stable-decay): linear warmup, a constant plateau, then a decay over the last
`decay_fraction` of the run with a linear, cosine or 1-sqrt shape. Cosine: warmup then cosine to min_lr.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ScheduleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["wsd", "cosine"] = "wsd"
    warmup_steps: int = Field(100, ge=0)
    decay_fraction: float = Field(0.2, ge=0.0, le=1.0)  # wsd: share of max_steps spent decaying
    decay_shape: Literal["linear", "cosine", "1-sqrt"] = "1-sqrt"
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)  # final lr = lr * min_lr_ratio


def _decay(progress: float, shape: str) -> float:
    """Factor going from 1 at progress 0 to 0 at progress 1."""
    if shape == "linear":
        return 1.0 - progress
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - math.sqrt(progress)


def lr_factor(step: int, max_steps: int, cfg: ScheduleConfig) -> float:
    """Multiplier on the peak learning rate for optimizer step `step` (0-based)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.kind == "cosine":
        span = max(1, max_steps - cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / span)
        shape = "cosine"
    else:
        decay_steps = int(round(cfg.decay_fraction * max_steps))
        decay_start = max_steps - decay_steps
        if decay_steps == 0 or step < decay_start:
            return 1.0
        progress = min(1.0, (step - decay_start + 1) / decay_steps)
        shape = cfg.decay_shape
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * _decay(progress, shape)
