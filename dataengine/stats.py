"""Run statistics that add up: per-unit counters merged into run.json and read by the report."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field


def length_bin(n_chars: int) -> int:
    """Log2 bins of document length in characters (bin b holds [2^b - 1, 2^(b+1) - 1))."""
    return int(math.log2(n_chars + 1))


_COUNTERS = (
    "rejected_by_reason",
    "funnel_docs",
    "funnel_bytes",
    "stage_seconds",
    "langs_kept",
    "langs_rejected",
    "length_hist_kept",
    "length_hist_rejected",
    "stage_counters",
)


@dataclass
class RunStats:
    input: int = 0
    kept: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)
    input_bytes: int = 0
    kept_bytes: int = 0
    # documents / bytes still alive after each step (first step: "read" = everything read)
    funnel_docs: Counter = field(default_factory=Counter)
    funnel_bytes: Counter = field(default_factory=Counter)
    stage_seconds: Counter = field(default_factory=Counter)
    langs_kept: Counter = field(default_factory=Counter)
    langs_rejected: Counter = field(default_factory=Counter)
    length_hist_kept: Counter = field(default_factory=Counter)
    length_hist_rejected: Counter = field(default_factory=Counter)
    stage_counters: Counter = field(default_factory=Counter)

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    def merge(self, other: RunStats) -> None:
        self.input += other.input
        self.kept += other.kept
        self.input_bytes += other.input_bytes
        self.kept_bytes += other.kept_bytes
        for name in _COUNTERS:
            getattr(self, name).update(getattr(other, name))

    def to_dict(self) -> dict:
        return {
            "input": self.input,
            "kept": self.kept,
            "rejected": self.rejected,
            "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
            "input_bytes": self.input_bytes,
            "kept_bytes": self.kept_bytes,
            "funnel_docs": dict(self.funnel_docs),
            "funnel_bytes": dict(self.funnel_bytes),
            "stage_seconds": {k: round(v, 4) for k, v in self.stage_seconds.items()},
            "langs_kept": dict(self.langs_kept.most_common()),
            "langs_rejected": dict(self.langs_rejected.most_common()),
            "length_hist_kept": {str(k): v for k, v in sorted(self.length_hist_kept.items())},
            "length_hist_rejected": {str(k): v for k, v in sorted(self.length_hist_rejected.items())},
            "stage_counters": dict(sorted(self.stage_counters.items())),
        }

    @classmethod
    def from_dict(cls, data: dict) -> RunStats:
        stats = cls(
            input=data["input"],
            kept=data["kept"],
            input_bytes=data.get("input_bytes", 0),
            kept_bytes=data.get("kept_bytes", 0),
        )
        for name in _COUNTERS:
            counts = data.get(name, {})
            if name.startswith("length_hist"):
                counts = {int(k): v for k, v in counts.items()}
            getattr(stats, name).update(counts)
        return stats
