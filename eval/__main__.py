"""`python -m eval CONFIG --checkpoint CKPT --output DIR`: writes DIR/results.json and DIR/report.html."""

from __future__ import annotations

from pathlib import Path

import typer

from dataengine.cli_support import fail
from eval.config import ConfigError, load_eval_config
from eval.run import run_eval

app = typer.Typer(add_completion=False)


@app.command()
def main(
    config: Path = typer.Argument(..., help="eval config YAML (e.g. configs/eval/default.yaml)"),
    checkpoint: str | None = typer.Option(
        None,
        "--checkpoint",
        "-c",
        help="trainer checkpoint, trainer run dir, or Hugging Face model directory",
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="directory for results.json, plots and report.html"
    ),
    overrides: list[str] = typer.Option([], "--set", help="override a config key: --set needle.trials=5"),
) -> None:
    """Evaluate a model: perplexity/bits-per-byte per domain, probes, needle retrieval, multiple choice,
    plus scaling-law and domain-mixture fits from run records. Without --checkpoint only the fits run."""
    try:
        cfg = load_eval_config(config, overrides)
    except ConfigError as exc:
        fail(str(exc))
    run_eval(cfg, checkpoint, output)
    typer.echo(f"wrote {output / 'results.json'}")
    typer.echo(f"report: {output / 'report.html'}")


if __name__ == "__main__":
    app()
