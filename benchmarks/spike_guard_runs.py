"""The shipped tiny config, trained by this checkout and by the trainer before issue 16, on the demo's
data: skipped steps and held-out loss per seed.

    make demo                      # demo_out/run/kept and demo_out/tokenizer
    python benchmarks/spike_guard_runs.py [--seeds 0 1 2] [--baseline 1170844] [--write]

Two settings: the demo's (shards at seq_len 256, data.doc_mask on) and seq_len 512 without the
document mask, where the tiny config's lr of 3e-3 sets off gradient-norm excursions. Each run is one
process pinned to one core (`taskset`, two runs at a time on this 2-core machine). The baseline is a
git worktree of `--baseline`, run with a ledger per run so its runs do not steer each other.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from results_md import replace_section  # benchmarks/ is on the path of a script run from it

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Spike guard and sampler on the tiny config (issue 16)"
SETTINGS = {"demo (seq 256, doc_mask on)": (256, "true"), "seq 512, doc_mask off": (512, "false")}


def pack(kept: Path, tokenizer: Path, seq_len: int, out: Path) -> Path:
    cmd = [str(ROOT / ".venv/bin/dataengine"), "pack", "--input", str(kept), "--tokenizer", str(tokenizer)]
    subprocess.run([*cmd, "--seq-len", str(seq_len), "--output", str(out)], check=True, capture_output=True)
    return out


def train(root: Path, shards: Path, doc_mask: str, seed: int, run_dir: Path, core: int) -> dict:
    cmd = [
        "taskset", "-c", str(core), sys.executable, "-m", "train", "configs/train/tiny.yaml",
        "--set", f"data.shards={shards}", "--set", f"run_dir={run_dir}", "--set", f"data.doc_mask={doc_mask}",
        "--set", f"train.seed={seed}", "--set", f"usage.ledger={run_dir}/usage.sqlite",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
    heldout = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    heldout = [r["heldout/loss"] for r in heldout if "heldout/loss" in r]
    spikes = run_dir / "spikes.jsonl"
    return {
        "skipped": len(spikes.read_text().splitlines()) if spikes.is_file() else 0,
        "heldout": heldout[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--baseline", default="1170844", help="git revision of the trainer to compare with")
    parser.add_argument("--kept", type=Path, default=ROOT / "demo_out/run/kept")
    parser.add_argument("--tokenizer", type=Path, default=ROOT / "demo_out/tokenizer/tokenizer.json")
    parser.add_argument("--write", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="spike_guard_"))
    baseline = work / "baseline"
    subprocess.run(["git", "worktree", "add", "--detach", str(baseline), args.baseline], cwd=ROOT, check=True)
    jobs = []
    for name, (seq_len, doc_mask) in SETTINGS.items():
        shards = pack(args.kept, args.tokenizer, seq_len, work / f"shards{seq_len}")
        for seed in args.seeds:
            for side, root in (("baseline", baseline), ("this", ROOT)):
                jobs.append((name, side, seed, root, shards, doc_mask, work / f"{side}-{seq_len}-{seed}"))
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(train, root, shards, mask, seed, run_dir, i % 2)
                for i, (_, _, seed, root, shards, mask, run_dir) in enumerate(jobs)
            ]
            results = [f.result() for f in futures]
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=ROOT, check=False)
    rows = []
    for name in SETTINGS:
        for side in ("baseline", "this"):
            mine = [r for (n, s, *_), r in zip(jobs, results, strict=True) if n == name and s == side]
            losses = [r["heldout"] for r in mine]
            rows.append(
                f"| {name} | {args.baseline if side == 'baseline' else 'this checkout'} "
                f"| {', '.join(str(r['skipped']) for r in mine)} | {', '.join(f'{x:.3f}' for x in losses)} "
                f"| {statistics.median(losses):.3f} | {statistics.mean(losses):.3f} |"
            )
    body = "\n".join(
        [
            SECTION,
            "",
            f"Command: `python benchmarks/spike_guard_runs.py --write` after `make demo` (configs/train/tiny.yaml, "
            f"150 steps, global batch 8; seeds {' '.join(map(str, args.seeds))}; each run one process on one core).",
            "Skipped = lines in RUN/spikes.jsonl; held-out = `heldout/loss` at step 150 (16 held-out sequences).",
            "",
            "| setting | trainer | skipped steps per seed | held-out loss per seed | median | mean |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )
    if args.write:
        replace_section(SECTION, body)
    print(body)


if __name__ == "__main__":
    main()
