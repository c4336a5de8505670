"""The trainer's sampler: cost per step at 1M and 100M sequences, against the sampler it replaced.

    taskset -c 0 python benchmarks/sampler_cost.py [--sizes 1000000 100000000] [--batch 512]
        [--shards SHARDS [--coverage-batch 8]] [--write]

Ours (train/sampler.py) draws a global batch from per-epoch permutations: O(batch) per step, plus one
permutation per epoch (timed separately: it is paid once per epoch, or per channel epoch). The
previous sampler (weighted Gumbel top-k over every sequence each step, train/data.py at commit
1170844, loaded from git) is O(sequences) per step. Both on synthetic channel labels (3 channels,
60/30/10), natural mix and with channel weights; one process, one core.

With --shards, also the coverage of one nominal epoch (sequences // batch steps) on real shards: the
share of sequences used exactly once, never, and the most uses of one sequence, for both samplers at
the shipped usage.decay (0.5).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.results_md import replace_section  # noqa: E402
from dataengine.pack.shards import ShardReader  # noqa: E402
from train.data import sequence_channels  # noqa: E402
from train.sampler import Sampler  # noqa: E402

PREVIOUS = "1170844"  # the last commit with the Gumbel top-k sampler
NAMES = ["code", "web", "zh"]
WEIGHTS = {"code": 0.2, "web": 0.5, "zh": 0.3}


def previous_sampler_class() -> type:
    source = subprocess.run(
        ["git", "show", f"{PREVIOUS}:train/data.py"], capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType("previous_data")
    exec(compile(source, f"{PREVIOUS}:train/data.py", "exec"), module.__dict__)
    return module.Sampler


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(n: int, batch: int, weights: dict[str, float] | None, steps: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    channels = rng.choice(3, size=n, p=[0.1, 0.6, 0.3]).astype(np.int64)
    start = time.perf_counter()
    ours = Sampler(channels, NAMES, seed=0, batch_size=batch, channel_weights=weights)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    ours.draw(0)  # builds the first epoch's permutation(s)
    first = time.perf_counter() - start
    step = iter(range(1, 10**9))
    per_step = median_seconds(lambda: ours.draw(next(step)), steps)
    previous = previous_sampler_class()(channels, NAMES, seed=0, channel_weights=weights, decay=0.5)
    old_step = iter(range(10**9))
    old_per_step = median_seconds(lambda: previous.commit(previous.draw(next(old_step), batch)), 3)
    return {"setup": setup, "first": first, "step": per_step, "old_step": old_per_step}


def coverage(shards: str, batch: int) -> list[str]:
    """One nominal epoch on real shards: how often each sequence was used, both samplers."""
    reader = ShardReader(shards)
    channels = sequence_channels(reader)
    n, steps = len(channels), len(channels) // batch
    ours = Sampler(channels, reader.channels, seed=0, batch_size=batch)
    previous = previous_sampler_class()(channels, reader.channels, seed=0, decay=0.5)
    uses = {"ours (permutation per epoch)": np.zeros(n, dtype=np.int64)}
    uses["previous (Gumbel top-k, decay 0.5)"] = np.zeros(n, dtype=np.int64)
    for step in range(steps):
        np.add.at(uses["ours (permutation per epoch)"], ours.draw(step), 1)
        drawn = previous.draw(step, batch)
        previous.commit(drawn)
        np.add.at(uses["previous (Gumbel top-k, decay 0.5)"], drawn, 1)
    rows = []
    for name, u in uses.items():
        rows.append(
            f"| {name} | {n:,} | {steps} x {batch} | {np.mean(u == 1):.2%} | {np.mean(u == 0):.2%} | {u.max()} |"
        )
    return rows


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 100_000_000])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--shards", help="token shards for the one-epoch coverage table")
    parser.add_argument("--coverage-batch", type=int, default=8, help="global batch there (tiny.yaml's)")
    parser.add_argument("--write", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        for mix, weights in (("natural", None), ("weights 0.2/0.5/0.3", WEIGHTS)):
            r = measure(n, args.batch, weights, args.steps)
            rows.append(
                f"| {n:,} | {mix} | {r['step'] * 1e6:,.0f} µs | {r['first']:.2f} s | {r['setup']:.2f} s "
                f"| {r['old_step'] * 1e3:,.0f} ms | {r['old_step'] / r['step']:,.0f}x |"
            )
            print(rows[-1], flush=True)
    body = "\n".join(
        [
            "## Trainer sampler: cost per step (issue 16)",
            "",
            f"Machine: {cpu_name()}, one process pinned to one core "
            f"(`taskset -c 0`). Command: `taskset -c 0 python benchmarks/sampler_cost.py --write` "
            f"(global batch {args.batch}; medians over {args.steps} steps, 3 for the previous sampler).",
            "",
            "Per step is the steady state: the batch's seats, then O(batch) lookups in the epoch's "
            "permutation. The epoch permutation is built once per epoch (per channel with weights); "
            "`first draw` includes it. Previous = the Gumbel top-k sampler it replaced, O(sequences) per step.",
            "",
            "| sequences | mix | per step | first draw (epoch permutation) | setup | previous, per step | speed-up |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )
    if args.shards:
        body += "\n".join(
            [
                "",
                f"One nominal epoch on `{args.shards}` (`--shards`; sequences // {args.coverage_batch} steps):",
                "",
                "| sampler | sequences | steps x batch | used exactly once | never used | most uses |",
                "| --- | --- | --- | --- | --- | --- |",
                *coverage(args.shards, args.coverage_batch),
                "",
            ]
        )
    if args.write:
        replace_section("## Trainer sampler: cost per step (issue 16)", body)
    print(body)


if __name__ == "__main__":
    main()
