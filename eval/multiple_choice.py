"""Multiple-choice benchmarks scored by log-likelihood, as lm-evaluation-harness does (zero-shot).

For each question every choice is scored as a continuation of the prompt: `acc` takes the choice with the
highest summed log-probability, `acc_norm` divides by the choice's length in characters first (which
removes the bias towards short answers). Prompts follow the harness's default task templates.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eval.config import MultipleChoiceConfig

if TYPE_CHECKING:  # the config checks import this module without loading torch
    from eval.models import Scorer


@dataclass(frozen=True)
class Question:
    context: str
    choices: list[str]  # continuations, each with its leading space
    gold: int


def read_rows(path: Path) -> Iterator[tuple[int, dict]]:
    if not path.is_file():
        raise FileNotFoundError(f"multiple_choice.tasks: benchmark file {path} not found (under data_dir)")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if line.strip():
                yield line_no, json.loads(line)


def _hellaswag_clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag(row: dict) -> Question:
    return Question(
        _hellaswag_clean(row["ctx"]), [" " + _hellaswag_clean(e) for e in row["endings"]], int(row["label"])
    )


def arc(row: dict) -> Question:
    labels = row["choices"]["label"]
    return Question(
        f"Question: {row['question']}\nAnswer:",
        [" " + t for t in row["choices"]["text"]],
        labels.index(row["answerKey"]),
    )


def piqa(row: dict) -> Question:
    return Question(
        f"Question: {row['goal']}\nAnswer:", [" " + row["sol1"], " " + row["sol2"]], int(row["label"])
    )


def mmlu(row: dict) -> Question:
    letters = "ABCD"
    subject = row["subject"].replace("_", " ")
    options = "".join(f"\n{letters[i]}. {c}" for i, c in enumerate(row["choices"]))
    context = (
        f"The following are multiple choice questions (with answers) about {subject}.\n\n"
        f"{row['question'].strip()}{options}\nAnswer:"
    )
    return Question(context, [f" {letters[i]}" for i in range(len(row["choices"]))], int(row["answer"]))


TASKS: dict[str, tuple[str, Callable[[dict], Question]]] = {
    "hellaswag": ("eval/hellaswag_klosax/hellaswag_val.jsonl.gz", hellaswag),
    "arc_easy": ("eval/olmo_hf_datasets/ai2_arc_ARC-Easy_validation.jsonl", arc),
    "arc_challenge": ("eval/olmo_hf_datasets/ai2_arc_ARC-Challenge_validation.jsonl", arc),
    "piqa": ("eval/olmo_hf_datasets/piqa_plain_text_validation.jsonl", piqa),
    "mmlu": ("eval/olmo_hf_datasets/mmlu_test.jsonl.gz", mmlu),
}


def task_file(task: str, data_dir: Path) -> Path:
    """The benchmark file of `task` under `data_dir` (the same relative path in eval/data and the full set)."""
    return data_dir / TASKS[task][0]


def load_questions(task: str, data_dir: Path, sample: int | None, seed: int) -> list[Question]:
    """A deterministic random sample of a task's questions; a malformed row is an error naming its line."""
    parse = TASKS[task][1]
    path = task_file(task, data_dir)
    questions = []
    for line_no, row in read_rows(path):
        try:
            questions.append(parse(row))
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}:{line_no}: malformed {task} row ({exc!r})") from exc
    if sample is not None and sample < len(questions):
        keep = np.random.default_rng(seed).choice(len(questions), size=sample, replace=False)
        questions = [questions[i] for i in sorted(keep)]
    return questions


def _stderr(hits: list[bool]) -> float:
    n = len(hits)
    p = sum(hits) / n if n else 0.0
    return math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else float("nan")


def score_questions(scorer: Scorer, questions: list[Question]) -> dict:
    requests = [(q.context, c) for q in questions for c in q.choices]
    scores = iter(scorer.score_continuations(requests))
    acc, acc_norm = [], []
    for q in questions:
        logprobs = np.array([next(scores).logprob for _ in q.choices])
        lengths = np.array([len(c) for c in q.choices], dtype=float)
        acc.append(int(np.argmax(logprobs)) == q.gold)
        acc_norm.append(int(np.argmax(logprobs / lengths)) == q.gold)
    n = len(questions)
    return {
        "n": n,
        "acc": sum(acc) / n if n else float("nan"),
        "acc_stderr": _stderr(acc),
        "acc_norm": sum(acc_norm) / n if n else float("nan"),
        "acc_norm_stderr": _stderr(acc_norm),
        "chance": float(np.mean([1 / len(q.choices) for q in questions])) if n else float("nan"),
    }


def evaluate_multiple_choice(scorer: Scorer, data_dir: Path, cfg: MultipleChoiceConfig) -> dict[str, dict]:
    """Each task of `cfg.tasks` on its file under `data_dir` (the config's data_dir)."""
    return {
        task: score_questions(scorer, load_questions(task, data_dir, cfg.sample, cfg.seed))
        for task in cfg.tasks
    }
