"""`dataengine dedup`: phase 2 on the kept documents of a phase-1 run (registered by dataengine/cli.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic import ValidationError

from dataengine.dedup.config import DedupConfig


def _set_dotted(tree: dict[str, Any], dotted: str) -> None:
    if "=" not in dotted:
        raise typer.BadParameter(f"--set {dotted!r}: expected key=value, e.g. minhash.jaccard_threshold=0.85")
    key, raw = dotted.split("=", 1)
    node = tree
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise typer.BadParameter(f"--set {dotted!r}: {part!r} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def load_config(config: Path | None, sets: list[str], decontam: list[Path]) -> DedupConfig:
    """YAML file (keys at top level or under `dedup:`), then --set overrides, then --decontam files."""
    tree: dict[str, Any] = {}
    if config is not None:
        loaded = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise typer.BadParameter(f"{config}: expected a mapping of dedup settings")
        tree = loaded.get("dedup", loaded)
    for item in sets:
        _set_dotted(tree, item)
    if decontam:
        section = tree.setdefault("decontam", {})
        section["enabled"] = True
        section["benchmarks"] = [*section.get("benchmarks", []), *map(str, decontam)]
    try:
        return DedupConfig.model_validate(tree)
    except ValidationError as err:
        where = f" in {config}" if config else ""
        lines = [f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()]
        raise typer.BadParameter(f"invalid dedup config{where}:\n" + "\n".join(lines)) from err


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
