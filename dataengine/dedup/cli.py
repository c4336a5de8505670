"""`dataengine dedup [CONFIG] [--set key=value ...]`: phase 2 on the kept documents of a phase-1 run.

CONFIG holds the dedup keys at the top level, or under `dedup:` as in configs/pipeline.yaml (then
`--set dedup.KEY=...` and `--set KEY=...` both work). Inputs are read as `dataengine run` reads them
(key `input`, e.g. `--set input.text_field=content`; see dataengine/dedup/staging.py); a pipeline YAML's
top-level `input:` is phase 1's and not read here. Registered by dataengine/cli.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dataengine.cli_support import (
    CONFIG_ARGUMENT_HELP,
    SET_HELP,
    InputsKey,
    OutputKey,
    config_epilog,
    fail,
    load_command_config,
)
from dataengine.dedup.config import DedupConfig
from dataengine.pack.config import ReaderKey

SECTION = "dedup"


class DedupCommand(DedupConfig, ReaderKey, InputsKey, OutputKey):
    """`dataengine dedup`: inputs = documents in any format `dataengine run` reads (e.g. RUN/kept, used
    as it is; JSONL, text, WARC/ARC... read by run's readers); output = the run directory to write
    kept/, rejected/, run.json."""

    def dedup_config(self) -> DedupConfig:
        return DedupConfig.model_validate(self.model_dump(exclude={"inputs", "output", "input"}))


DEDUP_EPILOG = config_epilog(DedupCommand)


def load_config(config: Path | None, sets: list[str] | None, flags: dict | None = None) -> DedupCommand:
    """CONFIG (its `dedup:` section if it has one), then --set, then the flags; exits 2 on a bad key."""
    scoped = [s.removeprefix(SECTION + ".") for s in sets or []]
    return load_command_config(DedupCommand, config, scoped, flags, section=SECTION)


def dedup_command(
    config_arg: Path | None = typer.Argument(None, help=CONFIG_ARGUMENT_HELP, show_default=False),
    set_: list[str] = typer.Option(None, "--set", help=SET_HELP),
    input: list[str] = typer.Option(None, "--input", "-i", help="sets inputs: files, folders, globs"),
    output: str = typer.Option(None, "--output", "-o", help="sets output"),
    config: Path | None = typer.Option(None, "--config", "-c", hidden=True, help="same as CONFIG"),
    decontam: list[str] = typer.Option(
        None, "--decontam", help="sets decontam.benchmarks (file or folder, repeatable) and decontam.enabled"
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Ray cluster address; default a local Ray"
    ),
    semantic_report: bool = typer.Option(
        False,
        "--semantic-report",
        help="turns semantic dedup on and prints, per language, the nearest-neighbour cosines inside the "
        "clusters and how many documents each epsilon would remove (also OUTPUT/semantic_report.json)",
    ),
) -> None:
    """Exact, MinHash-LSH (and optional semantic) dedup plus benchmark decontamination."""
    if config_arg is not None and config is not None:
        fail("give the config once: as CONFIG or as --config, not both")
    flags = {
        "inputs": input,
        "output": output,
        "decontam.enabled": True if decontam else None,
        "decontam.benchmarks": decontam,
        "semantic.enabled": True if semantic_report else None,
    }
    cfg = load_config(config_arg or config, set_, flags)
    from dataengine.cli import show_engine_logs
    from dataengine.dedup.runner import run_dedup
    from dataengine.dedup.staging import InputError
    from dataengine.runtime import ClusterCapacityError, init_ray

    show_engine_logs()  # one INFO line per pass on stderr
    if ray_address:
        init_ray(ray_address)
    try:
        run = run_dedup(cfg.inputs, cfg.output, cfg.dedup_config(), cfg.input)
    except (FileNotFoundError, InputError, ClusterCapacityError) as exc:
        fail(str(exc))
    summary = {k: run[k] for k in ("input", "kept", "rejected", "rejected_by_reason")}
    typer.echo(json.dumps(summary, indent=2))
    if semantic_report:
        typer.echo(format_semantic_report(run.get("semantic") or {}))


def format_semantic_report(semantic: dict) -> str:
    """run.json's `semantic` section as a table per language: NN-cosine quantiles, then per epsilon the
    documents removed and the fraction kept (epsilon: removed when cosine > 1 - epsilon)."""
    lines = [
        f"semantic dedup: {semantic.get('documents', 0)} documents in {semantic.get('clusters', 0)} clusters"
    ]
    for lang, r in (semantic.get("report") or {}).items():
        q = " ".join(f"{k}={v}" for k, v in r["nn_cosine_quantiles"].items())
        lines.append(f"\n{lang}: {r['documents']} documents, epsilon used {r['epsilon']}")
        lines.append(f"  nearest-neighbour cosine in cluster: {q or 'n/a'} ({r['alone_in_cluster']} alone)")
        lines.append(f"  {'epsilon':>8} {'cosine >':>9} {'removed':>9} {'kept':>8}")
        for row in r["sweep"]:
            kept = "n/a" if row["kept_fraction"] is None else f"{100 * row['kept_fraction']:.2f}%"
            lines.append(f"  {row['epsilon']:>8} {1 - row['epsilon']:>9.4f} {row['removed']:>9} {kept:>8}")
    return "\n".join(lines)
