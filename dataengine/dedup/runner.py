"""Phase 2 as one job: documents in, OUT/kept, OUT/rejected and OUT/run.json out.

Inputs in any format ``dataengine run`` reads, on a local disk or behind a pyarrow.fs URI (s3://...);
all but Parquet document rows (phase-1 output) are first read by run's readers into OUT/_staged
(dataengine/dedup/staging.py; records rejected while reading go to OUT/rejected and count). The named
passes (dataengine/dedup/passes.py: meta, url, exact, lsh, components, decisions, semantic, write) then
run on Ray Data, or in this process for a small job (dataengine/dedup/executors.py), and the writer
(dataengine/dedup/writer.py) splits every input file into kept/ and rejected/ (reason, duplicate_of).
run.json, with counts that must add up to the input exactly, is written last: it marks a complete run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dataengine.dedup import executors, files, passes, staging, writer
from dataengine.dedup.config import DedupConfig
from dataengine.dedup.decontam import BenchmarkIndex
from dataengine.dedup.writer import join
from dataengine.embed import cache, check_embedder
from dataengine.io.config import InputConfig
from dataengine.pack.inputs import reader_config
from dataengine.runtime import versions

log = logging.getLogger("dataengine.dedup")


def _partitions(cfg: DedupConfig, n_rows: int) -> int:
    """Enough shuffle partitions that no group holds more than ~2M band rows."""
    bands = cfg.minhash.band_params[0] if cfg.minhash.enabled else 1
    return max(cfg.num_partitions, -(-n_rows * bands // 2_000_000))


def _output_uri(output: str | Path) -> str:
    return str(output) if "://" in str(output) else os.path.abspath(output)


def run_dedup(
    inputs: Sequence[str | Path],
    output: str | Path,
    cfg: DedupConfig | None = None,
    reader: InputConfig | None = None,
) -> dict[str, Any]:
    """Run phase 2 on input files/folders/globs/URIs (any format of ``dataengine run``, read with ``reader``,
    default ``reader_config()``); write OUTPUT/{kept,rejected}/ and OUTPUT/run.json (OUTPUT a local path
    or a URI). A missing input raises FileNotFoundError, an input of unknown format staging.InputError,
    before any work."""
    cfg = cfg or DedupConfig()
    reader = reader or reader_config()
    t0 = time.time()
    timings: dict[str, float] = {}
    if cfg.semantic.enabled:
        try:
            check_embedder(cfg.semantic.embed, "dedup.semantic.embed.embedder")
        except ValueError as exc:
            raise staging.InputError(str(exc)) from exc
    sources = staging.plan_inputs(inputs, reader)
    out = _output_uri(output)
    _refuse_inputs_in_output(sources, out)
    writer.remove(
        join(out, "run.json")
    )  # the commit marker goes first: a crash leaves no complete-looking run
    writer.remove(join(out, "semantic_report.json"))  # written again when semantic dedup runs
    writer.remove(join(out, cache.FOLDER))  # the embeddings of what this run embeds, or none
    writer.remove(join(out, ".dedup-tmp"))  # left by versions that renamed a temporary folder
    staged = staging.stage(sources, join(out, "_staged"), join(out, "rejected"), reader)
    if staged.units:
        timings["stage"] = round(time.time() - t0, 3)
    inputs_ = files.list_inputs(staged.paths)
    if cfg.survivor == "quality":
        _require_quality(inputs_)
    total = sum(f.num_rows for f in inputs_)
    bench = BenchmarkIndex.build(cfg.decontam) if cfg.decontam.enabled else None
    job = passes.Job(None, cfg, inputs_, bench, out)
    if total:  # else every record was rejected while reading: no passes
        job.ex = executors.choose(cfg, total, _partitions(cfg, total))
        log.info("dedup: %d documents in %d files, %s executor", total, len(inputs_), job.ex.name)
        with job.ex.context():
            passes.run(job, timings)

    by_reason: Counter[str] = Counter()
    kept = 0
    for row in job.written:
        kept += int(row["kept"])
        by_reason.update(json.loads(row["counts"]))
    rejected = sum(by_reason.values())
    non_empty = sum(1 for f in inputs_ if f.num_rows)  # an empty input file has no rows to group
    if len(job.written) != non_empty or kept + rejected != total:
        raise RuntimeError(f"dedup conservation broken: input {total}, kept {kept}, rejected {rejected}")
    by_reason.update(staged.rejected)  # records rejected while reading (io:*) count as input too
    parts = [writer.part_name(int(row["file"])) for row in job.written]
    writer.remove_stale(join(out, "kept"), parts)
    writer.remove_stale(join(out, "rejected"), parts + staged.rejected_files)
    for sub in ("kept", "rejected"):
        writer.make_dir(join(out, sub))
    writer.remove(join(out, "_staged"))  # its rows now live in kept/ and rejected/
    timings["total"] = round(time.time() - t0, 3)
    run = {
        "phase": "dedup",
        "inputs": [str(p) for p in inputs],
        "config": cfg.model_dump(mode="json"),
        "reader": reader.model_dump(mode="json"),
        # inputs read by run's readers into OUT/_staged (removed now): units, documents, io:* rejected
        "staged": {"units": staged.units, "documents": staged.documents, "rejected": staged.rejected.total()},
        "lsh": {"bands": cfg.minhash.band_params[0], "rows": cfg.minhash.band_params[1]},
        "versions": versions(),
        "timings": timings,
        "input": total + staged.rejected.total(),
        "kept": kept,
        "rejected": rejected + staged.rejected.total(),
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "decontam": job.report,
    }
    if cfg.minhash.enabled and total:
        stored = job.signatures_stored or 0
        run["minhash_signatures"] = {"from_column": stored, "computed": total - stored}
    if cfg.semantic.enabled:
        # per language: documents clustered and removed, the epsilon used, NN-cosine quantiles and the sweep
        run["semantic"] = job.semantic
        if job.embedding_cache:
            run["semantic"]["embedding_cache"] = job.embedding_cache
        if job.semantic_stats is not None:  # the same with histograms, for choosing epsilon
            full = job.semantic_stats.summary(
                {k: v["epsilon"] for k, v in job.semantic["by_language"].items()}, True
            )
            writer.write_json(
                join(out, "semantic_report.json"), {"keep": cfg.semantic.keep, "languages": full}
            )
    writer.write_json(join(out, "run.json"), run)
    return run


def _refuse_inputs_in_output(sources: Sequence[staging.Source], out: str) -> None:
    """The writer replaces OUT/kept and OUT/rejected file by file, so they cannot also be read as input."""
    for sub in ("kept", "rejected"):
        folder = join(out, sub) + "/"
        for s in sources:
            if s.path.startswith(folder):
                raise staging.InputError(
                    f"dedup input {s.path} lies in the output's {sub}/ folder, which this run rewrites; "
                    "choose another output"
                )


def _require_quality(inputs_: Sequence[files.InputFile]) -> None:
    """`survivor: quality` ranks by the quality stage's score: without the column it would silently
    keep the earliest document, so it fails before any work instead."""
    for f in inputs_:
        if f.num_rows and "quality" not in files.read_schema(f.path).names:
            raise staging.InputError(
                f"dedup.survivor is 'quality' but {f.path} has no `quality` column (phase 1 writes it with "
                "stages.quality on); set dedup.survivor to longest or earliest"
            )
