"""The eval module against lm-evaluation-harness 0.4 itself, run in process on the same model and items.

The harness (`lm_eval.simple_evaluate`, its `hf` model class) scores a tiny random-weight Llama saved as a Hugging
Face directory (its tokenizer has EOS and no BOS, the case where the two used to differ) on local copies of real
items: its own hellaswag, arc_easy, arc_challenge, piqa and mmlu task YAMLs with the dataset pointed at local
JSONL files (MMLU twice: a subject whose prompts fit the context, and professional law, whose prompts the
harness truncates from the left), and a `loglikelihood_rolling` task over real English (WikiText-2) and Chinese (zh-Wikipedia)
documents longer than the model's 256-token context. Our eval reads the same items (HellaSwag from the bundled
klosax-format rows, whose ctx_a/ctx_b split it reconstructs) and must agree: every per-choice log-likelihood
within 1e-4, acc and acc_norm item by item and in total exactly, each document's log-likelihood and the word
perplexity, byte perplexity and bits-per-byte to 1e-5 relative. No network: the datasets are local JSON and
HF_HUB_OFFLINE / HF_DATASETS_OFFLINE are set.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before datasets / transformers read it
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
lm_eval = pytest.importorskip(
    "lm_eval",
    reason="lm-evaluation-harness is not installed (it is in the dev extra: pip install -e '.[dev]')",
)

import torch  # noqa: E402
from test_eval_support import save_tiny_llama, single_thread, tiny_hf_dir  # noqa: E402

from eval.config import PACKAGED_DATA, DataConfig  # noqa: E402
from eval.heldout import read_heldout  # noqa: E402
from eval.models import load_scorer  # noqa: E402
from eval.multiple_choice import TASKS, read_questions, score_items, split_hellaswag_ctx, summarize  # noqa: E402
from eval.perplexity import evaluate_perplexity  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")
ITEMS = 12  # the first items of each bundled task
CONTEXT = 256  # the model's trained length: documents of several windows stay cheap
HARNESS_TASKS = Path(lm_eval.__file__).parent / "tasks"
LL_TOLERANCE = 1e-4
# Short questions whose prompts fit the context, and long ones that the harness truncates from the left.
MMLU_SUBJECTS = {"mmlu": "miscellaneous", "mmlu_long": "professional_law"}
CASES = [*TASKS, "mmlu_long"]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def _bundled_rows(task: str) -> list[dict]:
    path = PACKAGED_DATA / TASKS[task][0]
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _hellaswag_schema(row: dict) -> dict:
    """A klosax row in the dataset's own schema (what the harness's process_docs reads)."""
    label, ctx_a, ctx_b = split_hellaswag_ctx(row["ctx"])
    return {
        "activity_label": label,
        "ctx_a": ctx_a,
        "ctx_b": ctx_b,
        "endings": row["endings"],
        "label": str(row["label"]),
    }


def _mmlu_subject_rows(subject: str) -> list[dict]:
    """The bundled MMLU rows of one subject (a harness MMLU task is one subject)."""
    return [row for row in _bundled_rows("mmlu") if row["subject"] == subject][:ITEMS]


def _task_yaml(name: str, include: Path, data: Path, cache: Path) -> str:
    """The harness's own task config, its dataset swapped for a local JSONL file (every split reads it)."""
    split_files = {split: str(data) for split in ("train", "validation", "test", "dev")}
    config = {
        "include": str(include),
        "task": name,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": split_files, "cache_dir": str(cache)},
        # MMLU's YAML asks for acc only; every task here reports both
        "metric_list": [
            {"metric": m, "aggregation": "mean", "higher_is_better": True} for m in ("acc", "acc_norm")
        ],
    }
    return json.dumps(config)  # JSON is YAML


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, corpus) -> Path:
    """A 2-layer random Llama with a 256-token context and the eval tests' BPE (EOS, no BOS)."""
    base = tmp_path_factory.getbasetemp()
    source = tiny_hf_dir(base, corpus)
    out = base / "tiny_hf_256"
    if (out / "model.safetensors").is_file():
        return out
    out.mkdir()
    for name in os.listdir(source):
        if name.startswith("tokenizer") or name == "special_tokens_map.json":
            shutil.copy(source / name, out / name)
    config = json.loads((source / "config.json").read_text())
    save_tiny_llama(out, config["vocab_size"], config["eos_token_id"], context=CONTEXT, seed=1)
    return out


