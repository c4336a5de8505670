"""Train the packaged code-vs-prose fastText model from ../shared/data (output is committed).

    .venv/bin/python scripts/train_code_detector.py

Code: the shared source files in programming and config languages (Apache-2.0 / BSD-3 / MIT).
Prose: English web text, Chinese Wikipedia, Gutenberg, and the Markdown/reST files of the same
repositories. One document in five (by hash) is held out; the script prints held-out errors.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tempfile
from collections import Counter
from pathlib import Path

import fasttext

from dataengine.stages.code_text import code_features

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "dataengine" / "resources" / "models" / "code_vs_prose.ftz"
CODE_LANGUAGES = {
    "Python",
    "C++",
    "C/C++ header",
    "Rust",
    "JavaScript",
    "TypeScript",
    "Shell",
    "YAML",
    "TOML",
    "Protobuf",
}
PROSE_FILES = [
    "web/text/c4-sample.01.jsonl.gz",
    "web/text/c4-sample.02.jsonl.gz",
    "web/text/cc_en_head-0091.jsonl",
    "web/text/cc_en_head-0174.jsonl",
    "web/text/ewt_web_docs.jsonl",
    "web/text/stack_exchange.jsonl",
    "web/text/arxiv.jsonl",
    "zh/cmrc2018_zhwiki_contexts.jsonl",
    "web/text/redpajama-cc-2023-06-refined.jsonl",
    "web/text/the-pile-uspto-refined.jsonl",
]


def _jsonl(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        yield from (json.loads(line) for line in fh)


def labelled_documents() -> list[tuple[str, str, str]]:
    rows = []
    for f in _jsonl(DATA / "code/code_files.jsonl.gz"):
        rows.append(("code" if f["language"] in CODE_LANGUAGES else "prose", f["content"], f["language"]))
    for name in PROSE_FILES:
        rows += [("prose", r["text"], name) for r in _jsonl(DATA / name)]
    for book in sorted((DATA / "reference/gutenberg").glob("pg*.txt")):
        text = book.read_text(encoding="utf-8")
        rows += [("prose", text[i : i + 3000], "gutenberg") for i in range(0, len(text), 30000)]
    return rows


def main() -> None:
    rows = labelled_documents()
    held_out = [r for r in rows if int(hashlib.md5(r[1][:200].encode()).hexdigest(), 16) % 5 == 0]
    train = [r for r in rows if int(hashlib.md5(r[1][:200].encode()).hexdigest(), 16) % 5 != 0]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as fh:
        for label, text, _ in train:
            fh.write(f"__label__{label} {code_features(text)}\n")
            if label == "code":  # the same file minified: one long line
                fh.write(f"__label__code {code_features(' '.join(text.split()))}\n")
    model = fasttext.train_supervised(
        fh.name,
        dim=32,
        epoch=25,
        wordNgrams=2,
        minCount=2,
        bucket=200_000,
        lr=0.5,
        verbose=0,
        seed=0,
        thread=1,
    )
    model.quantize(input=fh.name, retrain=True, cutoff=50_000, qnorm=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    model.save_model(str(OUT))
    errors, totals = Counter(), Counter()
    for label, text, origin in held_out:
        predicted = model.predict(code_features(text))[0][0].removeprefix("__label__")
        totals[origin] += 1
        errors[origin] += predicted != label
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes); held-out errors by origin:")
    for origin in sorted(totals):
        print(f"  {origin}: {errors[origin]}/{totals[origin]}")


if __name__ == "__main__":
    main()
