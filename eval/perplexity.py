"""Perplexity, bits-per-byte, word and byte perplexity per domain, by lm-evaluation-harness's rolling windows.

Each document is scored whole, as the harness's `loglikelihood_rolling` does (`get_rolling_token_windows`
with `make_disjoint_window`): the text is encoded as a request (Scorer.document_ids; with a tokenizer that
adds BOS itself the harness scores that BOS too, after its own start token, and so do we under the default
`context_prefix: tokenizer`), the first token is predicted after the document start token (BOS, else EOS),
the model reads at most `window` tokens per forward pass, and every token is scored exactly once. The first
window scores `window` tokens; each later one scores the next `stride` tokens and fills the rest of its
`window` with the tokens before them as context, the last window included. With stride = window (the
default, the harness's) windows are disjoint; a smaller stride gives each token more context.

The harness's metrics (lm_eval/api/metrics.py, wikitext's process_results), over a domain's documents:
word_perplexity = exp(NLL / words), byte_perplexity = exp(NLL / bytes), bits_per_byte = NLL / bytes / ln 2,
with words counted as the harness counts them, len(re.split(r"\\s+", text)) of the original text, and bytes
its UTF-8 length. Bits-per-byte compares models with different tokenizers; token perplexity exp(NLL /
tokens) does not.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from eval.heldout import HeldoutDoc
from eval.models import Scorer

_WHITESPACE = re.compile(r"\s+")


def count_words(text: str) -> int:
    """Words as the harness counts them for word_perplexity (ConfigurableTask.count_words)."""
    return len(_WHITESPACE.split(text))


def _exp(x: float) -> float:
    """exp that says inf instead of raising: word perplexity of text without spaces (Chinese: one "word" per
    paragraph) is exp of thousands of nats, a number the harness cannot print either."""
    try:
        return math.exp(x)
    except OverflowError:
        return float("inf")


@dataclass
class PerplexityTotals:
    docs: int = 0
    tokens: int = 0
    words: int = 0
    bytes: int = 0
    nll: float = 0.0  # nats, summed over tokens

    def add(self, other: PerplexityTotals) -> None:
        self.docs += other.docs
        self.tokens += other.tokens
        self.words += other.words
        self.bytes += other.bytes
        self.nll += other.nll

    def as_dict(self) -> dict[str, float]:
        row = asdict(self)
        row["ppl"] = _exp(self.nll / self.tokens) if self.tokens else float("nan")
        row["bpb"] = self.nll / (math.log(2) * self.bytes) if self.bytes else float("nan")
        row["bits_per_byte"] = row["bpb"]  # the harness's name for the same number
        row["byte_perplexity"] = _exp(self.nll / self.bytes) if self.bytes else float("nan")
        row["word_perplexity"] = _exp(self.nll / self.words) if self.words else float("nan")
        row["bits_per_token"] = self.nll / (math.log(2) * self.tokens) if self.tokens else float("nan")
        return row


def sliding_windows(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, score_from) per window over a sequence ids[0:n_tokens] whose ids[0] is the document start.

    The model reads ids[begin:end - 1] (at most `window` tokens) and positions begin + score_from .. end - 1
    are scored: positions 1 .. n_tokens - 1, each once. The first window scores `window` positions, each
    later one the next `stride` (the last one fewer) and begins as far back as the window allows.
    """
    if window < 1 or not 1 <= stride <= window:
        raise ValueError(f"need window >= 1 and 1 <= stride <= window, got window={window}, stride={stride}")
    windows: list[tuple[int, int, int]] = []
    scored_until, step = 1, window
    while scored_until < n_tokens:
        end = min(scored_until + step, n_tokens)
        begin = max(0, end - window - 1)
        windows.append((begin, end, scored_until - begin))
        scored_until, step = end, stride
    return windows


def document_totals(
    scorer: Scorer, docs: Sequence[HeldoutDoc], window: int, stride: int
) -> list[PerplexityTotals]:
    """Token, word and byte counts and summed NLL for every document (all windows batched together)."""
    sequences: list[list[int]] = []
    starts: list[int] = []
    owner: list[int] = []
    for index, doc in enumerate(docs):
        ids = scorer.document_ids(doc.text)
        for begin, end, score_from in sliding_windows(len(ids), window, stride):
            sequences.append(ids[begin:end])
            starts.append(score_from)
            owner.append(index)
    totals = [
        PerplexityTotals(docs=1, words=count_words(doc.text), bytes=len(doc.text.encode("utf-8")))
        for doc in docs
    ]
    for index, scores in zip(owner, scorer.score_tokens(sequences, starts), strict=True):
        totals[index].tokens += len(scores.logprobs)
        totals[index].nll -= scores.total
    return totals


def resolve_window(
    max_length: int, window: int | None, stride: int | None, max_window: int | None
) -> tuple[int, int]:
    """(window, stride): the window asked for, else the model's trained length, under an explicit cap and never
    over the model's length; the stride asked for, else the window."""
    chosen = window or max_length
    if max_window is not None:
        chosen = min(chosen, max_window)
    chosen = min(chosen, max_length)
    return chosen, min(stride or chosen, chosen)


def evaluate_perplexity(
    scorer: Scorer,
    docs: Sequence[HeldoutDoc],
    window: int | None = None,
    stride: int | None = None,
    max_window: int | None = None,
    samples: list[dict] | None = None,
) -> dict:
    """Per-domain and per-language tables plus the overall row, as JSON-ready dicts.

    `samples`, when given, receives one record per document (its counts and NLL), for samples.jsonl."""
    window, stride = resolve_window(scorer.max_length, window, stride, max_window)
    by_domain: dict[str, PerplexityTotals] = defaultdict(PerplexityTotals)
    by_lang: dict[str, PerplexityTotals] = defaultdict(PerplexityTotals)
    overall = PerplexityTotals()
    for doc, totals in zip(docs, document_totals(scorer, docs, window, stride), strict=True):
        by_domain[doc.domain].add(totals)
        by_lang[doc.lang or "unknown"].add(totals)
        overall.add(totals)
        if samples is not None:
            row = {k: v for k, v in asdict(totals).items() if k != "docs"}
            samples.append({"domain": doc.domain, "doc_id": doc.doc_id, "lang": doc.lang, **row})
    return {
        "window": window,
        "stride": stride,
        "model_max_length": scorer.max_length,
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