@pytest.fixture(scope="module")
def local_data(tmp_path_factory, corpus) -> dict:
    """Local task files and YAMLs for the harness, and the files our eval reads."""
    root = tmp_path_factory.mktemp("lm_eval_local")
    cache = root / "hf_datasets_cache"
    tasks = root / "tasks"
    tasks.mkdir()
    ours: dict[str, Path] = {}
    theirs: dict[str, Path] = {}
    hellaswag = _bundled_rows("hellaswag")[:ITEMS]
    ours["hellaswag"] = _write_jsonl(root / "hellaswag_klosax.jsonl", hellaswag)
    theirs["hellaswag"] = _write_jsonl(root / "hellaswag.jsonl", [_hellaswag_schema(r) for r in hellaswag])
    for task in ("arc_easy", "arc_challenge", "piqa"):
        ours[task] = theirs[task] = _write_jsonl(root / f"{task}.jsonl", _bundled_rows(task)[:ITEMS])
    for name, subject in MMLU_SUBJECTS.items():
        ours[name] = theirs[name] = _write_jsonl(root / f"{name}.jsonl", _mmlu_subject_rows(subject))
    includes = {
        "hellaswag": HARNESS_TASKS / "hellaswag" / "hellaswag.yaml",
        "arc_easy": HARNESS_TASKS / "arc" / "arc_easy.yaml",
        "arc_challenge": HARNESS_TASKS / "arc" / "arc_challenge.yaml",
        "piqa": HARNESS_TASKS / "piqa" / "piqa.yaml",
        **{
            name: HARNESS_TASKS / "mmlu" / "default" / f"mmlu_{subject}.yaml"
            for name, subject in MMLU_SUBJECTS.items()
        },
    }
    for task, include in includes.items():
        assert include.is_file(), f"the harness has no {include}"
        (tasks / f"{task}_local.yaml").write_text(_task_yaml(f"{task}_local", include, theirs[task], cache))

    english = (corpus / "reference" / "wikitext-2_valid.txt").read_text(encoding="utf-8")
    english = english[: english.index("\n = ", 6000)]  # whole articles, several windows of the model
    chinese = [
        json.loads(line)["text"]
        for line in (corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()
    ]
    chinese = [text for text in chinese if len(text) > 600][:3]
    docs = [{"text": english, "domain": "wikitext"}] + [{"text": t, "domain": "zhwiki"} for t in chinese]
    ppl_docs = _write_jsonl(root / "ppl_docs.jsonl", docs)
    english_txt = root / "wikitext.txt"
    english_txt.write_text(english, encoding="utf-8")
    ppl_task = {
        "task": "ppl_local",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(ppl_docs)}, "cache_dir": str(cache)},
        "output_type": "loglikelihood_rolling",
        "test_split": "test",
        "doc_to_text": "",
        "doc_to_target": "text",
        "metric_list": [{"metric": m} for m in ("word_perplexity", "byte_perplexity", "bits_per_byte")],
    }
    (tasks / "ppl_local.yaml").write_text(json.dumps(ppl_task))
    zh_jsonl = _write_jsonl(root / "zhwiki.jsonl", docs[1:])
    return {"tasks": tasks, "ours": ours, "heldout": [english_txt, zh_jsonl], "docs": docs}


