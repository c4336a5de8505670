"""Decontamination finds benchmark text planted in real documents (English words, Chinese characters)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import regex

from dataengine.dedup.config import DecontamConfig
from dataengine.dedup.decontam import BenchmarkIndex, benchmark_files, scan

# the benchmark subsets shipped with the eval package (hellaswag, arc, piqa, mmlu_test), laid out like ../shared/data
PACKAGED_EVAL = Path(__file__).resolve().parents[1] / "eval" / "data" / "eval"


@pytest.fixture(scope="module")
def web_docs(corpus) -> list[str]:
    with open(corpus / "web" / "text" / "ewt_web_docs.jsonl", encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh]
    return [t for t in texts if len(t) >= 800][:30]


@pytest.fixture(scope="module")
def gsm8k_question(corpus) -> str:
    with open(corpus / "eval" / "gsm8k_openai" / "test.jsonl", encoding="utf-8") as fh:
        return json.loads(fh.readline())["question"]


def test_folder_of_benchmarks_names_every_evaluation_file(corpus):
    names = benchmark_files([corpus / "eval", PACKAGED_EVAL])
    assert "gsm8k_openai.test" in names and "olmo_hf_datasets.mmlu_dev" in names
    assert "hellaswag_klosax.hellaswag_val" in names and "olmo_hf_datasets.mmlu_test" in names
    assert names["olmo_hf_datasets.mmlu_test"].name == "mmlu_test.jsonl.gz"
    assert all(
        path.is_file() and path.name.split(".")[0] == name.split(".")[-1] for name, path in names.items()
    )


def test_folder_of_benchmarks_skips_a_training_split(corpus, tmp_path):
    """A training split beside its test split (as gsm8k ships them) is not a benchmark to decontaminate."""
    folder = tmp_path / "gsm8k_openai"
    folder.mkdir()
    test_split = corpus / "eval" / "gsm8k_openai" / "test.jsonl"
    shutil.copy(test_split, folder / "test.jsonl")
    shutil.copy(test_split, folder / "train.jsonl")
    assert benchmark_files([tmp_path]) == {"gsm8k_openai.test": folder / "test.jsonl"}


def test_folder_of_benchmarks_skips_licenses_and_notices(corpus):
    """gsm8k ships LICENSE.txt beside its splits: a licence text is not a benchmark to cut from web pages."""
    assert (corpus / "eval" / "gsm8k_openai" / "LICENSE.txt").is_file()
    names = benchmark_files([corpus / "eval", PACKAGED_EVAL])
    assert not [n for n in names if n.split(".")[-1].upper().startswith(("LICENSE", "NOTICE", "SOURCES"))]


def test_full_data_folder_skips_training_splits(shared_data):
    names = benchmark_files([shared_data / "eval"])
    assert "gsm8k_openai.test" in names and "olmo_hf_datasets.mmlu_dev" in names
    assert (shared_data / "eval" / "gsm8k_openai" / "train.jsonl.gz").is_file()
    assert not any("train" in n for n in names)


def test_planted_gsm8k_question_is_found_and_cut(corpus, web_docs, gsm8k_question):
    cfg = DecontamConfig(
        enabled=True, benchmarks=[corpus / "eval" / "gsm8k_openai" / "test.jsonl"], policy="cut"
    )
    index = BenchmarkIndex.build(cfg)
    host = web_docs[0]
    middle = len(host) // 2
    planted = host[:middle] + "\n" + gsm8k_question.upper() + "\n" + host[middle:]
    found = scan([planted] + web_docs[1:], [None] * len(web_docs), index, cfg)
    assert found.benchmark[0] == "gsm8k_openai.test"
    assert found.ngrams[0] >= len(gsm8k_question.split()) - 12
    assert all(b is None for b in found.benchmark[1:]), "clean web documents must not match GSM8K"
    cut = found.cut_text[0]
    assert "ducks" not in cut.lower() and host[:100] in cut and host[-100:] in cut


def test_chinese_user_benchmark_matches_by_characters(tmp_path, corpus):
    with open(corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8") as fh:
        paragraphs = [json.loads(line)["text"] for line in fh][:20]
    bench = tmp_path / "zh_quiz.jsonl"
    sentence = paragraphs[3][:60]
    bench.write_text(
        json.dumps({"question": sentence, "answer": "无"}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    cfg = DecontamConfig(enabled=True, benchmarks=[bench])
    index = BenchmarkIndex.build(cfg)
    docs = [paragraphs[0] + sentence + paragraphs[1], paragraphs[5], paragraphs[6]]
    found = scan(docs, ["zh", "zh", "zh"], index, cfg)
    assert found.benchmark == [f"{tmp_path.name}.zh_quiz", None, None]
    units = len(regex.findall(r"[\p{L}\p{N}]", sentence))  # punctuation is not a unit
    assert found.ngrams[0] == units - cfg.char_ngram + 1
