"""Phase 1 on Ray Data: units of input → one fused stage actor per worker → kept/ and rejected/ Parquet.

A unit (a file, or a line-aligned byte range of a large plain file) is the grain of work,
of atomic output and of resume: its two Parquet files are renamed into place and then its
marker `_units/<unit_id>.json` (holding its statistics) is written. The files are named
`part-<position>-<unit_id>.parquet`, position in the plan (sorted inputs) first, so that readers
listing them by name see the input order wherever the corpus lives. A re-run skips units
with a marker and redoes the others from scratch under the same file names, so nothing is
written twice and nothing is missed; run.json sums the markers.

Run directory (DESIGN §3.2): OUT/kept is always the final kept set. Without the dedup phase, phase 1
writes OUT/{kept,rejected,_units}; with it, phase 1 writes OUT/phase1/{kept,rejected,_units}, dedup
reads OUT/phase1/kept and writes OUT/dedup/{rejected,run.json}, and its kept set is moved to OUT/kept.

Small jobs run in this process (`ray.executor`): Ray's start-up and scheduling cost more than the work
of a few thousand documents. Both executors run `process_unit`, so markers, resume and errors are the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from itertools import islice

from pyarrow import fs as pafs

from dataengine.config import PipelineConfig
from dataengine.io.paths import expand_inputs, file_stamps
from dataengine.io.readers import read_unit
from dataengine.io.units import Unit, plan_units, set_aside_unknown
from dataengine.io.writers import AtomicParquetWriter, exists, read_json, resolve, write_json_atomic
from dataengine.keep_top import resolve_keep_top
from dataengine.processor import DocumentProcessor
from dataengine.progress import PhaseProgress
from dataengine.runtime import alive_cpus, alive_resources, init_ray, versions
from dataengine.stats import UNKNOWN, Breakdown, RunStats, breakdowns_to_dict, source_file

log = logging.getLogger(__name__)


class RunError(RuntimeError):
    """The run cannot start or did not complete; the message says what to do."""


def phase1_dir(cfg: PipelineConfig, output: str) -> str:
    """Where phase 1 writes kept/, rejected/ and _units/: OUT itself, or OUT/phase1 when a dedup phase
    follows (OUT/kept then receives the final kept set)."""
    return posixpath.join(output, "phase1") if cfg.dedup is not None else output


def process_unit(unit: Unit, position: int, processor: DocumentProcessor, output: str, on_batch=None) -> dict:
    """Read, process and write one unit into `output` (phase 1's directory); return its marker
    (statistics included). `on_batch(documents, kept)` is told of each batch, for progress."""
    cfg = processor.cfg
    fs, root = resolve(output)
    start = time.perf_counter()
    name = f"part-{position:05d}-{unit.unit_id}.parquet"
    kept_w = AtomicParquetWriter(fs, f"{root}/kept/{name}", processor.schema, cfg.write.compression)
    rej_w = AtomicParquetWriter(
        fs, f"{root}/rejected/{name}", processor.rejected_schema, cfg.write.compression
    )
    processor.take_stats()  # forget anything left from a failed unit before this one
    try:
        batch: list[dict] = []
        for row in read_unit(unit, cfg.input):
            batch.append(row)
            if len(batch) >= cfg.ray.batch_size:
                _write_batch(processor, batch, kept_w, rej_w, on_batch)
                batch = []
        _write_batch(processor, batch, kept_w, rej_w, on_batch)
    except BaseException:
        kept_w.abort()
        rej_w.abort()
        raise
    kept_w.close()
    rej_w.close()
    stats = processor.take_stats()
    marker = {
        "unit": asdict(unit),
        "seconds": round(time.perf_counter() - start, 4),
        "stats": stats.to_dict(),
    }
    write_json_atomic(fs, f"{root}/_units/{unit.unit_id}.json", marker)
    return marker


def _write_batch(processor: DocumentProcessor, batch: list[dict], kept_w, rej_w, on_batch=None) -> None:
    kept, rejected = processor.process(batch)
    kept_t, rej_t = processor.to_tables(kept, rejected)
    kept_w.write(kept_t)
    rej_w.write(rej_t)
    if on_batch is not None:
        on_batch(len(kept) + len(rejected), len(kept))


def attempt_unit(
    unit: Unit, position: int, processor: DocumentProcessor, output: str, on_batch=None
) -> tuple[dict | None, str]:
    """(marker, '') or (None, the error as run.json records it): one broken unit must not stop the
    others, on Ray or in process."""
    try:
        return process_unit(unit, position, processor, output, on_batch), ""
    except Exception as exc:
        log.exception("unit %s (%s) failed", unit.unit_id, unit.path)
        return None, f"{unit.path}: {type(exc).__name__}: {exc}"


class UnitWorker:
    """The Ray actor: builds the stage chain (and loads models) once, then processes units."""

    def __init__(self, cfg: dict, output: str):
        self.processor = DocumentProcessor(PipelineConfig.model_validate(cfg))
        self.output = output

    def __call__(self, batch: dict) -> dict:
        done = {"unit_id": [], "input": [], "kept": [], "error": []}
        for item, position in zip(batch["unit"], batch["position"], strict=True):
            unit = Unit(**json.loads(item))
            marker, error = attempt_unit(unit, int(position), self.processor, self.output)
            done["input"].append(marker["stats"]["input"] if marker else 0)
            done["kept"].append(marker["stats"]["kept"] if marker else 0)
            done["error"].append(error)
            done["unit_id"].append(unit.unit_id)
        return done


def choose_executor(cfg: PipelineConfig, total_bytes: int) -> str:
    """'local' or 'ray' (see RayConfig.executor). `auto` never starts Ray for a job it can finish
    sooner alone, and never runs alone when the user pointed at a cluster or Ray is already up."""
    if cfg.ray.executor != "auto":
        return cfg.ray.executor
    ray = sys.modules.get("ray")  # not imported just to ask: importing Ray alone takes a second
    if ray is not None and ray.is_initialized():
        return "ray"
    if cfg.ray.address or os.environ.get("RAY_ADDRESS"):
        return "ray"
    return "local" if total_bytes <= cfg.ray.local_max_bytes else "ray"


def _run_local(
    cfg: PipelineConfig, units: list[tuple[int, Unit]], output: str, bar: PhaseProgress, weights: dict
) -> list[str]:
    """The units one after another in this process, with one stage chain (models loaded once)."""
    processor = DocumentProcessor(cfg)
    errors = []
    for position, unit in units:
        _, error = attempt_unit(unit, position, processor, output, on_batch=bar.update)
        bar.update(0, 0, weights[unit.unit_id])
        if error:
            errors.append(error)
    return errors


def _run_on_ray(
    cfg: PipelineConfig, units: list[tuple[int, Unit]], output: str, bar: PhaseProgress, weights: dict
) -> list[str]:
    ray = init_ray(cfg.ray.address)
    workers = cfg.ray.num_workers or alive_cpus(ray)
    workers = max(1, min(workers, len(units)))
    items = [{"unit": json.dumps(asdict(u)), "position": i} for i, u in units]
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        UnitWorker,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=workers),
        fn_constructor_kwargs={"cfg": cfg.model_dump(mode="json"), "output": output},
        num_cpus=1,
        num_gpus=gpus_per_worker(cfg, workers, alive_resources(ray).get("GPU", 0)),
    )
    errors = []
    for row in ds.iter_rows():
        bar.update(int(row["input"]), int(row["kept"]), weights[row["unit_id"]])
        if row["error"]:
            errors.append(row["error"])
    return errors


def unit_weights(units: Sequence[Unit], sizes: dict[str, int]) -> dict[str, int]:
    """Input bytes per unit (a byte range's length; a file's size shared by its row-group units), which
    progress counts so that its ETA does not depend on how large units or documents are."""
    per_file = Counter(u.path for u in units)
    weights = {}
    for u in units:
        size = sizes.get(u.path, 0)
        if u.format == "parquet" or (u.start == 0 and u.end is None):
            weights[u.unit_id] = size // per_file[u.path]
        else:
            weights[u.unit_id] = (size if u.end is None else u.end) - u.start
    return weights


def gpus_per_worker(cfg: PipelineConfig, workers: int, cluster_gpus: float) -> float:
    """`ray.num_gpus_per_worker`, or by default the cluster's GPUs shared evenly when an encoder runs."""
    if cfg.ray.num_gpus_per_worker is not None:
        return cfg.ray.num_gpus_per_worker
    from dataengine.classifiers.encoder import is_encoder_head

    if not cluster_gpus or not any(is_encoder_head(p) for p in cfg.model_paths()):
        return 0
    return min(1.0, cluster_gpus / workers)


def _sample_batches(units: list[Unit], cfg: PipelineConfig, n: int) -> Iterator[list[dict]]:
    """About `n` input rows, the first ones of every unit in equal parts (all units are visited while
    n allows), in batches. A unit that cannot be read is left to the workers, which report it."""
    per_unit = -(-n // max(1, len(units)))
    taken = 0
    for unit in units:
        if taken >= n:
            return
        try:
            rows = list(islice(read_unit(unit, cfg.input), min(per_unit, n - taken)))
        except Exception:  # noqa: BLE001 - the same unit fails in phase 1 with its error recorded
            log.warning("keep_top sample: %s could not be read", unit.path)
            continue
        taken += len(rows)
        for start in range(0, len(rows), cfg.ray.batch_size):
            yield rows[start : start + cfg.ray.batch_size]


def _plan_fingerprint(cfg: PipelineConfig, units: list[Unit]) -> str:
    """What must match for a re-run on the same OUT to resume rather than mix two runs."""
    settings = cfg.model_dump(mode="json", exclude={"inputs", "output", "ray", "write", "dedup"})
    signatures = cfg.signature_config()  # the minhash column is part of what kept/ holds
    settings["minhash_signatures"] = signatures.model_dump(mode="json") if signatures is not None else None
    blob = json.dumps({"config": settings, "units": [u.unit_id for u in units]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _changed_inputs(before: dict | None, now: dict[str, list]) -> str:
    """What differs between the inputs a run was planned on and today's ('' when nothing does); a
    plan written before inputs were stamped has nothing to compare."""
    if before is None:
        return ""
    changes = [f"{p} is new" for p in sorted(set(now) - set(before))]
    changes += [f"{p} is gone" for p in sorted(set(before) - set(now))]
    for path in sorted(set(before) & set(now)):
        (size, mtime), (new_size, new_mtime) = before[path], now[path]
        if size != new_size:
            changes.append(f"{path}: {size} -> {new_size} bytes")
        elif mtime != new_mtime:
            changes.append(f"{path}: modified since (same size)")
    shown = "; ".join(changes[:5])
    return shown + (f"; and {len(changes) - 5} more" if len(changes) > 5 else "")


def run(
    cfg: PipelineConfig, inputs: list[str] | None = None, output: str | None = None, progress: bool = True
) -> dict:
    """Run phase 1 (and the dedup phase when configured) and return run.json's content. Resumes when
    `output` holds the same plan."""
    started = time.time()
    paths = list(cfg.inputs) + list(inputs or [])
    output = output or cfg.output
    if not paths:
        raise RunError("no input: give --input PATH (or `inputs:` in the config)")
    if not output:
        raise RunError("no output directory: give --output DIR (or `output:` in the config)")
    cfg = cfg.model_copy(update={"inputs": paths, "output": output})
    files, set_aside = set_aside_unknown(expand_inputs(paths), paths, cfg.input)
    stamps = file_stamps(files)
    sizes = {path: stamp[0] or 0 for path, stamp in stamps.items()}
    units = plan_units(files, cfg.input, sizes)
    fs, root = resolve(output)
    phase1 = phase1_dir(cfg, output)
    _, p1_root = resolve(phase1)
    _refuse_other_layout(cfg, fs, root, output)
    plan_path = f"{p1_root}/_units/plan.json"
    previous = read_json(fs, plan_path) if exists(fs, plan_path) else None
    if previous is not None and (changed := _changed_inputs(previous.get("inputs"), stamps)):
        raise RunError(
            f"{output} holds a run of these inputs, but they changed since it started ({changed}); "
            "its finished units would not hold the new data: use a new --output (or delete it)"
        )
    todo = [(i, u) for i, u in enumerate(units) if not exists(fs, f"{p1_root}/_units/{u.unit_id}.json")]
    if cfg.stages.quality is not None and cfg.stages.quality.uses_keep_top():
        if previous is not None and previous.get("keep_top_thresholds"):
            # the thresholds the finished units were decided with, without sampling again
            thresholds = previous["keep_top_thresholds"]
            quality = cfg.stages.quality.model_copy(update={"keep_top_thresholds": thresholds})
            cfg = cfg.model_copy(update={"stages": cfg.stages.model_copy(update={"quality": quality})})
        else:
            cfg = resolve_keep_top(cfg, _sample_batches(units, cfg, cfg.stages.quality.keep_top_sample))
    fingerprint = _plan_fingerprint(cfg, units)
    if previous is not None and previous.get("fingerprint") != fingerprint:
        raise RunError(
            f"{output} holds a run with other inputs or settings; use a new --output "
            "(or delete it) instead of mixing two runs"
        )
    if previous is None:
        plan = {"fingerprint": fingerprint, "units": len(units), "inputs": stamps}
        if cfg.stages.quality is not None and cfg.stages.quality.keep_top_thresholds is not None:
            plan["keep_top_thresholds"] = cfg.stages.quality.model_dump(mode="json")["keep_top_thresholds"]
        write_json_atomic(fs, plan_path, plan)

    errors: list[str] = []
    executor = choose_executor(cfg, sum(sizes.values()))
    if todo:
        weights = unit_weights(units, sizes)
        total = sum(weights[u.unit_id] for _, u in todo)
        log.info("phase 1: %d unit(s) to do of %d, %s", len(todo), len(units), executor)
        with PhaseProgress("phase 1", total, enabled=progress) as bar:
            execute = _run_local if executor == "local" else _run_on_ray
            errors = execute(cfg, todo, phase1, bar, weights)
    result = summarize(
        cfg,
        units,
        output,
        skipped=len(units) - len(todo),
        started=started,
        errors=errors,
        set_aside=set_aside,
    )
    result["timings"]["phase1_s"] = result["timings"]["wall_s"]
    result["timings"]["executor"] = executor
    if cfg.dedup is not None and not errors:
        result = dedup_phase(cfg, output, result, rerun=bool(todo))
    result["timings"]["wall_s"] = round(time.time() - started, 3)  # both phases, start-up included
    write_json_atomic(fs, f"{root}/run.json", result)
    if cfg.write.report:
        from dataengine.report import write_report

        result["report"] = write_report(output)
    if errors:
        raise RunError(
            f"{len(errors)} unit(s) failed; run.json has the counts of the rest. Re-run the same command "
            "to retry them:\n  " + "\n  ".join(errors[:10])
        )
    return result


def _refuse_other_layout(cfg: PipelineConfig, fs, root: str, output: str) -> None:
    """A run with the dedup phase keeps phase 1 in OUT/phase1, one without in OUT itself: switching on
    the same OUT would mix two runs' files in OUT/kept."""
    if cfg.dedup is not None and exists(fs, f"{root}/_units/plan.json"):
        held = "whose phase 1 wrote OUT/kept itself (a run without the dedup phase, or by an older version)"
    elif cfg.dedup is None and exists(fs, f"{root}/phase1/_units/plan.json"):
        held = "with the dedup phase (phase 1 in OUT/phase1)"
    else:
        return
    raise RunError(
        f"{output} holds a run {held}; use a new --output (or delete it) instead of mixing two runs"
    )


def dedup_phase(cfg: PipelineConfig, output: str, phase1: dict, rerun: bool) -> dict:
    """Phase 2 on OUT/phase1/kept: rejections into OUT/dedup/rejected, the final kept set into OUT/kept;
    run.json's counts then cover both phases and still add up. Resumable: a dedup already done with the
    same config is not redone, and a move cut short is finished."""
    from dataengine.dedup.runner import run_dedup

    started = time.time()
    fs, root = resolve(output)
    record = f"{root}/dedup/run.json"
    dedup = read_json(fs, record) if exists(fs, record) else None
    moving = exists(fs, f"{root}/dedup/kept")  # dedup finished, its kept set not all moved yet
    if (
        rerun
        or dedup is None
        or dedup["config"] != cfg.dedup.model_dump(mode="json")
        or not (moving or exists(fs, f"{root}/kept"))
    ):
        # the old record first: a crash after this point makes the next run dedup again
        for stale in (record, f"{root}/kept"):
            _delete(fs, stale)
        log.info("dedup phase: %d documents kept by phase 1", phase1["kept"])
        dedup = run_dedup(
            [posixpath.join(output, "phase1", "kept")], posixpath.join(output, "dedup"), cfg.dedup
        )
    _move_files(fs, f"{root}/dedup/kept", f"{root}/kept")
    if dedup["input"] != phase1["kept"]:
        raise RunError(f"{record}: dedup saw {dedup['input']} documents, phase 1 kept {phase1['kept']}")
    reasons = Counter(phase1["rejected_by_reason"])
    reasons.update(dedup["rejected_by_reason"])
    groups, rejected_bytes = _attribute_dedup(fs, f"{root}/dedup/rejected", phase1)
    kept_bytes = phase1["kept_bytes"] - rejected_bytes
    result = dict(phase1)
    result.update(
        {
            "kept": dedup["kept"],
            "kept_bytes": kept_bytes,
            **groups,
            "rejected": sum(reasons.values()),
            "rejected_by_reason": dict(sorted(reasons.items())),
            "phase1": {
                k: phase1[k] for k in ("input", "kept", "rejected", "rejected_by_reason", "kept_bytes")
            },
            "funnel_docs": {**phase1["funnel_docs"], "dedup": dedup["kept"]},
            "funnel_bytes": {**phase1["funnel_bytes"], "dedup": kept_bytes},
            "dedup": {k: v for k, v in dedup.items() if k != "config"},
            "timings": {**phase1["timings"], "dedup_s": round(time.time() - started, 3)},
            "output": {
                "kept": posixpath.join(output, "kept"),
                "rejected": [
                    posixpath.join(output, "phase1", "rejected"),
                    posixpath.join(output, "dedup", "rejected"),
                ],
                "phase1_kept": posixpath.join(output, "phase1", "kept"),
            },
        }
    )
    assert result["input"] == result["kept"] + result["rejected"], "dedup broke conservation"
    log.info("dedup phase: kept %d of %d in %.1f s", dedup["kept"], dedup["input"], time.time() - started)
    return result


def _delete(fs: pafs.FileSystem, path: str) -> None:
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif info.type == pafs.FileType.File:
        fs.delete_file(path)


def _move_files(fs: pafs.FileSystem, src: str, dst: str) -> None:
    """Move the files of folder `src` into `dst` (replacing same-named ones), then remove `src`: one file
    at a time, since an object store cannot rename a folder; a re-run finishes a move cut short."""
    infos = fs.get_file_info(pafs.FileSelector(src, allow_not_found=True))
    if not infos and not exists(fs, src):
        return
    fs.create_dir(dst, recursive=True)
    for info in infos:
        fs.move(info.path, f"{dst}/{info.base_name}")
    fs.delete_dir(src)


_GROUPINGS = (("by_language", "lang"), ("by_source", "source"), ("by_category", "category"))


def _attribute_dedup(fs: pafs.FileSystem, rejected_dir: str, phase1: dict) -> tuple[dict[str, dict], int]:
    """Phase 1's by_language / by_source / by_category with each dedup rejection moved from its group's
    kept to its reason, and the UTF-8 bytes of the rejected text. The groups come from the rejected rows'
    own `lang`, `source` and `category` columns (the values phase 1 wrote), read a batch at a time:
    nothing proportional to the corpus is held."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    groups = {
        name: {k: Breakdown.from_dict(g) for k, g in phase1.get(name, {}).items()} for name, _ in _GROUPINGS
    }
    moved: Counter = Counter()
    rejected_bytes = 0
    files = fs.get_file_info(pafs.FileSelector(rejected_dir, allow_not_found=True))
    for info in sorted((f for f in files if f.path.endswith(".parquet")), key=lambda f: f.path):
        with fs.open_input_file(info.path) as fh:
            pf = pq.ParquetFile(fh)
            wanted = ("lang", "source", "category", "reject", "text")
            columns = [c for c in wanted if c in pf.schema_arrow.names]
            for batch in pf.iter_batches(columns=columns, batch_size=65536):
                if "text" in columns:
                    rejected_bytes += pc.sum(pc.binary_length(batch.column("text"))).as_py() or 0
                cols = batch.select([c for c in columns if c != "text"]).to_pydict()
                n = batch.num_rows
                keys = zip(
                    (x or UNKNOWN for x in cols.get("lang", [None] * n)),
                    map(source_file, cols.get("source", [None] * n)),
                    (x or UNKNOWN for x in cols.get("category", [None] * n)),
                    cols["reject"],
                    strict=True,
                )
                moved.update(keys)
    for (*keys, reject), n in moved.items():
        for (name, _), key in zip(_GROUPINGS, keys, strict=True):
            if not groups[name] and name == "by_category":
                continue  # a run.json written before categories were counted
            group = groups[name].get(key)
            if group is None or group.kept < n:
                raise RunError(
                    f"{rejected_dir}: {n} dedup rejection(s) of {name} {key!r} that phase 1 did not keep"
                )
            group.kept -= n
            group.reasons[reject] += n
    return {name: breakdowns_to_dict(group) for name, group in groups.items()}, rejected_bytes


def summarize(
    cfg: PipelineConfig,
    units: list[Unit],
    output: str,
    skipped: int,
    started: float,
    errors,
    set_aside: Sequence[str] = (),
) -> dict:
    fs, root = resolve(output)
    phase1 = phase1_dir(cfg, output)
    _, p1_root = resolve(phase1)
    total = RunStats()
    unit_seconds = 0.0
    for unit in units:
        marker_path = f"{p1_root}/_units/{unit.unit_id}.json"
        if exists(fs, marker_path):
            marker = read_json(fs, marker_path)
            total.merge(RunStats.from_dict(marker["stats"]))
            unit_seconds += marker["seconds"]
    result = total.to_dict()
    result.update(
        {
            "units": {"total": len(units), "resumed_from_previous_run": skipped, "failed": len(errors)},
            # documents over input.split_words, read as one and counted in `input` as their parts:
            # documents as read = input - split_parts + split_documents
            "split_documents": total.stage_counters.get("input.split_documents", 0),
            "split_parts": total.stage_counters.get("input.split_parts", 0),
            "failed_units": list(errors),
            "inputs_set_aside": list(set_aside),  # found in folders, of no known format: not read
            "timings": {
                "wall_s": round(time.time() - started, 3),
                "unit_seconds_sum": round(unit_seconds, 3),
            },
            "config": cfg.model_dump(mode="json"),
            "versions": versions(),
            "output": {
                "kept": posixpath.join(phase1, "kept"),
                "rejected": posixpath.join(phase1, "rejected"),
            },
        }
    )
    write_json_atomic(fs, f"{root}/run.json", result)
    return result
