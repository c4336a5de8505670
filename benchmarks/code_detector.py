"""Code detector and language ID through the engine: prose must never become code, code must stay code.

Figures (issue 13, point 1), all on real text:
  * documents labelled `code` among UDHR lines and whole UDHR texts (388 language/script variants),
    CMRC 2018 dev questions (short Chinese), CMRC zh-Wikipedia paragraphs in both punctuation styles
    (full-width as written; half-width `.,;:!?` as in Chinese paper abstracts), one-line English
    paragraphs: by the fastText model alone and by the stage (model and the text's shape);
  * real source files (Python, C++, Rust, JS, Shell, YAML, TOML...; Markdown/reST are prose): share
    detected as code, and through the engine chain share kept and share labelled something else;
  * language-ID accuracy on UDHR lines (languages lid.176 knows): the `lang` the engine chain writes
    with configs/pipeline.yaml vs the bare lid.176 model's top label.

Run:  python benchmarks/code_detector.py [--data ../shared/data]   (tests/data works too: a subset)
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from udhr_langs import bare_lid_labels, known_to_lid, read_udhr  # noqa: E402

from dataengine.api import process  # noqa: E402
from dataengine.config import load_pipeline_config  # noqa: E402
from dataengine.stages.code import CODE_LANG, CodeConfig, CodeFilter  # noqa: E402

PROSE_LANGUAGES = {"Markdown", "reStructuredText"}
HALF_WIDTH = str.maketrans({"。": ".", "，": ",", "；": ";", "：": ":", "！": "!", "？": "?"})


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def cmrc_questions(data: Path) -> list[str]:
    path = data / "zh" / "cmrc2018_dev.squad.json"
    if not path.exists():
        return []
    squad = json.loads(path.read_text(encoding="utf-8"))
    return [q["question"] for a in squad["data"] for p in a["paragraphs"] for q in p["qas"]]


def code_files(data: Path) -> list[dict]:
    files = _jsonl(data / "code" / "code_files.jsonl.gz")
    return [f for f in files if f["language"] not in PROSE_LANGUAGES and f["content"].strip()]


def engine_langs(texts: list[str], config) -> tuple[list[set], list[bool]]:
    """The `lang`s the engine chain writes for each text (a text over input.split_words becomes parts with
    ids `<id>#<k>`: the set of its parts' langs), and whether all of it was kept."""
    result = process([{"id": str(i), "text": t} for i, t in enumerate(texts)], config)
    langs: dict[str, set] = {str(i): set() for i in range(len(texts))}
    kept = dict.fromkeys(langs, True)
    for table, is_kept in ((result.kept, True), (result.rejected, False)):
        for row in table.select(["id", "lang"]).to_pylist():
            original = row["id"].split("#")[0]
            langs[original].add(row["lang"])
            kept[original] &= is_kept
    return [langs[str(i)] for i in range(len(texts))], [kept[str(i)] for i in range(len(texts))]


def langid_accuracy(udhr_lines: list[dict], config) -> dict:
    """Language-ID accuracy on the UDHR lines whose language lid.176 knows: the `lang` the engine chain
    writes with `config` vs the bare lid.176 model's top label (also used by benchmarks/keep_rates.py)."""
    records = known_to_lid(udhr_lines)
    texts = [r["text"] for r in records]
    langs, _ = engine_langs(texts, config)
    bare = bare_lid_labels(texts)
    return {
        "lines": len(records),
        "variants": len({r["lang"] for r in records}),
        "engine_ok": sum(lang == {r["expected"]} for lang, r in zip(langs, records, strict=True)),
        "bare_ok": sum(label == r["expected"] for label, r in zip(bare, records, strict=True)),
        "records": records,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "pipeline.yaml")
    args = parser.parse_args()
    data, config = args.data, load_pipeline_config(args.config)
    stage = CodeFilter(config.stages.code)
    model_only = CodeFilter(CodeConfig(**{**config.stages.code.model_dump(), "require_shape": False}))

    udhr_lines = read_udhr(data / "langid" / "udhr2_lines.jsonl.gz")
    udhr_docs = read_udhr(data / "langid" / "udhr2_docs.jsonl.gz")
    zh = [r["text"] for r in _jsonl(data / "zh" / "cmrc2018_zhwiki_contexts.jsonl")]
    en = [" ".join(r["text"].split()) for r in _jsonl(data / "web" / "text" / "ewt_web_docs.jsonl")]
    prose = {
        "UDHR lines": [r["text"] for r in udhr_lines],
        "UDHR docs": [r["text"] for r in udhr_docs],
        "CMRC dev questions": cmrc_questions(data),
        "zh paragraphs, full-width punct.": zh,
        "zh paragraphs, half-width punct.": [t.translate(HALF_WIDTH) for t in zh],
        "en web docs as one line": en,
    }
    print(f"data: {data}\nconfig: {args.config}\n")
    print("## Prose labelled code (must be 0)\n")
    print("| text | docs | model alone | stage (model + shape) | engine chain lang=code |")
    print("|---|---:|---:|---:|---:|")
    for name, texts in prose.items():
        if not texts:
            continue
        alone = sum(p >= model_only.cfg.threshold for p in model_only.code_probabilities(texts))
        both = sum(map(stage.is_code, texts))
        langs, _ = engine_langs(texts, config)
        chain = sum(CODE_LANG in lang for lang in langs)
        print(f"| {name} | {len(texts):,} | {alone:,} | {both:,} | {chain:,} |")

    files = code_files(data)
    start = time.perf_counter()
    langs, kept = engine_langs([f["content"] for f in files], config)
    seconds = time.perf_counter() - start
    detected = [stage.is_code(f["content"]) for f in files]
    alone = sum(p >= 0.5 for p in model_only.code_probabilities([f["content"] for f in files]))
    not_code = [f["path"] for f, lang in zip(files, langs, strict=True) if lang != {CODE_LANG}]
    print("\n## Real source files (non-empty, Markdown/reST excluded)\n")
    print(
        f"files: {len(files):,}; detected as code: model alone {alone / len(files):.3f}, "
        f"stage {sum(detected) / len(files):.3f}"
    )
    print(
        f"engine chain: kept {sum(kept) / len(files):.3f}, lang=code {1 - len(not_code) / len(files):.3f}, "
        f"labelled prose {len(not_code)} ({seconds:.1f} s)"
    )
    for path in not_code[:20]:
        print(f"  not code: {path}")

    acc = langid_accuracy(udhr_lines, config)
    n, engine_ok, bare_ok = acc["lines"], acc["engine_ok"], acc["bare_ok"]
    print(f"\n## Language ID on UDHR lines ({n:,} lines, {acc['variants']} variants lid.176 knows)\n")
    print(
        f"bare lid.176 top-1: {bare_ok / n:.4f}; engine chain lang: {engine_ok / n:.4f} "
        f"({engine_ok - bare_ok:+d} lines)"
    )


if __name__ == "__main__":
    main()