@pytest.fixture(scope="module")
def harness(model_dir, local_data) -> dict:
    """lm-eval's simple_evaluate on every local task, with per-item samples."""
    from lm_eval import evaluator
    from lm_eval.tasks import TaskManager

    threads = single_thread()
    try:
        names = [f"{task}_local" for task in local_data["ours"]] + ["ppl_local"]
        return evaluator.simple_evaluate(
            model="hf",
            model_args=f"pretrained={model_dir},dtype=float32",
            tasks=names,
            num_fewshot=0,
            batch_size=8,
            device="cpu",
            log_samples=True,
            bootstrap_iters=0,
            task_manager=TaskManager(include_path=str(local_data["tasks"])),
        )
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def scorer(model_dir):
    threads = single_thread()
    yield load_scorer(model_dir, device="cpu")
    torch.set_num_threads(threads)


def _harness_loglikelihoods(sample: dict) -> tuple[list[float], list[bool]]:
    pairs = [resp[0] for resp in sample["resps"]]  # one (loglikelihood, is_greedy) per choice
    return [float(ll) for ll, _ in pairs], [bool(greedy) for _, greedy in pairs]


@pytest.mark.parametrize("task", CASES)
def test_multiple_choice_agrees_item_by_item(harness, scorer, local_data, task):
    questions = read_questions(task.removesuffix("_long"), local_data["ours"][task])
    lengths = [len(scorer.encode(q.context)) for q in questions]
    fit = sum(n < CONTEXT for n in lengths)
    assert fit == 0 if task == "mmlu_long" else fit > len(lengths) // 2  # all truncated, or mostly whole
    ours = score_items(scorer, questions)
    theirs = sorted(harness["samples"][f"{task}_local"], key=lambda s: s["doc_id"])
    assert len(ours) == len(theirs) > 0
    worst = 0.0
    for mine, sample in zip(ours, theirs, strict=True):
        assert mine["doc_id"] == sample["doc_id"]
        assert [args[0] for args in sample["arguments"]] == [mine["context"]] * len(mine["choices"])
        assert [args[1] for args in sample["arguments"]] == [" " + c for c in mine["choices"]]
        lls, greedy = _harness_loglikelihoods(sample)
        worst = max(worst, max(abs(a - b) for a, b in zip(mine["loglikelihoods"], lls, strict=True)))
        assert mine["is_greedy"] == greedy
        assert (mine["acc"], mine["acc_norm"]) == (sample["acc"], sample["acc_norm"])
    assert worst < LL_TOLERANCE, f"{task}: max |loglikelihood difference| {worst:.2e}"
    summary, result = summarize(ours), harness["results"][f"{task}_local"]
    assert summary["acc"] == result["acc,none"] and summary["acc_norm"] == result["acc_norm,none"]


def test_perplexity_agrees_document_by_document(harness, scorer, local_data):
    heldout = read_heldout(local_data["heldout"], DataConfig())
    assert [d.text for d in heldout.docs] == [d["text"] for d in local_data["docs"]]  # whole, uncut
    rows: list[dict] = []
    ours = evaluate_perplexity(scorer, heldout.docs, samples=rows)
    assert ours["window"] == ours["stride"] == CONTEXT  # the model's trained length, disjoint windows
    assert max(row["tokens"] for row in rows) > 3 * CONTEXT  # the English document spans several windows
    theirs = sorted(harness["samples"]["ppl_local"], key=lambda s: s["doc_id"])
    for row, sample in zip(rows, theirs, strict=True):
        their_ll = (
            float(sample["resps"][0][0]) if isinstance(sample["resps"][0], list) else sample["resps"][0]
        )
        assert -row["nll"] == pytest.approx(their_ll, rel=1e-5, abs=LL_TOLERANCE)
    result = harness["results"]["ppl_local"]
    overall = ours["overall"]
    for ours_key, their_key in (
        ("word_perplexity", "word_perplexity,none"),
        ("byte_perplexity", "byte_perplexity,none"),
        ("bits_per_byte", "bits_per_byte,none"),
    ):
        assert overall[ours_key] == pytest.approx(result[their_key], rel=1e-5), ours_key
