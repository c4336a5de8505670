"""`dataengine decide OUT --output OUT2 --set KEY=VALUE`: a run's decisions again, under other thresholds.

Phase 1 computes every stage's signals for every document and stores them on kept and rejected rows
alike (`decide.early_exit: false`, the default). Each stage's rules are a function of those columns
(`Stage.decide` over `Facts`), so OUT's Parquet is enough to decide again: no model runs, no text is
split. A setting the signals depend on (a model, a stop-word list, C4's line rules, which stages run)
cannot change this way; `decide` names the key and says to run again. Quality `keep_top` is resolved
on all stored rows of OUT (`dataengine.keep_top`); unchanged, the run's own thresholds are kept.

OUT2 gets the same layout as a run: `kept/` and `rejected/` with one file per work unit under the same
name (rows in input order), `run.json` whose counts add up to OUT's input, `report.html`; with a dedup
phase in the config, phase 1's files under `OUT2/phase1/`, dedup's rejections under `OUT2/dedup/` and the
final kept set in `OUT2/kept/`. Phase 1's rows are read from OUT/phase1/ when OUT has one (a run with
the dedup phase), else from OUT. A newly kept row gets its MinHash signature;
byte counts (`input_bytes`, `funnel_bytes`) are of the stored text, which text-rewriting stages already
cleaned.
"""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path

import pyarrow.parquet as pq

from dataengine.config import PipelineConfig
from dataengine.configio import apply_overrides, validate
from dataengine.io.writers import AtomicParquetWriter, read_json, resolve, write_json_atomic
from dataengine.keep_top import open_quality, resolve_keep_top
from dataengine.processor import DocumentProcessor
from dataengine.runner import RunError, dedup_phase, phase1_dir
from dataengine.runtime import versions
from dataengine.stages import STAGES
from dataengine.stats import RunStats

_POSITION = re.compile(r"(?:@|#row )(\d+)(?:#part (\d+)/\d+)?$")


def _differences(old, new, prefix: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for k in sorted(old.keys() | new.keys(), key=str)
            for d in _differences(old.get(k), new.get(k), f"{prefix}.{k}")
        ]
    return [] if old == new else [prefix]


def check_decidable(old: PipelineConfig, new: PipelineConfig) -> None:
    """Raise RunError naming every setting that the stored signals cannot answer for."""
    if old.decide.early_exit:
        raise RunError(
            "the run used decide.early_exit: a rejected row lacks the signals of the stages after its "
            "rejection, so it cannot be decided again; run with decide.early_exit: false"
        )
    changed = _differences(old.input.model_dump(mode="json"), new.input.model_dump(mode="json"), "input")
    for stage in STAGES:
        was, now = getattr(old.stages, stage.name), getattr(new.stages, stage.name)
        key = f"stages.{stage.name}"
        if (was is None) != (now is None):
            changed.append(key + " (on/off: set its thresholds instead)")
        elif was is not None:
            changed += _differences(stage.signal_settings(was), stage.signal_settings(now), key)
    if changed:
        raise RunError(
            "these settings change what the stages measure or read, not only their thresholds; run the "
            "pipeline again to change them: " + ", ".join(changed)
        )


def _quality_rules(quality) -> dict:
    return quality.model_dump(include={"keep_top", "threshold", "by_category"})


def decided_config(run_config: dict, overrides: list[str]) -> PipelineConfig:
    """The run's config with the overrides, checked to be decidable from its stored columns."""
    old = PipelineConfig.model_validate(run_config)
    data = apply_overrides(copy.deepcopy(run_config), overrides)
    new = validate(PipelineConfig, data, "the run's config with --set " + " ".join(overrides))
    check_decidable(old, new)
    quality = new.stages.quality
    if quality is not None and quality.uses_keep_top():
        unchanged = _quality_rules(old.stages.quality) == _quality_rules(quality)
        # the run's own thresholds when its keep_top rules stay; else resolved again from the stored rows
        thresholds = old.stages.quality.keep_top_thresholds if unchanged else None
        quality = quality.model_copy(update={"keep_top_thresholds": thresholds})
        new = new.model_copy(update={"stages": new.stages.model_copy(update={"quality": quality})})
    return new


def _input_position(source: str | None) -> tuple[int, int]:
    """Where a row was in its unit: the byte offset or Parquet row, then the part of a split document."""
    m = _POSITION.search(source or "")
    return (int(m.group(1)), int(m.group(2) or 0)) if m else (0, 0)


def stored_rows(run_dir: Path, name: str, keep_signatures: bool) -> list[dict]:
    """One unit's kept and rejected rows, merged back into input order."""
    rows: list[dict] = []
    for part in ("kept", "rejected"):
        path = run_dir / part / name
        if path.is_file():
            table = pq.read_table(path)
            if not keep_signatures and "minhash" in table.column_names:
                table = table.drop_columns(["minhash"])
            rows += table.to_pylist()
    rows.sort(key=lambda row: _input_position(row.get("source")))
    return rows


