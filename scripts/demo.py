"""`make demo`: the main job end to end on the bundled sample; prints where the results are."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "demo_out"


def step(title: str, *args: str) -> None:
    print(f"\n== {title}\n$ {' '.join(args)}", flush=True)
    subprocess.run(args, check=True, cwd=ROOT)


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    bin_dir = Path(sys.executable).parent
    dataengine = str(bin_dir / "dataengine")
    samples = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "sample").iterdir() if p.name != "NOTICE")
    inputs = [arg for path in samples for arg in ("--input", path)]
    step(
        "phase 1: read, annotate, decide",
        dataengine,
        "run",
        "configs/pipeline.yaml",
        *inputs,
        "--output",
        "demo_out/phase1",
    )
    run = json.loads((OUT / "phase1" / "run.json").read_text())
    print(
        f"\nkept {run['kept']} of {run['input']} documents; rejected by reason: {run['rejected_by_reason']}"
    )
    print(f"report: {OUT / 'phase1' / 'report.html'}")

    kept = "demo_out/phase1/kept"
    step(
        "tokenizer: byte-level BPE on the kept documents",
        dataengine,
        "tokenizer",
        "train",
        "--input",
        kept,
        "--vocab-size",
        "8000",
        "--heldout-fraction",
        "0.05",
        "--output",
        "demo_out/tokenizer/tokenizer.json",
    )
    step(
        "compression per channel on held-out documents",
        dataengine,
        "tokenizer",
        "report",
        "--tokenizer",
        "demo_out/tokenizer/tokenizer.json",
        "--input",
        kept,
        "--heldout-fraction",
        "0.05",
    )
    step(
        "pack: token shards for the trainer",
        dataengine,
        "pack",
        "--input",
        kept,
        "--tokenizer",
        "demo_out/tokenizer/tokenizer.json",
        "--seq-len",
        "256",
        "--heldout-fraction",
        "0.05",
        "--output",
        "demo_out/shards",
    )
    manifest = json.loads((OUT / "shards" / "manifest.json").read_text())
    print(
        f"\nshards: {OUT / 'shards'} (channels {manifest['channels']}, "
        f"{ {s: c['sequences'] for s, c in manifest['splits'].items()} } sequences)"
    )


if __name__ == "__main__":
    main()
