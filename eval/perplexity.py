"""Sliding-window perplexity and bits-per-byte per domain.

Each document is scored in windows of `window` tokens moved by `stride`; every token is scored exactly once,
by the first window that contains it with the most context (at least window - stride tokens of it).
Bits-per-byte divides the total negative log-likelihood (in bits) by the UTF-8 bytes of the text, which
makes models with different tokenizers comparable; token perplexity is exp(mean NLL per token).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from eval.heldout import HeldoutDoc
from eval.models import Scorer


@dataclass
class PerplexityTotals:
    docs: int = 0
    tokens: int = 0
    bytes: int = 0
    nll: float = 0.0  # nats, summed over tokens

    def add(self, other: PerplexityTotals) -> None:
        self.docs += other.docs
        self.tokens += other.tokens
        self.bytes += other.bytes
        self.nll += other.nll

    def as_dict(self) -> dict[str, float]:
        row = asdict(self)
        row["ppl"] = math.exp(self.nll / self.tokens) if self.tokens else float("nan")
        row["bpb"] = self.nll / (math.log(2) * self.bytes) if self.bytes else float("nan")
        row["bits_per_token"] = self.nll / (math.log(2) * self.tokens) if self.tokens else float("nan")
        return row


def sliding_windows(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, score_from) per window over a sequence of n_tokens; score_from is window-relative.

    Position 0 (the document start token) is context only; positions 1..n-1 are each scored once.
    """
    if window < 2 or stride < 1:
        raise ValueError(f"window must be >= 2 and stride >= 1, got window={window}, stride={stride}")
    windows: list[tuple[int, int, int]] = []
    begin, scored_until = 0, 1
    while scored_until < n_tokens:
        end = min(begin + window, n_tokens)
        windows.append((begin, end, scored_until - begin))
        scored_until = end
        begin = min(begin + stride, scored_until - 1)
    return windows


def document_totals(
    scorer: Scorer, docs: Sequence[HeldoutDoc], window: int, stride: int
) -> list[PerplexityTotals]:
    """Token count, byte count and summed NLL for every document (all windows batched together)."""
    sequences: list[list[int]] = []
    starts: list[int] = []
    owner: list[int] = []
    for index, doc in enumerate(docs):
        ids = scorer.start_ids + scorer.encode(doc.text)
        for begin, end, score_from in sliding_windows(len(ids), window, stride):
            sequences.append(ids[begin:end])
            starts.append(score_from)
            owner.append(index)
    totals = [PerplexityTotals(docs=1, bytes=len(doc.text.encode("utf-8"))) for doc in docs]
    for index, scores in zip(owner, scorer.score_tokens(sequences, starts), strict=True):
        totals[index].tokens += len(scores.logprobs)
        totals[index].nll -= scores.total
    return totals


def evaluate_perplexity(
    scorer: Scorer,
    docs: Sequence[HeldoutDoc],
    window: int | None = None,
    stride: int = 512,
    max_window: int = 1024,
) -> dict:
    """Per-domain and per-language tables plus the overall row, as JSON-ready dicts."""
    window = min(window or max_window, scorer.max_length)
    stride = min(stride, window)
    by_domain: dict[str, PerplexityTotals] = defaultdict(PerplexityTotals)
    by_lang: dict[str, PerplexityTotals] = defaultdict(PerplexityTotals)
    overall = PerplexityTotals()
    for doc, totals in zip(docs, document_totals(scorer, docs, window, stride), strict=True):
        by_domain[doc.domain].add(totals)
        by_lang[doc.lang or "unknown"].add(totals)
        overall.add(totals)
    return {
        "window": window,
        "stride": stride,
        "domains": {name: t.as_dict() for name, t in sorted(by_domain.items())},
        "languages": {name: t.as_dict() for name, t in sorted(by_lang.items())},
        "overall": overall.as_dict(),
    }


def plot_domains(result: dict, path: Path) -> Path:
    """Bits-per-byte per domain (comparable across tokenizers), token perplexity in the labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["domains"])
    bpb = [result["domains"][n]["bpb"] for n in names]
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(names) + 2), 3.6))
    bars = ax.bar(range(len(names)), bpb, color="tab:blue")
    for bar, name in zip(bars, names, strict=True):
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height(),
            f"ppl {result['domains'][name]['ppl']:.3g}",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("bits per byte")
    ax.set_title(f"held-out bits-per-byte by domain (window {result['window']}, stride {result['stride']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
