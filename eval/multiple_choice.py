"""Multiple-choice benchmarks scored by log-likelihood exactly as lm-evaluation-harness 0.4 does (zero-shot).

Each task's prompt and choices follow the harness's task YAML (lm_eval/tasks/<task>/): the choices are what its
`doc_to_choice` gives, and each is scored as the continuation `target_delimiter + choice` (" " + choice) of the
prompt. `acc` takes the choice with the highest summed log-probability; `acc_norm` first divides by
`len(choice)`, the choice's length in characters without the delimiter, as the harness's `process_results`
does (it measures the strings `doc_to_choice` returns). A limit takes the first N items, as `--limit` does.
tests/test_eval_lm_eval_agreement.py runs the harness itself on the same items and compares every number.
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

TARGET_DELIMITER = " "  # the harness's default target_delimiter, used by every task here


@dataclass(frozen=True)
class Question:
    context: str
    choices: list[str]  # as the harness's doc_to_choice returns them: no leading delimiter
    gold: int
    delimiter: str = TARGET_DELIMITER

    @property
    def continuations(self) -> list[str]:
        """The strings scored after the context (the harness's request arguments)."""
        return [self.delimiter + choice for choice in self.choices]


def read_rows(path: Path) -> Iterator[tuple[int, dict]]:
    if not path.is_file():
        raise FileNotFoundError(f"multiple_choice.tasks: benchmark file {path} not found (under data_dir)")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if line.strip():
                yield line_no, json.loads(line)


def hellaswag_preprocess(text: str) -> str:
    """lm_eval/tasks/hellaswag/utils.py `preprocess`: WikiHow's bracketed markers out, double spaces single."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


# The unfinished sentence that ends a context: what follows the last sentence end (., ! or ?, then any
# closing quotes or brackets, then whitespace) and itself holds no sentence end.
_LAST_FRAGMENT = re.compile(r"^(.*[.!?][\"')\]]*)\s+([^.!?]*\S)$", re.DOTALL)


def split_hellaswag_ctx(ctx: str) -> tuple[str, str, str]:
    """(activity_label, ctx_a, ctx_b) from a row that stores only `ctx` = "label: ctx_a ctx_b".

    The bundled file (a conversion of klosax/hellaswag_text_data) holds the harness's preprocessed text
    before its capitalisation of ctx_b. HellaSwag's ctx_b is the unfinished sentence the endings complete
    ("he", "the lady", "then he") or empty; so ctx_b is taken as the words after the last sentence end when
    the context stops mid-sentence, and empty when it ends a sentence. Rows with ctx_a and ctx_b (the
    dataset's own schema, e.g. Rowan/hellaswag) need none of this."""
    label, sep, rest = ctx.partition(": ")
    if not sep:
        label, rest = "", ctx
    rest = rest.strip()
    if not rest or re.search(r"[.!?][\"')\]]*$", rest):
        return label, rest, ""
    match = _LAST_FRAGMENT.match(rest)
    if match is None:  # one unfinished sentence: all of it is ctx_b
        return label, "", rest
    return label, match.group(1), match.group(2)


def hellaswag(row: dict) -> Question:
    """lm_eval/tasks/hellaswag: process_docs' query = preprocess(activity_label + ": " + ctx_a + " " +
    ctx_b.capitalize()), choices = preprocess(ending) each, gold = label."""
    if "ctx_a" in row:
        label, ctx_a, ctx_b = row["activity_label"], row["ctx_a"], row["ctx_b"]
    else:
        label, ctx_a, ctx_b = split_hellaswag_ctx(row["ctx"])
    ctx = ctx_a + " " + ctx_b.capitalize()
    query = hellaswag_preprocess(label + ": " + ctx)
    return Question(query, [hellaswag_preprocess(e) for e in row["endings"]], int(row["label"]))


def arc(row: dict) -> Question:
    """lm_eval/tasks/arc/arc_easy.yaml (arc_challenge includes it): "Question: {{question}}\\nAnswer:",
    choices `choices.text`, gold `choices.label.index(answerKey)`."""
    labels = row["choices"]["label"]
    return Question(
        f"Question: {row['question']}\nAnswer:", list(row["choices"]["text"]), labels.index(row["answerKey"])
    )


def piqa(row: dict) -> Question:
    """lm_eval/tasks/piqa/piqa.yaml: "Question: {{goal}}\\nAnswer:", choices [sol1, sol2], gold label."""
    return Question(f"Question: {row['goal']}\nAnswer:", [row["sol1"], row["sol2"]], int(row["label"]))


def mmlu(row: dict) -> Question:
    """lm_eval/tasks/mmlu/default: the subject's description ("... about {subject with spaces}.\\n\\n") then
    "{{question.strip()}}\\nA. {{choices[0]}}\\nB. ...\\nAnswer:", choices A-D, gold `answer`."""
    letters = "ABCD"
    subject = row["subject"].replace("_", " ")
    options = "".join(f"\n{letters[i]}. {c}" for i, c in enumerate(row["choices"]))
    context = (
        f"The following are multiple choice questions (with answers) about {subject}.\n\n"
        f"{row['question'].strip()}{options}\nAnswer:"
    )
    return Question(context, list(letters[: len(row["choices"])]), int(row["answer"]))


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


def read_questions(task: str, path: Path, limit: int | None = None) -> list[Question]:
    """The first `limit` questions of a task file (all without a limit), in file order, as the harness's
    --limit takes them; a malformed row is an error naming its line."""
    parse = TASKS[task][1]
    questions = []
    for line_no, row in read_rows(path):
        if limit is not None and len(questions) >= limit:
            break
        try:
            questions.append(parse(row))
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}:{line_no}: malformed {task} row ({exc!r})") from exc
    return questions


def load_questions(task: str, data_dir: Path, limit: int | None = None) -> list[Question]:
    """The first `limit` questions of `task`'s file under `data_dir`."""
    return read_questions(task, task_file(task, data_dir), limit)


def _stderr(hits: list[bool]) -> float:
    """The harness's mean_stderr: sample standard deviation over sqrt(n)."""
    n = len(hits)
    p = sum(hits) / n if n else 0.0
    return math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else float("nan")


def score_items(scorer: Scorer, questions: list[Question]) -> list[dict]:
    """One record per question, with the fields of the harness's logged samples: per-choice log-likelihoods
    and greediness, the predictions by acc and acc_norm, and whether each was right."""
    requests = [(q.context, c) for q in questions for c in q.continuations]
    scores = iter(scorer.score_continuations(requests))
    items = []
    for index, q in enumerate(questions):
        choice_scores = [next(scores) for _ in q.choices]
        logprobs = np.array([s.logprob for s in choice_scores])
        lengths = np.array([float(len(c)) for c in q.choices])
        pred, pred_norm = int(np.argmax(logprobs)), int(np.argmax(logprobs / lengths))
        items.append(
            {
                "doc_id": index,
                "context": q.context,
                "choices": q.choices,
                "target_delimiter": q.delimiter,
                "loglikelihoods": logprobs.tolist(),
                "is_greedy": [s.greedy for s in choice_scores],
                "n_tokens": [s.n_tokens for s in choice_scores],
                "gold": q.gold,
                "pred": pred,
                "pred_norm": pred_norm,
                "acc": float(pred == q.gold),
                "acc_norm": float(pred_norm == q.gold),
            }
        )
    return items


def summarize(items: list[dict]) -> dict:
    """acc and acc_norm with their standard errors (the harness's aggregation), and the chance level."""
    acc = [bool(item["acc"]) for item in items]
    acc_norm = [bool(item["acc_norm"]) for item in items]
    n = len(items)
    return {
        "n": n,
        "acc": sum(acc) / n if n else float("nan"),
        "acc_stderr": _stderr(acc),
        "acc_norm": sum(acc_norm) / n if n else float("nan"),
        "acc_norm_stderr": _stderr(acc_norm),
        "chance": float(np.mean([1 / len(item["choices"]) for item in items])) if n else float("nan"),
    }


def score_questions(scorer: Scorer, questions: list[Question]) -> dict:
    """The task-level numbers of `questions` (see summarize)."""
    return summarize(score_items(scorer, questions))


def evaluate_multiple_choice(
    scorer: Scorer, data_dir: Path, cfg: MultipleChoiceConfig
) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """Each task of `cfg.tasks` on its file under `data_dir`: (task -> summary, task -> per-item records)."""
    summaries, samples = {}, {}
    for task in cfg.tasks:
        items = score_items(scorer, load_questions(task, data_dir, cfg.limit))
        summaries[task] = {**summarize(items), "limit": cfg.limit}
        samples[task] = items
    return summaries, samples
