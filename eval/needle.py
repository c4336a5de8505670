"""Needle-in-a-haystack (passkey) retrieval for base models, scored without an LLM judge.

A passkey sentence is spliced into real text at relative depth d of a context of L tokens, followed by a
question whose answer is the passkey. Two scores per trial: exact match of the greedy continuation, and
the rank of the true key's log-probability among random distractor keys (rank 1 = retrieved).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eval.config import NeedleConfig

if TYPE_CHECKING:  # the config checks import this module without loading torch
    from eval.models import Scorer


@dataclass(frozen=True)
class NeedleTemplate:
    needle: str  # {key} is replaced by the passkey
    question: str
    answer: str  # what follows the question: the key, with its leading space if the language uses one


TEMPLATES = {
    "en": NeedleTemplate(
        "\nThe pass key is {key}. Remember it. {key} is the pass key.\n",
        "\nWhat is the pass key? The pass key is",
        " {key}",
    ),
    "zh": NeedleTemplate("\n密码是{key}。记住它。{key}是密码。\n", "\n请回答：密码是", "{key}"),
}

HAYSTACK_CHARS = 400_000  # enough real text for the longest context at any tokenizer's rate


def read_haystack(paths: list[Path]) -> str:
    """Real text from .txt / .jsonl(.gz) files (JSONL rows contribute their `text` field)."""
    parts: list[str] = []
    size = 0
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"needle.haystack: {path} does not exist (relative to data_dir)")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            if ".jsonl" in path.suffixes:
                for line in fh:
                    text = json.loads(line).get("text", "") if line.strip() else ""
                    parts.append(text)
                    size += len(text)
                    if size >= HAYSTACK_CHARS:
                        break
            else:
                text = fh.read(HAYSTACK_CHARS)
                parts.append(text)
                size += len(text)
        if size >= HAYSTACK_CHARS:
            break
    return "\n".join(parts)


def _answer_ids(scorer: Scorer, question: str, answer: str) -> list[int]:
    return scorer.split_request(question, answer)[1]


def build_context(
    scorer: Scorer,
    hay_ids: list[int],
    template: NeedleTemplate,
    key: str,
    length: int,
    depth: float,
    offset: int,
) -> list[int] | None:
    """Exactly `length` tokens: start + haystack[:pos] + needle + haystack[pos:] + question; None if too short."""
    needle_ids = scorer.encode(template.needle.format(key=key))
    question_ids = scorer.encode(template.question)
    hay_len = length - len(scorer.start_ids) - len(needle_ids) - len(question_ids)
    if hay_len < 0 or offset + hay_len > len(hay_ids):
        return None
    hay = hay_ids[offset : offset + hay_len]
    pos = int(round(depth * hay_len))
    return scorer.start_ids + hay[:pos] + needle_ids + hay[pos:] + question_ids


def draw_keys(rng: np.random.Generator, digits: int, distractors: int) -> tuple[str, list[str]]:
    """The passkey and distinct distractor keys, all with `digits` digits."""
    keys = 10 ** (digits - 1) + rng.choice(9 * 10 ** (digits - 1), size=distractors + 1, replace=False)
    return str(keys[0]), sorted(str(k) for k in keys[1:])


def run_trial(
    scorer: Scorer, context: list[int], template: NeedleTemplate, key: str, distractors: list[str]
) -> dict:
    answers = [
        _answer_ids(scorer, template.question, template.answer.format(key=k)) for k in [key, *distractors]
    ]
    scores = scorer.score_tokens([context + a for a in answers], [len(context)] * len(answers))
    logprobs = [s.total for s in scores]
    generated = scorer.decode(scorer.greedy(context, max_new_tokens=len(answers[0]) + 2))
    return {
        "exact_match": generated.strip().startswith(key),
        "rank": 1 + sum(lp > logprobs[0] for lp in logprobs[1:]),
        "answer_logprob": logprobs[0],
    }


def evaluate_needle(scorer: Scorer, haystacks: dict[str, str], cfg: NeedleConfig) -> dict:
    """The L x d grid per language: exact-match rate, top-1 rate and mean rank of the true key."""
    rng = np.random.default_rng(cfg.seed)
    cells = []
    for lang, text in haystacks.items():
        template = TEMPLATES.get(lang)
        if template is None:
            raise ValueError(
                f"needle.haystack: no passkey template for language {lang!r} (have {sorted(TEMPLATES)})"
            )
        hay_ids = scorer.encode(text)
        longest_answer = _answer_ids(scorer, template.question, template.answer.format(key="9" * cfg.digits))
        for length in cfg.lengths:
            for depth in cfg.depths:
                cell = {"lang": lang, "length": length, "depth": depth}
                if length + len(longest_answer) > scorer.max_length:
                    cells.append(
                        {**cell, "skipped": f"longer than the model's context ({scorer.max_length})"}
                    )
                    continue
                trials = []
                for _ in range(cfg.trials):
                    key, others = draw_keys(rng, cfg.digits, cfg.distractors)
                    offset = int(rng.integers(0, max(1, len(hay_ids) - length)))
                    context = build_context(scorer, hay_ids, template, key, length, depth, offset)
                    if context is None:
                        break
                    trials.append(run_trial(scorer, context, template, key, others))
                if not trials:
                    cells.append({**cell, "skipped": "haystack too short for this length"})
                    continue
                cells.append(
                    {
                        **cell,
                        "trials": len(trials),
                        "exact_match": float(np.mean([t["exact_match"] for t in trials])),
                        "top1": float(np.mean([t["rank"] == 1 for t in trials])),
                        "mean_rank": float(np.mean([t["rank"] for t in trials])),
                        "answer_logprob": float(np.mean([t["answer_logprob"] for t in trials])),
                    }
                )
    scored = [c for c in cells if "skipped" not in c]
    return {
        "distractors": cfg.distractors,
        "cells": cells,
        "exact_match": float(np.mean([c["exact_match"] for c in scored])) if scored else None,
        "top1": float(np.mean([c["top1"] for c in scored])) if scored else None,
        "chance_top1": 1.0 / (cfg.distractors + 1),
    }


def plot_heatmap(result: dict, path: Path) -> Path:
    """Rows: languages; columns: exact match and top-1 rank rate; each panel lengths x depths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [c for c in result["cells"] if "skipped" not in c]
    langs = sorted({c["lang"] for c in result["cells"]})
    lengths = sorted({c["length"] for c in result["cells"]})
    depths = sorted({c["depth"] for c in result["cells"]})
    fig, axes = plt.subplots(len(langs), 2, figsize=(10, 2.8 * len(langs) + 0.6), squeeze=False)
    for row, lang in enumerate(langs):
        for col, metric in enumerate(("exact_match", "top1")):
            grid = np.full((len(lengths), len(depths)), np.nan)
            for c in cells:
                if c["lang"] == lang:
                    grid[lengths.index(c["length"]), depths.index(c["depth"])] = c[metric]
            ax = axes[row, col]
            image = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto", origin="lower")
            for i in range(len(lengths)):
                for j in range(len(depths)):
                    label = "n/a" if np.isnan(grid[i, j]) else f"{grid[i, j]:.2f}"
                    ax.text(j, i, label, ha="center", va="center", fontsize=8)
            ax.set_xticks(range(len(depths)), [f"{d:.2f}" for d in depths])
            ax.set_yticks(range(len(lengths)), [str(n) for n in lengths])
            ax.set_xlabel("needle depth")
            ax.set_ylabel("context length (tokens)")
            ax.set_title(f"{lang}: {'exact match' if metric == 'exact_match' else 'answer ranked first'}")
            fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
