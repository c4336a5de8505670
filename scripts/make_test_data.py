"""Build the bundled real-text corpora from ../shared/data (run once; the output is committed).

Two bundles, each laid out with the same relative paths as ../shared/data, so code and tests name a file
the same way whether they read the bundle or the full folder:

* ``tests/data/``: the test corpus of the default suite (English web text, Chinese prose and poetry,
  code, UDHR in many scripts, books, a benchmark for decontamination).
* ``eval/data/``: what the default eval configs read (subsets of the multiple-choice benchmarks, needle
  haystacks, held-out text); it ships in the wheel.

Only permissively licensed text goes in (see ../shared/data/README.md); each bundle's NOTICE lists
origins and licenses. Subsets are fixed by a seeded draw, so re-running gives the same bytes.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TESTS = ROOT / "tests" / "data"
EVAL = ROOT / "eval" / "data"


def read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [line for line in fh if line.strip()]


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(line if line.endswith("\n") else line + "\n" for line in lines).encode()
    if path.suffix == ".gz":
        with gzip.GzipFile(path, "wb", mtime=0) as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)


def copy(relative: str, out: Path) -> None:
    (out / relative).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DATA / relative, out / relative)


def seeded_subset(relative: str, out: Path, n: int, seed: int = 0) -> None:
    """`n` lines drawn at random (kept in file order) from a JSONL file."""
    lines = read_lines(DATA / relative)
    keep = sorted(random.Random(seed).sample(range(len(lines)), min(n, len(lines))))
    write_lines(out / relative, [lines[i] for i in keep])


def head_subset(relative: str, out: Path, n: int) -> None:
    write_lines(out / relative, read_lines(DATA / relative)[:n])


def poetry_subset(out: Path, per_collection: int = 150) -> None:
    """Every collection of the classical corpus (Tang in traditional characters, Song ci, the Analects …)."""
    relative = "zh/zh_classical_poetry.jsonl.gz"
    by_collection: dict[str, list[str]] = defaultdict(list)
    for line in read_lines(DATA / relative):
        rows = by_collection[json.loads(line)["collection"]]
        if len(rows) < per_collection:
            rows.append(line)
    write_lines(out / relative, [line for rows in by_collection.values() for line in rows])


def _script(text: str) -> str:
    """The Unicode script name (LATIN, CJK, ARABIC …) of a text's most common letter."""
    letters = Counter(ch for ch in text if ch.isalpha())
    return unicodedata.name(letters.most_common(1)[0][0], "?").split()[0] if letters else "?"


def udhr_docs_subset(out: Path, per_script: int = 3) -> None:
    """Whole UDHR documents: a few languages of every script, and always the major languages."""
    relative = "langid/udhr2_docs.jsonl.gz"
    must = {
        "eng",
        "cmn_hans",
        "cmn_hant",
        "jpn",
        "kor",
        "arb",
        "rus",
        "hin",
        "deu",
        "fra",
        "spa",
        "por",
        "ita",
    }
    chosen: list[str] = []
    per: Counter[str] = Counter()
    for line in read_lines(DATA / relative):
        doc = json.loads(line)
        script = _script(doc["text"])
        if doc["lang"] in must or per[script] < per_script:
            per[script] += 1
            chosen.append(line)
    write_lines(out / relative, chosen)


def wikitext_head(out: Path, max_chars: int) -> None:
    """The first articles of WikiText-2 valid, cut at an article heading."""
    relative = "reference/wikitext-2_valid.txt"
    text = (DATA / relative).read_text(encoding="utf-8")
    cut = text.find("\n = ", max_chars)
    (out / relative).parent.mkdir(parents=True, exist_ok=True)
    (out / relative).write_text(text if cut < 0 else text[: cut + 1], encoding="utf-8")


def gutenberg(out: Path, files: tuple[str, ...]) -> None:
    base = "reference/gutenberg"
    meta = [
        line for line in read_lines(DATA / base / "books_metadata.jsonl") if json.loads(line)["file"] in files
    ]
    write_lines(out / base / "books_metadata.jsonl", meta)
    for name in files:
        copy(f"{base}/{name}", out)
    copy(f"{base}/LICENSE_GITenberg.txt", out)


def build_tests() -> None:
    shutil.rmtree(TESTS, ignore_errors=True)
    for name in (
        "c4-sample.01.jsonl.gz",
        "c4-sample.02.jsonl.gz",
        "c4-sample.03.jsonl.gz",
        "paloma_c4_100_domains_theguardian_val.jsonl.gz",
        "provided_documents_000.jsonl.gz",
        "cc_en_head-0091.jsonl",
        "cc_en_head-0174.jsonl",
        "redpajama-c4-refined.jsonl",
        "redpajama-cc-2023-06-refined.jsonl",
        "ewt_web_docs.jsonl",
        "LICENSE_ud_ewt_CC-BY-SA-4.0.txt",
    ):
        copy(f"web/text/{name}", TESTS)
    copy("zh/cmrc2018_zhwiki_contexts.jsonl", TESTS)
    copy("zh/LICENSE_CC-BY-SA-4.0.txt", TESTS)
    poetry_subset(TESTS)
    seeded_subset("code/code_files.jsonl.gz", TESTS, 1000)
    copy("reference/tinyshakespeare.txt", TESTS)
    copy("reference/wikitext-2_valid.txt", TESTS)
    gutenberg(TESTS, ("pg76.txt", "pg1661.txt", "pg24675.txt"))
    copy("langid/udhr2_lines.jsonl.gz", TESTS)
    udhr_docs_subset(TESTS)
    copy("eval/gsm8k_openai/test.jsonl", TESTS)
    copy("eval/gsm8k_openai/LICENSE.txt", TESTS)
    copy("eval/olmo_hf_datasets/mmlu_dev.jsonl", TESTS)


def build_eval() -> None:
    for sub in ("eval", "reference", "zh", "web"):
        shutil.rmtree(EVAL / sub, ignore_errors=True)
    seeded_subset("eval/hellaswag_klosax/hellaswag_val.jsonl.gz", EVAL, 300)
    seeded_subset("eval/olmo_hf_datasets/ai2_arc_ARC-Easy_validation.jsonl", EVAL, 300)
    seeded_subset("eval/olmo_hf_datasets/ai2_arc_ARC-Challenge_validation.jsonl", EVAL, 300)
    seeded_subset("eval/olmo_hf_datasets/piqa_plain_text_validation.jsonl", EVAL, 300)
    seeded_subset("eval/olmo_hf_datasets/mmlu_test.jsonl.gz", EVAL, 300)
    wikitext_head(EVAL, 300_000)
    head_subset("zh/cmrc2018_zhwiki_contexts.jsonl", EVAL, 300)
    copy("web/text/c4-sample.01.jsonl.gz", EVAL)


if __name__ == "__main__":
    build_tests()
    build_eval()
