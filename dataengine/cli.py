"""The `dataengine` command line (DESIGN §3.6)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from dataengine.cli_support import config_epilog, fail
from dataengine.config import PipelineConfig

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Streaming pretraining data engine.")


@app.callback()
def _options(
    verbose: bool = typer.Option(False, "--verbose", help="show Ray's own INFO lines and worker logs"),
) -> None:
    from dataengine.runtime import set_verbose

    set_verbose(verbose)


def show_engine_logs() -> None:
    """INFO lines of the `dataengine.*` loggers (progress lines off a terminal, one per dedup pass) on
    stderr, without Ray's: Ray's loggers are not under `dataengine` and keep their own level."""
    import logging

    logger = logging.getLogger("dataengine")
    logger.setLevel(logging.INFO)
    if logger.handlers or logging.getLogger().handlers:
        return  # logging is configured already (a test, an application calling the CLI): lines go there
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)


@app.command(epilog=config_epilog(PipelineConfig))
def run(
    config: Path = typer.Argument(..., help="pipeline YAML, e.g. configs/pipeline.yaml"),
    input: list[str] = typer.Option(None, "--input", "-i", help="input path, glob or URI (repeatable)"),
    output: str = typer.Option(None, "--output", "-o", help="run directory (local path or URI)"),
    set_: list[str] = typer.Option(None, "--set", help="override a config key: key.sub=value (repeatable)"),
    ray_address: str = typer.Option(
        None, "--ray-address", help="Ray cluster address (default: $RAY_ADDRESS, else local)"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Run phase 1 (read, annotate, decide) and the dedup phase when configured: OUT/kept (the final kept
    set), OUT/rejected (OUT/phase1/ and OUT/dedup/ with dedup on), OUT/run.json, OUT/report.html."""
    from dataengine.cli_support import load_config_or_exit
    from dataengine.runner import RunError
    from dataengine.runner import run as run_pipeline
    from dataengine.runtime import ClusterCapacityError

    overrides = list(set_ or [])
    if ray_address:
        overrides.append(f"ray.address={ray_address}")
    cfg = load_config_or_exit(PipelineConfig, config, overrides)
    show_engine_logs()
    try:
        result = run_pipeline(cfg, inputs=list(input or []), output=output, progress=not quiet)
    except (RunError, FileNotFoundError, ClusterCapacityError) as exc:
        fail(str(exc))
    counts = {k: result[k] for k in ("input", "kept", "rejected")}
    typer.echo(json.dumps(counts))
    out = output or cfg.output
    typer.echo(f"run.json: {out}/run.json")
    if "report" in result:
        typer.echo(f"report:   {result['report']}")


@app.command()
def decide(
    run_dir: str = typer.Argument(..., help="a run directory (OUT of `dataengine run`)"),
    output: str = typer.Option(..., "--output", "-o", help="new run directory for the new decisions"),
    set_: list[str] = typer.Option(None, "--set", help="a threshold to change: key.sub=value (repeatable)"),
) -> None:
    """Decide again from OUT's stored signals under other thresholds (no model runs): OUT2/kept, rejected,
    run.json, report.html, and the dedup phase when the run's config has one."""
    from dataengine.configio import ConfigError
    from dataengine.decide import decide as decide_again
    from dataengine.runner import RunError

    try:
        result = decide_again(run_dir, output, list(set_ or []))
    except (RunError, ConfigError) as exc:
        fail(str(exc))
    typer.echo(json.dumps({k: result[k] for k in ("input", "kept", "rejected")}))
    typer.echo(f"run.json: {output}/run.json")
    if "report" in result:
        typer.echo(f"report:   {result['report']}")


@app.command()
def report(output: str = typer.Argument(..., help="a run directory holding run.json")) -> None:
    """(Re)write OUT/report.html and its PNG charts from OUT/run.json."""
    from dataengine.report import write_report

    try:
        typer.echo(write_report(output))
    except FileNotFoundError as exc:
        fail(f"{output}: no run.json here ({exc})")


@app.command()
def init(
    directory: Path = typer.Argument(Path("."), help="where to create configs/ (default: here)"),
    force: bool = typer.Option(False, "--force", help="overwrite configs that already exist there"),
) -> None:
    """Copy the shipped configs (pipeline, train, model sizes, eval) into DIRECTORY/configs/ to edit them.

    Not needed to run anything: a config path that does not exist, such as configs/pipeline.yaml, names the
    shipped config of that name."""
    from dataengine.configio import CONFIG_DIR, copy_shipped_configs

    written = copy_shipped_configs(directory / "configs", overwrite=force)
    kept = len(list(CONFIG_DIR.rglob("*.yaml"))) - len(written)
    typer.echo(
        f"wrote {len(written)} config(s) to {directory / 'configs'}"
        + (f"; kept {kept} existing" if kept else "")
    )


def _register_subcommands() -> None:
    from dataengine.calibrate import CalibrateCommand, calibrate_command
    from dataengine.classifiers.cli import category_app, quality_app
    from dataengine.dedup.cli import DEDUP_EPILOG, dedup_command
    from dataengine.pack.cli import PACK_EPILOG, pack_command, tokenizer_app
    from dataengine.usage.cli import usage_app

    app.add_typer(tokenizer_app, name="tokenizer")
    app.command("pack", epilog=PACK_EPILOG)(pack_command)
    app.command("dedup", epilog=DEDUP_EPILOG)(dedup_command)
    app.command("calibrate", epilog=config_epilog(CalibrateCommand))(calibrate_command)
    app.add_typer(usage_app, name="usage")
    app.add_typer(quality_app, name="quality")
    app.add_typer(category_app, name="category")


_register_subcommands()


def main() -> None:
    app(prog_name="dataengine")


if __name__ == "__main__":
    sys.exit(main())
