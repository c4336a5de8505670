"""Phase 1 on Ray Data: units of input → one fused stage actor per worker → kept/ and rejected/ Parquet.

A unit (a file, or a line-aligned byte range of a large plain file) is the grain of work,
of atomic output and of resume: its two Parquet files are renamed into place and then its
marker `_units/<unit_id>.json` (holding its statistics) is written. The files are named
`part-<position>-<unit_id>.parquet`, position in the plan (sorted inputs) first, so that readers
listing them by name see the input order wherever the corpus lives. A re-run skips units
with a marker and redoes the others from scratch under the same file names, so nothing is
written twice and nothing is missed; run.json sums the markers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from itertools import islice
from pathlib import Path

from dataengine.config import PipelineConfig
from dataengine.io.paths import expand_inputs, file_stamps
from dataengine.io.readers import read_unit
from dataengine.io.units import Unit, plan_units, set_aside_unknown
from dataengine.io.writers import AtomicParquetWriter, exists, read_json, resolve, write_json_atomic
from dataengine.keep_top import resolve_keep_top
from dataengine.processor import DocumentProcessor
from dataengine.runtime import init_ray, versions
from dataengine.stats import UNKNOWN, Breakdown, RunStats, breakdowns_to_dict, source_file

log = logging.getLogger(__name__)


class RunError(RuntimeError):
    """The run cannot start or did not complete; the message says what to do."""


def process_unit(unit: Unit, position: int, processor: DocumentProcessor, output: str) -> dict:
    """Read, process and write one unit; return its marker (statistics included)."""
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
                _write_batch(processor, batch, kept_w, rej_w)
                batch = []
        _write_batch(processor, batch, kept_w, rej_w)
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


def _write_batch(processor: DocumentProcessor, batch: list[dict], kept_w, rej_w) -> None:
    kept, rejected = processor.process(batch)
    kept_t, rej_t = processor.to_tables(kept, rejected)
    kept_w.write(kept_t)
    rej_w.write(rej_t)


class UnitWorker:
    """The Ray actor: builds the stage chain (and loads models) once, then processes units."""

    def __init__(self, cfg: dict, output: str):
        self.processor = DocumentProcessor(PipelineConfig.model_validate(cfg))
        self.output = output

    def __call__(self, batch: dict) -> dict:
        done = {"unit_id": [], "input": [], "error": []}
        for item, position in zip(batch["unit"], batch["position"], strict=True):
            unit = Unit(**json.loads(item))
            try:
                marker = process_unit(unit, int(position), self.processor, self.output)
                done["input"].append(marker["stats"]["input"])
                done["error"].append("")
            except Exception as exc:  # one broken unit must not stop the others
                log.exception("unit %s (%s) failed", unit.unit_id, unit.path)
                done["input"].append(0)
                done["error"].append(f"{unit.path}: {type(exc).__name__}: {exc}")
            done["unit_id"].append(unit.unit_id)
        return done


def _run_on_ray(cfg: PipelineConfig, units: list[tuple[int, Unit]], output: str, progress: bool) -> list[str]:
    ray = init_ray(cfg.ray.address)
    from tqdm import tqdm

    workers = cfg.ray.num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    workers = max(1, min(workers, len(units)))
    items = [{"unit": json.dumps(asdict(u)), "position": i} for i, u in units]
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        UnitWorker,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=workers),
        fn_constructor_kwargs={"cfg": cfg.model_dump(mode="json"), "output": output},
        num_cpus=1,
        num_gpus=gpus_per_worker(cfg, workers, ray.cluster_resources().get("GPU", 0)),
    )
    errors = []
    with tqdm(total=len(units), unit="unit", disable=not progress, desc="phase 1") as bar:
        docs = 0
        for row in ds.iter_rows():
            docs += int(row["input"])
            bar.update(1)
            bar.set_postfix(docs=docs)
            if row["error"]:
                errors.append(row["error"])
    return errors


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
    """Run phase 1 and return run.json's content. Resumes when `output` holds the same plan."""
    started = time.time()
    paths = list(cfg.inputs) + list(inputs or [])
    output = output or cfg.output
    if not paths:
        raise RunError("no input: give --input PATH (or `inputs:` in the config)")
    if not output:
        raise RunError("no output directory: give --output DIR (or `output:` in the config)")
    cfg = cfg.model_copy(update={"inputs": paths, "output": output})
    files, set_aside = set_aside_unknown(expand_inputs(paths), paths, cfg.input)
    units = plan_units(files, cfg.input)
    if cfg.stages.quality is not None and cfg.stages.quality.uses_keep_top():
        cfg = resolve_keep_top(cfg, _sample_batches(units, cfg, cfg.stages.quality.keep_top_sample))
    fs, root = resolve(output)
    fingerprint = _plan_fingerprint(cfg, units)
    stamps = file_stamps(files)
    plan_path = f"{root}/_units/plan.json"
    if exists(fs, plan_path):
        previous = read_json(fs, plan_path)
        if changed := _changed_inputs(previous.get("inputs"), stamps):
            raise RunError(
                f"{output} holds a run of these inputs, but they changed since it started ({changed}); "
                "its finished units would not hold the new data: use a new --output (or delete it)"
            )
        if previous.get("fingerprint") != fingerprint:
            raise RunError(
                f"{output} holds a run with other inputs or settings; use a new --output "
                "(or delete it) instead of mixing two runs"
            )
    else:
        write_json_atomic(fs, plan_path, {"fingerprint": fingerprint, "units": len(units), "inputs": stamps})

    todo = [(i, u) for i, u in enumerate(units) if not exists(fs, f"{root}/_units/{u.unit_id}.json")]
    errors = _run_on_ray(cfg, todo, output, progress) if todo else []
    result = summarize(
        cfg,
        units,
        output,
        skipped=len(units) - len(todo),
        started=started,
        errors=errors,
        set_aside=set_aside,
    )
    if cfg.dedup is not None and not errors:
        result = dedup_phase(cfg, output, result, rerun=bool(todo))
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