def unit_files(run_dir: Path) -> list[str]:
    return sorted({p.name for part in ("kept", "rejected") for p in (run_dir / part).glob("part-*.parquet")})


def _require_signal_columns(run_dir: Path, names: list[str], cfg: PipelineConfig) -> None:
    """A run written before a signal existed cannot be decided by rules that read it (one file is
    enough: every file of a run has one schema)."""
    if not names:
        return
    opened = open_quality(cfg) if cfg.stages.quality is not None else cfg  # keep_top not resolved yet
    rejected = run_dir / "rejected" / names[0]
    path = rejected if rejected.is_file() else run_dir / "kept" / names[0]
    stored = set(pq.read_schema(path).names)
    missing = [f.name for f in DocumentProcessor(opened).signal_fields if f.name not in stored]
    if missing:
        raise RunError(
            f"{path} lacks the signal column(s) {', '.join(missing)} that today's rules read (the run was "
            "written by an older version); run the pipeline again"
        )


def decide(run_dir: str, output: str, overrides: list[str]) -> dict:
    """Write OUT2 (`output`) from the stored rows of OUT (`run_dir`) under the overridden thresholds;
    return its run.json content."""
    started = time.time()
    source, target = Path(run_dir), Path(output)
    if "://" in run_dir or "://" in output:
        raise RunError("decide reads and writes local run directories")
    if not (source / "run.json").is_file():
        raise RunError(f"{source}: no run.json here (give a directory written by `dataengine run`)")
    if target.exists() and any(target.iterdir()):
        raise RunError(f"{target} is not empty; give a new --output")
    if target.resolve() == source.resolve():
        raise RunError("--output must differ from the run directory")
    previous = read_json(*resolve(str(source / "run.json")))
    old = PipelineConfig.model_validate(previous["config"])
    cfg = decided_config(previous["config"], overrides)
    if (source / "phase1" / "_units").is_dir():
        source = source / "phase1"  # phase 1's own rows; OUT/kept holds the set after dedup
    names = unit_files(source)
    same_signatures = old.signature_config() == cfg.signature_config()
    _require_signal_columns(source, names, cfg)
    if cfg.stages.quality is not None and cfg.stages.quality.keep_top_thresholds is None:
        batches = (stored_rows(source, name, keep_signatures=False) for name in names)
        cfg = resolve_keep_top(cfg, batches, replay=True)
    processor = DocumentProcessor(cfg)
    total = RunStats()
    fs, root = resolve(str(target))
    phase1 = Path(phase1_dir(cfg, str(target)))
    _, p1_root = resolve(str(phase1))
    for name in names:
        kept, rejected = processor.replay(stored_rows(source, name, keep_signatures=same_signatures))
        kept_t, rejected_t = processor.to_tables(kept, rejected)
        for part, table, schema in (
            ("kept", kept_t, processor.schema),
            ("rejected", rejected_t, processor.rejected_schema),
        ):
            writer = AtomicParquetWriter(fs, f"{p1_root}/{part}/{name}", schema, cfg.write.compression)
            writer.write(table)
            writer.close()
        total.merge(processor.take_stats())
    # counters of the reading (documents split at input.split_words) belong to the original run
    for key, n in previous.get("stage_counters", {}).items():
        if key.startswith("input."):
            total.stage_counters[key] = n
    original_input = previous.get("phase1", previous)["input"]
    if total.input != original_input:
        raise RunError(
            f"{source}: its Parquet holds {total.input} rows, its run.json counts {original_input}"
        )
    result = total.to_dict()
    result.update(
        {
            "units": {"total": len(names), "resumed_from_previous_run": 0, "failed": 0},
            "split_documents": previous.get("split_documents", 0),
            "split_parts": previous.get("split_parts", 0),
            "failed_units": [],
            "decided_from": {"run": run_dir, "set": list(overrides), "bytes": "of the stored text"},
            "timings": {"wall_s": round(time.time() - started, 3), "unit_seconds_sum": 0.0},
            "config": cfg.model_dump(mode="json"),
            "versions": versions(),
            "output": {"kept": str(phase1 / "kept"), "rejected": str(phase1 / "rejected")},
        }
    )
    result["timings"]["phase1_s"] = result["timings"]["wall_s"]
    write_json_atomic(fs, f"{root}/run.json", result)
    if cfg.dedup is not None:
        result = dedup_phase(cfg, str(target), result, rerun=True)
        result["timings"]["wall_s"] = round(time.time() - started, 3)
        write_json_atomic(fs, f"{root}/run.json", result)
    if cfg.write.report:
        from dataengine.report import write_report

        result["report"] = write_report(str(target))
    return result
