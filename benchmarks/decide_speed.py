"""Re-deciding from stored signals vs running phase 1 again, as a user pays for each (start-up included).

    .venv/bin/python benchmarks/decide_speed.py [--data ../shared/data] [--runs 3]

The real mixed corpus of benchmarks/model_stages_throughput.py (English web documents, Chinese
Wikipedia, source files, Gutenberg chunks) as one JSONL file. Each side is a command line pinned to
one core (`taskset -c 0`): `dataengine run` with the shipped configs/pipeline.yaml, dedup off, one
worker, and quality `keep_top: 0.5`; `dataengine decide` on that run's output with `keep_top: 0.3` and
a gopher threshold changed. Medians of `--runs` runs; the ratio is run / decide.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from model_stages_throughput import documents  # noqa: E402

BIN = Path(sys.executable).parent / "dataengine"


def _timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["taskset", "-c", "0", str(BIN), *args, "--quiet"]
        if args[0] == "run"
        else ["taskset", "-c", "0", str(BIN), *args],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="decide_speed_"))
    corpus = work / "corpus.jsonl"
    texts = documents(args.data)
    corpus.write_text(
        "".join(json.dumps({"id": str(i), "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts))
    )
    run_sets = ["--set", "dedup=null", "--set", "ray.num_workers=1", "--set", "stages.quality.keep_top=0.5"]
    decide_sets = ["--set", "stages.quality.keep_top=0.3", "--set", "stages.gopher.default.min_words=30"]
    run_s, decide_s = [], []
    for i in range(args.runs):
        out, out2 = work / f"run{i}", work / f"decided{i}"
        run_s.append(
            _timed(
                [
                    "run",
                    str(ROOT / "configs/pipeline.yaml"),
                    "--input",
                    str(corpus),
                    "--output",
                    str(out),
                    *run_sets,
                ]
            )
        )
        decide_s.append(_timed(["decide", str(out), "--output", str(out2), *decide_sets]))
    result = json.loads((work / "decided0" / "run.json").read_text())
    print(f"{len(texts)} documents; decided: kept {result['kept']} of {result['input']}")
    print(
        f"dataengine run    (1 core): median {statistics.median(run_s):.1f} s  {[round(x, 1) for x in run_s]}"
    )
    print(
        f"dataengine decide (1 core): median {statistics.median(decide_s):.1f} s  {[round(x, 1) for x in decide_s]}"
    )
    print(f"run / decide: {statistics.median(run_s) / statistics.median(decide_s):.1f}x")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