def dedup_phase(cfg: PipelineConfig, output: str, phase1: dict, rerun: bool) -> dict:
    """Phase 2 on OUT/kept into OUT/dedup/; run.json's counts then cover both phases and still add up."""
    from dataengine.dedup.runner import run_dedup

    if "://" in output:
        raise RunError(
            f"the dedup phase writes to a local directory; {output} is a URI (run `dataengine dedup`)"
        )
    previous = Path(output) / "dedup" / "run.json"
    dedup = json.loads(previous.read_text()) if previous.is_file() else None
    if rerun or dedup is None or dedup["config"] != cfg.dedup.model_dump(mode="json"):
        dedup = run_dedup([str(Path(output) / "kept")], Path(output) / "dedup", cfg.dedup)
    if dedup["input"] != phase1["kept"]:
        raise RunError(f"{previous}: dedup saw {dedup['input']} documents, phase 1 kept {phase1['kept']}")
    reasons = Counter(phase1["rejected_by_reason"])
    reasons.update(dedup["rejected_by_reason"])
    groups = _attribute_dedup(Path(output) / "dedup" / "rejected", phase1)
    result = dict(phase1)
    result.update(
        {
            "kept": dedup["kept"],
            **groups,
            "rejected": sum(reasons.values()),
            "rejected_by_reason": dict(sorted(reasons.items())),
            "phase1": {k: phase1[k] for k in ("input", "kept", "rejected", "rejected_by_reason")},
            "funnel_docs": {**phase1["funnel_docs"], "dedup": dedup["kept"]},
            "dedup": {k: v for k, v in dedup.items() if k != "config"},
            "output": {
                "kept": posixpath.join(output, "dedup", "kept"),
                "rejected": [posixpath.join(output, "rejected"), posixpath.join(output, "dedup", "rejected")],
            },
        }
    )
    assert result["input"] == result["kept"] + result["rejected"], "dedup broke conservation"
    return result


_GROUPINGS = (("by_language", "lang"), ("by_source", "source"), ("by_category", "category"))


def _attribute_dedup(rejected_dir: Path, phase1: dict) -> dict[str, dict]:
    """Phase 1's by_language / by_source / by_category with each dedup rejection moved from its group's
    kept to its reason. The groups come from the rejected rows' own `lang`, `source` and `category`
    columns (the values phase 1 wrote), read a batch at a time: nothing proportional to the corpus is
    held."""
    import pyarrow.parquet as pq

    groups = {
        name: {k: Breakdown.from_dict(g) for k, g in phase1.get(name, {}).items()} for name, _ in _GROUPINGS
    }
    moved: Counter = Counter()
    for path in sorted(rejected_dir.glob("*.parquet")) if rejected_dir.is_dir() else []:
        pf = pq.ParquetFile(path)
        columns = [c for c in ("lang", "source", "category", "reject") if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(columns=columns, batch_size=65536):
            cols = batch.to_pydict()
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
    return {name: breakdowns_to_dict(group) for name, group in groups.items()}


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
    total = RunStats()
    unit_seconds = 0.0
    for unit in units:
        marker_path = f"{root}/_units/{unit.unit_id}.json"
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
                "kept": posixpath.join(output, "kept"),
                "rejected": posixpath.join(output, "rejected"),
            },
        }
    )
    write_json_atomic(fs, f"{root}/run.json", result)
    return result
