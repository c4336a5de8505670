"""Phase-1 throughput with the category and quality stages on vs off (issue 14: they may add at most 25%).

    taskset -c 0 .venv/bin/python benchmarks/model_stages_throughput.py [--data ../shared/data] [--runs 5]

The shipped configs/pipeline.yaml (dedup off) through `DocumentProcessor` in one process, the same object
the runner's Ray workers hold, on real mixed text: English web documents, Chinese Wikipedia paragraphs,
source files and Gutenberg chunks. Both variants run alternately `--runs` times in one process (models
loaded once, before timing); the median of each and the ratio are printed. Ray start-up is not included:
it is the same for both.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from reference_sets import book_body, chunks  # noqa: E402

from dataengine.config import load_pipeline_config  # noqa: E402
from dataengine.processor import DocumentProcessor  # noqa: E402


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def documents(data: Path) -> list[str]:
    texts = [r["text"] for r in _jsonl(data / "web" / "text" / "ewt_web_docs.jsonl")]
    texts += [r["text"] for r in _jsonl(data / "zh" / "cmrc2018_zhwiki_contexts.jsonl")]
    texts += [r["content"] for r in _jsonl(data / "code" / "code_files.jsonl.gz") if r["content"].strip()]
    for book in sorted((data / "reference" / "gutenberg").glob("pg*.txt"))[:4]:
        texts += chunks(book_body(book.read_text(encoding="utf-8")))
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    texts = documents(args.data)
    rows = [{"id": str(i), "text": t} for i, t in enumerate(texts)]
    config = ROOT / "configs" / "pipeline.yaml"
    variants = {
        "on": DocumentProcessor(load_pipeline_config(config, ["dedup=null"])),
        "off": DocumentProcessor(
            load_pipeline_config(config, ["dedup=null", "stages.category=null", "stages.quality=null"])
        ),
    }
    for processor in variants.values():  # load every model before timing
        processor.process(rows[:64])
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    stage_seconds: dict[str, float] = {}
    for _ in range(args.runs):
        for name, processor in variants.items():
            processor.take_stats()
            start = time.perf_counter()
            processor.process(rows)
            seconds[name].append(time.perf_counter() - start)
            if name == "on":
                stats = processor.take_stats().stage_seconds
                stage_seconds = {k: stats[k] for k in ("category", "quality")}
    chars = sum(map(len, texts))
    print(f"documents: {len(texts):,} ({chars / 1e6:.1f} M characters); runs: {args.runs}")
    print("| variant | median s | runs (s) | docs/s |\n|---|---:|---|---:|")
    for name, values in seconds.items():
        median = statistics.median(values)
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"| stages {name} | {median:.2f} | {shown} | {len(texts) / median:,.0f} |")
    ratio = statistics.median(seconds["on"]) / statistics.median(seconds["off"])
    print(f"on / off: {ratio:.3f} (+{(ratio - 1) * 100:.1f}%); last run's stage time: {stage_seconds}")


if __name__ == "__main__":
    main()
