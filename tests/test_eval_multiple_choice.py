"""Multiple choice by log-likelihood on the real benchmark files, lm-evaluation-harness style: the subsets
bundled in eval/data (the default data_dir), and in the extended tier a check that they are real rows of
the full files."""

from __future__ import annotations

import json

import pytest
import torch
from test_eval_support import CopyModel, single_thread, tiny_hf_dir

from eval.config import EvalConfig, MultipleChoiceConfig
from eval.models import load_scorer, module_scorer
from eval.multiple_choice import (
    TASKS,
    Question,
    evaluate_multiple_choice,
    load_questions,
    read_rows,
    score_questions,
    task_file,
)

BUNDLED = EvalConfig().data_root()  # the default data_dir: eval/data


@pytest.fixture(scope="module")
def scorer(tmp_path_factory, corpus):
    threads = single_thread()
    yield load_scorer(tiny_hf_dir(tmp_path_factory.getbasetemp(), corpus), device="cpu")
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "task,n_choices",
    [("hellaswag", 4), ("arc_easy", None), ("arc_challenge", None), ("piqa", 2), ("mmlu", 4)],
)
def test_real_benchmark_questions_load(task, n_choices):
    questions = load_questions(task, BUNDLED, sample=20, seed=0)
    assert len(questions) == 20
    assert questions == load_questions(task, BUNDLED, sample=20, seed=0)  # a deterministic sample
    assert len(load_questions(task, BUNDLED, sample=None, seed=0)) >= 299  # the bundled subset, every item
    for q in questions:
        assert 0 <= q.gold < len(q.choices) and all(c.startswith(" ") for c in q.choices)
        assert n_choices is None or len(q.choices) == n_choices
    if task == "mmlu":
        assert questions[0].context.startswith(
            "The following are multiple choice questions (with answers) about"
        )
        assert all(f"\n{letter}. " in questions[0].context for letter in "ABCD")
        assert questions[0].context.endswith("\nAnswer:") and questions[0].choices == [" A", " B", " C", " D"]
    if task in ("arc_easy", "piqa"):
        assert questions[0].context.startswith("Question: ") and questions[0].context.endswith("\nAnswer:")


def test_accuracies_from_the_tiny_model_on_the_bundled_subsets(scorer):
    cfg = MultipleChoiceConfig(tasks=list(TASKS), sample=8)
    result = evaluate_multiple_choice(scorer, BUNDLED, cfg)
    assert set(result) == set(TASKS)
    for row in result.values():
        assert row["n"] == 8 and 0 <= row["acc"] <= 1 and 0 <= row["acc_norm"] <= 1
        assert 0 < row["chance"] <= 0.5


def test_acc_picks_highest_loglikelihood_and_acc_norm_divides_by_length(scorer):
    context = "The key phrase is blue whale. Again, the key phrase is"
    copier = module_scorer(
        CopyModel(len(scorer.tokenizer)), scorer.tokenizer, 1024, torch.device("cpu"), "c", "t"
    )
    right = Question(context, [" red fox", " blue whale", " green tea"], gold=1)
    assert score_questions(copier, [right])["acc"] == 1.0  # the copier continues with the repeated phrase
    # a long choice whose total log-likelihood is worse but whose per-character log-likelihood is better
    q = Question("Answer:", [" a", " a a a a a a a a a a a a a a a a a a a a"], gold=1)
    scores = scorer.score_continuations([(q.context, c) for c in q.choices])
    per_char = [s.logprob / len(c) for s, c in zip(scores, q.choices, strict=True)]
    result = score_questions(scorer, [q])
    assert result["acc"] == float(scores[1].logprob > scores[0].logprob)
    assert result["acc_norm"] == float(per_char[1] > per_char[0])


@pytest.mark.parametrize("task", sorted(TASKS))
def test_bundled_subsets_are_rows_of_the_full_benchmarks(shared_data, task):
    """eval/data holds real benchmark items: each bundled row appears unchanged in the full file."""
    bundled = [row for _, row in read_rows(task_file(task, BUNDLED))]
    full = [row for _, row in read_rows(task_file(task, shared_data))]
    assert len(full) >= len(bundled) >= 299
    full_keys = {json.dumps(row, sort_keys=True) for row in full}
    assert all(json.dumps(row, sort_keys=True) in full_keys for row in bundled)
