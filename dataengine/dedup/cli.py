"""`dataengine dedup`: phase 2 on the kept documents of a phase-1 run (registered by dataengine/cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dataengine.cli_support import fail
from dataengine.configio import ConfigError, apply_overrides, read_yaml, validate
from dataengine.dedup.config import DedupConfig


def load_config(config: Path | None, sets: list[str], decontam: list[Path]) -> DedupConfig:
    """YAML (keys at top level, or under `dedup:` as in configs/pipeline.yaml), then --set, then --decontam."""
    origin = f"{config or '(defaults)'}" + (f" with --set {' '.join(sets)}" if sets else "")
    try:
        tree = read_yaml(config) if config is not None else {}
        tree = tree.get("dedup", tree) or {}
        apply_overrides(tree, sets)
        if decontam:
            section = tree.setdefault("decontam", {})
            section["enabled"] = True
            section["benchmarks"] = [*section.get("benchmarks", []), *map(str, decontam)]
        return validate(DedupConfig, tree, origin)
    except ConfigError as exc:
        fail(str(exc))


def dedup_command(
    input: list[Path] = typer.Option(..., "--input", "-i", help="Parquet files or folders (e.g. RUN/kept)"),
    output: Path = typer.Option(
        ..., "--output", "-o", help="run directory to write kept/, rejected/, run.json"
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML with dedup settings"),
    set_: list[str] = typer.Option([], "--set", help="override a setting, e.g. survivor=longest"),
    decontam: list[Path] = typer.Option(
        [], "--decontam", help="benchmark file or folder (enables decontamination)"
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Ray cluster address; default a local Ray"
    ),
) -> None:
    """Exact, MinHash-LSH (and optional semantic) dedup plus benchmark decontamination."""
    cfg = load_config(config, set_, decontam)
    import ray

    from dataengine.dedup.runner import run_dedup

    if ray_address and not ray.is_initialized():
        ray.init(address=ray_address, log_to_driver=False)
    run = run_dedup(input, output, cfg)
    summary = {k: run[k] for k in ("input", "kept", "rejected", "rejected_by_reason")}
    typer.echo(json.dumps(summary, indent=2))
