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
) -> None:
    """Exact, MinHash-LSH (and optional semantic) dedup plus benchmark decontamination."""
    if config_arg is not None and config is not None:
        fail("give the config once: as CONFIG or as --config, not both")
    flags = {
        "inputs": input,
        "output": output,
        "decontam.enabled": True if decontam else None,
        "decontam.benchmarks": decontam,
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
