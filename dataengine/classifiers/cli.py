"""Command lines `dataengine quality train` and `dataengine category train` (§3.6 command shape:
``CMD [CONFIG] [--set key=value ...]``, flags append overrides)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dataengine.classifiers.commands import (
    CategoryTrainCommand,
    QualityTrainCommand,
    train_category,
    train_quality,
)
from dataengine.cli_support import CONFIG_ARGUMENT_HELP, SET_HELP, config_epilog, fail, load_command_config

quality_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Train a quality scorer.")
category_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Train a category classifier.")

CONFIG = typer.Argument(None, help=CONFIG_ARGUMENT_HELP, show_default=False)
SETS = typer.Option(None, "--set", help=SET_HELP)
OUTPUT = typer.Option(
    None, "--output", "-o", help="sets output: the model file to write (.ftz; an encoder head is JSON)"
)
INPUTS = typer.Option(None, "--input", "-i", help="sets inputs (repeatable)")
HELDOUT = typer.Option(None, "--heldout-fraction", help="sets heldout_fraction")
BACKEND = typer.Option(None, "--backend", help="sets backend: fasttext (default) or encoder")
ENCODER = typer.Option(None, "--encoder", help="sets encoder: a packaged model name or a local path")


def _summary(card: dict) -> None:
    held = card["held_out"]
    typer.echo(
        json.dumps(
            {
                "documents": card["documents"],
                "held_out": held["held_out"],
                "accuracy": held["accuracy"],
                **({"roc_auc": held["roc_auc"]} if "roc_auc" in held else {}),
                "labels": held["labels"],
            },
            ensure_ascii=False,
        )
    )


@quality_app.command("train", epilog=config_epilog(QualityTrainCommand))
def quality_train(
    config: Path = CONFIG,
    set_: list[str] = SETS,
    output: str = OUTPUT,
    positive: list[str] = typer.Option(None, "--positive", help="sets positive: reference-quality documents"),
    negative: list[str] = typer.Option(None, "--negative", help="sets negative: random crawl documents"),
    input: list[str] = INPUTS,
    from_column: str = typer.Option(None, "--from-column", help="sets from_column: a score to distil"),
    positive_above: float = typer.Option(None, "--positive-above", help="sets positive_above"),
    lang: str = typer.Option(None, "--lang", help="sets lang"),
    heldout_fraction: float = HELDOUT,
    backend: str = BACKEND,
    encoder: str = ENCODER,
) -> None:
    """Train a quality scorer (P(hq); fastText, or an encoder with a logistic head); prints held-out
    precision, recall and ROC-AUC and writes the model with its card (percentile edges for quality_bin)."""
    flags = {
        "output": output,
        "positive": positive,
        "negative": negative,
        "inputs": input,
        "from_column": from_column,
        "positive_above": positive_above,
        "lang": lang,
        "heldout_fraction": heldout_fraction,
        "backend": backend,
        "encoder": encoder,
    }
    cfg = load_command_config(QualityTrainCommand, config, set_, flags)
    try:
        _summary(train_quality(cfg))
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))


@category_app.command("train", epilog=config_epilog(CategoryTrainCommand))
def category_train(
    config: Path = CONFIG,
    set_: list[str] = SETS,
    output: str = OUTPUT,
    label: list[str] = typer.Option(
        None, "--label", help="LABEL=PATH adds PATH to labels.LABEL (repeatable), e.g. news=news.jsonl"
    ),
    input: list[str] = INPUTS,
    label_column: str = typer.Option(None, "--label-column", help="sets label_column"),
    heldout_fraction: float = HELDOUT,
    backend: str = BACKEND,
    encoder: str = ENCODER,
) -> None:
    """Train a category classifier (fastText, or an encoder with a logistic head); prints held-out
    precision and recall per category and writes the model with its card."""
    labels: dict[str, list[str]] = {}
    for pair in label or []:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            fail(f"--label {pair!r}: expected LABEL=PATH, e.g. news=news.jsonl")
        labels.setdefault(name, []).append(path)
    flags = {
        "output": output,
        "inputs": input,
        "label_column": label_column,
        "heldout_fraction": heldout_fraction,
        "backend": backend,
        "encoder": encoder,
        **{f"labels.{name}": paths for name, paths in labels.items()},
    }
    cfg = load_command_config(CategoryTrainCommand, config, set_, flags)
    try:
        _summary(train_category(cfg))
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
