"""`make demo`: the main job end to end on the bundled sample; prints where the results are.

phase 1 (read, annotate, decide) and the dedup phase → tokenizer → token shards → a tiny Llama trained on CPU → eval.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "demo_out"
BIN = Path(sys.executable).parent


def step(title: str, command: str) -> None:
    args = shlex.split(command)
    if args[0] == "dataengine":
        args[0] = str(BIN / "dataengine")
    elif args[0] == "python":
        args[0] = sys.executable
    print(f"\n== {title}\n$ {command}", flush=True)
    subprocess.run(args, check=True, cwd=ROOT)


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    step(  # the eval runs last: its config and inputs (haystacks, benchmarks, probes) are checked first
        "check the eval config and the bundled files it reads (before any work)",
        "python -m eval configs/eval/quick.yaml --check",
    )
    inputs = " ".join(
        f"--input sample/{p.name}" for p in sorted((ROOT / "sample").iterdir()) if p.name != "NOTICE"
    )
    step(
        "phase 1 (read, annotate, decide), then the dedup phase",
        f"dataengine run configs/pipeline.yaml {inputs} --output demo_out/run",
    )
    run = json.loads((OUT / "run" / "run.json").read_text())
    print(
        f"\nkept {run['kept']} of {run['input']} documents; rejected by reason: {run['rejected_by_reason']}"
    )

    kept = "demo_out/run/kept"  # the final kept set: after the dedup phase of configs/pipeline.yaml
    tokenizer = "demo_out/tokenizer/tokenizer.json"
    step(
        "tokenizer: byte-level BPE on the kept documents",
        f"dataengine tokenizer train --input {kept} --vocab-size 8000 --heldout-fraction 0.05 --output {tokenizer}",
    )
    step(
        "compression per channel on held-out documents",
        f"dataengine tokenizer report --tokenizer {tokenizer} --input {kept}",  # held-out setting: the tokenizer's
    )
    step(
        "pack: token shards for the trainer",
        f"dataengine pack --input {kept} --tokenizer {tokenizer} --seq-len 256 --output demo_out/shards",
    )
    step(
        "train: the tiny Llama on the demo shards (CPU)",
        "python -m train configs/train/tiny.yaml --set data.shards=demo_out/shards --set run_dir=demo_out/train",
    )
    step(
        "eval: perplexity per domain, probes, needle, multiple choice",
        "python -m eval configs/eval/quick.yaml --checkpoint demo_out/train --output demo_out/eval "
        "--set data.heldout=[demo_out/shards]",
    )
    print(f"\nrun report:     {OUT / 'run' / 'report.html'}")
    print(f"shards:         {OUT / 'shards'}")
    print(f"train metrics:  {OUT / 'train' / 'metrics.jsonl'}  (TensorBoard: {OUT / 'train' / 'tb'})")
    print(f"eval report:    {OUT / 'eval' / 'report.html'}  (results: {OUT / 'eval' / 'results.json'})")


if __name__ == "__main__":
    main()
