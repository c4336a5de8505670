"""`python -m eval CONFIG --checkpoint CKPT --output DIR`: writes DIR/results.json and DIR/report.html.

The config and every input it names are checked before torch or the model is loaded, so a bad config
fails in about a second with every problem listed (exit status 2). `--check` does only that, for every
enabled part (the demo runs it before any work, when no checkpoint exists yet)."""

from __future__ import annotations

from pathlib import Path

import typer

from dataengine.cli_support import config_epilog, fail
from eval.checks import MODEL_PARTS, input_problems, raise_problems, require_inputs
from eval.config import ConfigError, EvalConfig, load_eval_config

app = typer.Typer(add_completion=False)


@app.command(epilog=config_epilog(EvalConfig))
def main(
    config: Path = typer.Argument(
        ..., help="eval config YAML (e.g. configs/eval/default.yaml; a shipped config's name works anywhere)"
    ),
    checkpoint: str | None = typer.Option(
        None,
        "--checkpoint",
        "-c",
        help="trainer checkpoint, trainer run dir, or Hugging Face model directory",
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="directory for results.json, plots and report.html (required unless --check)",
    ),
    overrides: list[str] = typer.Option([], "--set", help="override a config key: --set needle.trials=5"),
    check: bool = typer.Option(
        False,
        "--check",
        help="only check the config and every input the enabled parts need (all of them, with or without "
        "--checkpoint), then exit: 0 if all is there, 2 with the list of problems",
    ),
) -> None:
    """Evaluate a model: perplexity/bits-per-byte per domain, probes, needle retrieval, multiple choice,
    plus scaling-law and domain-mixture fits from run records. Without --checkpoint only the fits run.
    Benchmarks and haystacks come from data_dir (default: the bundled subsets in eval/data)."""
    origin = str(config) + (" with --set " + " ".join(overrides) if overrides else "")
    try:
        cfg = load_eval_config(config, overrides)
        if check:
            parts = [p for p in MODEL_PARTS if getattr(cfg, p).enabled]
            raise_problems(input_problems(cfg, parts, checkpoint, output), origin)
            typer.echo(f"{origin}: config and inputs OK ({', '.join(parts) or 'no model parts enabled'})")
            return
        if output is None:
            fail("--output DIR is required (or --check to only check the config and its inputs)")
        require_inputs(cfg, checkpoint, output, origin)
    except ConfigError as exc:
        fail(str(exc))
    from eval.run import run_eval  # torch and the model code: only once the inputs are known to be there

    run_eval(cfg, checkpoint, output, origin)
    typer.echo(f"wrote {output / 'results.json'}")
    typer.echo(f"report: {output / 'report.html'}")


if __name__ == "__main__":
    app()
