"""Run statistics that add up: per-unit counters merged into run.json and read by the report."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

UNKNOWN = "unknown"  # the language of rows rejected before language ID (io:*, or early exit)
# a split document's part (`#part k/n`, dataengine.io.split), then the last record offset and after it
# anything without a "."
_PART_SUFFIX = re.compile(r"#part \d+/\d+$")
_RECORD_SUFFIX = re.compile(r"^(?P<file>.+)(?:@\d+|[#:]row \d+)[^.]*$")


def length_bin(n_chars: int) -> int:
    """Log2 bins of document length in characters (bin b holds [2^b - 1, 2^(b+1) - 1))."""
    return int(math.log2(n_chars + 1))


def source_file(source: str | None) -> str:
    """The input file of a row's `source`: `path@offset`, `path#row N`, `memory:row N` (the Python API)
    or the bare path of a whole-file text, each perhaps with `#part k/n` (a split document)."""
    if not source:
        return UNKNOWN
    source = _PART_SUFFIX.sub("", source)
    m = _RECORD_SUFFIX.match(source)
    return m["file"] if m else source


@dataclass
class Breakdown:
    """Input, kept and rejections by reason of one group of rows (a language or a source file)."""

    input: int = 0
    kept: int = 0
    reasons: Counter = field(default_factory=Counter)

    @property
    def rejected(self) -> int:
        return sum(self.reasons.values())

    def add(self, reject: str | None) -> None:
        self.input += 1
        if reject:
            self.reasons[reject] += 1
        else:
            self.kept += 1

    def merge(self, other: Breakdown) -> None:
        self.input += other.input
        self.kept += other.kept
        self.reasons.update(other.reasons)

    def to_dict(self) -> dict:
        rejected = self.rejected
        reasons = sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        top = reasons[0] if reasons else None
        return {
            "input": self.input,
            "kept": self.kept,
            "rejected": rejected,
            "keep_rate": round(self.kept / self.input, 4) if self.input else None,
            "top_reason": top[0] if top else None,
            # the top reason's share of this group's rejections
            "top_reason_share": round(top[1] / rejected, 4) if top else None,
            "reasons": dict(reasons),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Breakdown:
        return cls(input=data["input"], kept=data["kept"], reasons=Counter(data.get("reasons", {})))


def breakdowns_to_dict(groups: dict[str, Breakdown]) -> dict:
    """Groups by input count, largest first (ties by name)."""
    return {k: g.to_dict() for k, g in sorted(groups.items(), key=lambda kv: (-kv[1].input, kv[0]))}


def _most_common(counts: dict[str, int]) -> dict[str, int]:
    return dict(Counter({k: n for k, n in counts.items() if n}).most_common())


def _merge_breakdowns(into: dict[str, Breakdown], other: dict[str, Breakdown]) -> None:
    for key, group in other.items():
        into.setdefault(key, Breakdown()).merge(group)


_BREAKDOWNS = ("by_language", "by_source", "by_category")
_COUNTERS = (
    "rejected_by_reason",
    "funnel_docs",
    "funnel_bytes",
    "stage_seconds",
    "length_hist_kept",
    "length_hist_rejected",
    "stage_counters",
    "category_tokens",
    "quality_bins",
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
    length_hist_kept: Counter = field(default_factory=Counter)
    length_hist_rejected: Counter = field(default_factory=Counter)
    stage_counters: Counter = field(default_factory=Counter)
    # per detected language ("unknown" before language ID) and per input file: input, kept, reasons
    by_language: dict[str, Breakdown] = field(default_factory=dict)
    by_source: dict[str, Breakdown] = field(default_factory=dict)
    # per category (the category stage's, or the input's): rows, and the kept rows' tokens (words + CJK
    # characters); kept rows per "lang|category|quality_bin"
    by_category: dict[str, Breakdown] = field(default_factory=dict)
    category_tokens: Counter = field(default_factory=Counter)
    quality_bins: Counter = field(default_factory=Counter)

    def count_row(self, row: dict, kept_tokens: int = 0) -> None:
        """One finished row in its language's, source file's and category's breakdown."""
        reject = row.get("reject")
        category = row.get("category") or UNKNOWN
        self.by_language.setdefault(row.get("lang") or UNKNOWN, Breakdown()).add(reject)
        self.by_source.setdefault(source_file(row.get("source")), Breakdown()).add(reject)
        self.by_category.setdefault(category, Breakdown()).add(reject)
        if not reject:
            self.category_tokens[category] += kept_tokens
            if row.get("quality_bin") is not None:
                self.quality_bins[f"{row.get('lang') or UNKNOWN}|{category}|{row['quality_bin']}"] += 1

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
        for name in _BREAKDOWNS:
            _merge_breakdowns(getattr(self, name), getattr(other, name))

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
            "langs_kept": _most_common({k: g.kept for k, g in self.by_language.items()}),
            "langs_rejected": _most_common({k: g.rejected for k, g in self.by_language.items()}),
            "length_hist_kept": {str(k): v for k, v in sorted(self.length_hist_kept.items())},
            "length_hist_rejected": {str(k): v for k, v in sorted(self.length_hist_rejected.items())},
            "stage_counters": dict(sorted(self.stage_counters.items())),
            "by_language": breakdowns_to_dict(self.by_language),
            "by_source": breakdowns_to_dict(self.by_source),
            "by_category": breakdowns_to_dict(self.by_category),
            "category_tokens": _most_common(self.category_tokens),
            "quality_bins": dict(sorted(self.quality_bins.items())),
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
        for name in _BREAKDOWNS:
            for key, group in data.get(name, {}).items():
                getattr(stats, name)[key] = Breakdown.from_dict(group)
        return stats
