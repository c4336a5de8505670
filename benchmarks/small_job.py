"""A laptop-sized job end to end: 5,000 real documents on one core, start-up included.

    .venv/bin/python benchmarks/small_job.py [--docs 5000] [--repeats 3]

What a user waits for, from the command to its exit: each run is a fresh process pinned to CPU 0
(`taskset -c 0`), so imports, model loads and Ray's start-up (when it starts) are counted.
- DataTrove: the FineWeb chain of benchmarks/phase1.py (JsonlReader → LanguageFilter →
  GopherRepetition → GopherQuality → C4Quality → FineWebQuality → JsonlWriter), all shards in one process;
- ours, phase 1: `dataengine run configs/pipeline.yaml --set dedup=null`;
- ours, default: `dataengine run configs/pipeline.yaml` (phase 1, then the dedup phase).
The three alternate run by run; each reports the median of --repeats, in wall seconds and in CPU
seconds of the process tree (on a shared machine, what the wall time would be on an idle core). The corpus is phase1.py's
(`build_corpus`, `write_shards`): real English web text and pages, and Chinese Wikipedia; it holds
3,182 distinct documents, so the rest of --docs repeats them under new ids (the dedup phase removes
those). Prints JSON and writes it to benchmarks/_work/small_job.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import phase1  # noqa: E402  (benchmarks/ is not a package)

ROOT = phase1.ROOT
WORK = ROOT / "benchmarks" / "_work" / "small_job"
PIN = ["taskset", "-c", "0"]


def commands(folder: Path, out: Path) -> dict[str, list[str]]:
    cli = str(Path(sys.executable).with_name("dataengine"))
    ours = [cli, "run", str(ROOT / "configs/pipeline.yaml"), "--input", str(folder), "--quiet"]
    datatrove = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); from pathlib import Path; import phase1; "
        f"phase1._datatrove_tasks(Path({str(folder)!r}), Path({str(out / 'datatrove')!r}), 0, phase1.SHARDS)"
    )
    return {
        "datatrove": [sys.executable, "-c", datatrove],
        "ours_phase1": [*ours, "--output", str(out / "phase1"), "--set", "dedup=null"],
        "ours_default": [*ours, "--output", str(out / "default")],
    }


def timed(command: list[str], out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process tree): on a shared machine the CPU time of a job pinned
    to one core is what its wall time would be on an idle one, so both are reported."""
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([*PIN, *command], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:3])} failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    docs = phase1.build_corpus(args.docs)
    copies = range(1, -(-args.docs // max(1, len(docs))))
    docs = (docs + [{"id": f"{d['id']}-{k}", "text": d["text"]} for k in copies for d in docs])[: args.docs]
    folder = WORK / "corpus"
    phase1.write_shards(docs, folder)
    out = WORK / "out"
    runs = commands(folder, out)
    targets = {"datatrove": out / "datatrove", "ours_phase1": out / "phase1", "ours_default": out / "default"}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, command in runs.items():  # alternating, so drift in the machine's load hits all three
            wall, used = timed(command, targets[name])
            seconds[name].append(round(wall, 2))
            cpu[name].append(round(used, 2))
    median = {name: statistics.median(s) for name, s in seconds.items()}
    median_cpu = {name: statistics.median(s) for name, s in cpu.items()}
    phase1_run = json.loads((out / "phase1" / "run.json").read_text())
    default_run = json.loads((out / "default" / "run.json").read_text())
    result = {
        "documents": len(docs),
        "input_mb": round(sum(p.stat().st_size for p in folder.iterdir()) / 1e6, 2),
        "pinned": " ".join(PIN),
        "load_average": os.getloadavg(),
        "seconds": seconds,
        "median_s": median,
        "speedup_vs_datatrove": {
            name: round(median["datatrove"] / median[name], 2) for name in ("ours_phase1", "ours_default")
        },
        "cpu_seconds": cpu,
        "median_cpu_s": median_cpu,
        "cpu_speedup_vs_datatrove": {
            name: round(median_cpu["datatrove"] / median_cpu[name], 2)
            for name in ("ours_phase1", "ours_default")
        },
        "ours_phase1": {
            "executor": phase1_run["timings"].get("executor"),
            "kept": phase1_run["kept"],
            "wall_s_inside": phase1_run["timings"]["wall_s"],
        },
        "ours_default": {
            "kept": default_run["kept"],
            "phase1_kept": default_run.get("phase1", {}).get("kept"),
            "wall_s_inside": default_run["timings"]["wall_s"],
            "dedup_s": default_run["timings"].get("dedup_s"),
        },
    }
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK.parent / "small_job.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
