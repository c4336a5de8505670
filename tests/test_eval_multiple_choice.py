"""Multiple choice by log-likelihood on the real benchmark files, as lm-evaluation-harness 0.4 scores them
(prompts of its task YAMLs, acc_norm by len(choice), the first N items for a limit): the subsets bundled in
eval/data (the default data_dir), and in the extended tier a check that they are real rows of the full files.
The harness itself runs in tests/test_eval_lm_eval_agreement.py."""

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
    hellaswag,
    hellaswag_preprocess,
    load_questions,
    read_rows,
    score_questions,
    split_hellaswag_ctx,
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
    questions = load_questions(task, BUNDLED, limit=20)
    every = load_questions(task, BUNDLED)
    assert len(questions) == 20
    assert questions == every[:20]  # a limit takes the first items, as lm-eval's --limit
    assert len(every) >= 299  # the bundled subset, every item
    for q in questions:
        assert 0 <= q.gold < len(q.choices) and not any(c.startswith(" ") for c in q.choices)
        assert all(c == " " + choice for c, choice in zip(q.continuations, q.choices, strict=True))
        assert n_choices is None or len(q.choices) == n_choices
    if task == "mmlu":
        assert questions[0].context.startswith(
            "The following are multiple choice questions (with answers) about"
        )
        assert all(f"\n{letter}. " in questions[0].context for letter in "ABCD")
        assert questions[0].context.endswith("\nAnswer:") and questions[0].choices == ["A", "B", "C", "D"]
    if task in ("arc_easy", "piqa"):
        assert questions[0].context.startswith("Question: ") and questions[0].context.endswith("\nAnswer:")


# HellaSwag rows in the dataset's own schema (rowanz/hellaswag validation, as Rowan/hellaswag serves them).
HELLASWAG_ROWS = [
    {
        "activity_label": "Clean and jerk",
        "ctx_a": "A lady walks to a barbell. She bends down and grabs the pole.",
        "ctx_b": "the lady",
        "endings": ["swings and lands in her arms.", "pulls the barbell forward."],
        "label": "1",
    },
    {
        "activity_label": "Sharpening knives",
        "ctx_a": "A man is holding a pocket knife while sitting on some rocks in the wilderness.",
        "ctx_b": "then he",
        "endings": ["takes a small stone from the flowing river.", "uses the knife to shave his leg."],
        "label": "0",
    },
    {
        "activity_label": "Home and Garden",
        "ctx_a": "[header] How to grow basil [title] Pick a sunny spot. [step] Basil needs six hours of sun.",
        "ctx_b": "",
        "endings": ["[substeps] Water it daily.", "Plant it in the dark [title] now."],
        "label": "0",
    },
]


def test_hellaswag_prompt_is_the_harness_preprocessing():
    """lm_eval/tasks/hellaswag/utils.py: preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())."""
    lady, knife, basil = (hellaswag(row) for row in HELLASWAG_ROWS)
    assert (
        lady.context
        == "Clean and jerk: A lady walks to a barbell. She bends down and grabs the pole. The lady"
    )
    assert knife.context.endswith("in the wilderness. Then he") and knife.gold == 0
    assert (
        basil.context
        == "Home and Garden: How to grow basil. Pick a sunny spot. Basil needs six hours of sun."
    )
    assert basil.choices == [" Water it daily.", "Plant it in the dark. now."]  # strip() comes first


def test_hellaswag_rows_with_only_ctx_give_the_same_prompt():
    """The bundled file stores "label: ctx_a ctx_b" preprocessed but not capitalised (klosax's conversion)."""
    for row in HELLASWAG_ROWS:
        joined = hellaswag_preprocess(f"{row['activity_label']}: {row['ctx_a']} {row['ctx_b']}")
        klosax = {"ctx": joined, "endings": row["endings"], "label": int(row["label"])}
        assert split_hellaswag_ctx(joined)[2] == row["ctx_b"]
        assert hellaswag(klosax) == hellaswag(row)
    bundled = load_questions("hellaswag", BUNDLED, limit=3)
    assert bundled[0].context.endswith("grabs the pole. The lady")  # the bundled row of the example above


def test_limit_replaces_the_random_sample():
    with pytest.raises(ValueError, match="use multiple_choice.limit"):
        MultipleChoiceConfig(sample=20)


def test_accuracies_from_the_tiny_model_on_the_bundled_subsets(scorer):
    cfg = MultipleChoiceConfig(tasks=list(TASKS), limit=8)
    result, samples = evaluate_multiple_choice(scorer, BUNDLED, cfg)
    assert set(result) == set(TASKS) == set(samples)
    for task, row in result.items():
        assert row["n"] == 8 and row["limit"] == 8 and 0 <= row["acc"] <= 1 and 0 <= row["acc_norm"] <= 1
        assert 0 < row["chance"] <= 0.5
        items = samples[task]
        assert [item["doc_id"] for item in items] == list(range(8))
        assert row["acc"] == sum(item["acc"] for item in items) / 8
        for item in items:
            assert len(item["loglikelihoods"]) == len(item["choices"]) == len(item["is_greedy"])
            assert item["pred"] == max(range(len(item["choices"])), key=item["loglikelihoods"].__getitem__)


def test_acc_picks_highest_loglikelihood_and_acc_norm_divides_by_the_choice_length(scorer):
    context = "The key phrase is blue whale. Again, the key phrase is"
    copier = module_scorer(
        CopyModel(len(scorer.tokenizer)), scorer.tokenizer, 1024, torch.device("cpu"), "c", "t"
    )
    right = Question(context, ["red fox", "blue whale", "green tea"], gold=1)
    assert score_questions(copier, [right])["acc"] == 1.0  # the copier continues with the repeated phrase
    # a long choice whose total log-likelihood is worse but whose per-character log-likelihood may be better;
    # the harness divides by len(choice), the string doc_to_choice gives, without the " " delimiter
    q = Question("Answer:", ["a", "a a a a a a a a a a a a a a a a a a a a"], gold=1)
    scores = scorer.score_continuations(list(zip([q.context] * 2, q.continuations, strict=True)))
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
