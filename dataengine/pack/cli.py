"""Command lines of phase 3 (§3.6): ``dataengine tokenizer train|extend|report`` and ``dataengine pack``.

The main CLI registers ``tokenizer_app`` as a sub-app and ``pack_command`` as a command.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from pydantic import ValidationError

from dataengine.cli_support import fail

tokenizer_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Train, extend and measure tokenizers."
)


def _weights(pairs: list[str] | None) -> dict[str, float]:
    weights = {}
    for pair in pairs or []:
        channel, sep, value = pair.partition("=")
        try:
            weights[channel] = float(value)
        except ValueError:
            sep = ""
        if not sep or not channel:
            fail(f"--channel-weight {pair!r}: expected CHANNEL=NUMBER, e.g. zh=3")
    return weights


@tokenizer_app.command("train")
def train(
    input: list[Path] = typer.Option(..., "--input", "-i", help="Parquet/JSONL file or folder (repeatable)"),
    vocab_size: int = typer.Option(
        32000, "--vocab-size", help="vocabulary incl. special and reserved tokens"
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="tokenizer.json to write (+ .meta.json beside it)"
    ),
    sample_chars: int = typer.Option(50_000_000, "--sample-chars", help="stop reading after this many chars"),
    heldout_fraction: float = typer.Option(
        0.01, "--heldout-fraction", help="share of doc ids never trained on"
    ),
    channel_weight: list[str] = typer.Option(
        None, "--channel-weight", help="CHANNEL=W repeats a channel, e.g. zh=3"
    ),
    reserved_tokens: int = typer.Option(16, "--reserved-tokens"),
    embedding_headroom: int = typer.Option(1000, "--embedding-headroom", help="free embedding rows kept"),
) -> None:
    """Train a byte-level BPE tokenizer on kept documents."""
    from dataengine.pack.tokenizer import TokenizerConfig, train_tokenizer

    try:
        config = TokenizerConfig(
            vocab_size=vocab_size,
            sample_chars=sample_chars,
            heldout_fraction=heldout_fraction,
            channel_weights=_weights(channel_weight),
            reserved_tokens=reserved_tokens,
            embedding_headroom=embedding_headroom,
        )
        meta = train_tokenizer(input, output, config)
    except (ValidationError, ValueError, FileNotFoundError) as err:
        fail(str(err))
    typer.echo(
        json.dumps({"output": str(output), "embedding_size": meta["embedding_size"], **meta["sample"]})
    )


@tokenizer_app.command("report")
def report(
    tokenizer: Path = typer.Option(..., "--tokenizer", "-t", help="tokenizer.json"),
    input: list[Path] = typer.Option(..., "--input", "-i", help="Parquet/JSONL file or folder (repeatable)"),
    heldout_fraction: float = typer.Option(0.01, "--heldout-fraction", help="the fraction used at training"),
    all_documents: bool = typer.Option(
        False, "--all", help="measure every document (inputs held out as a whole)"
    ),
    json_output: Path = typer.Option(None, "--json", help="also write the report as JSON"),
) -> None:
    """Characters and bytes per token per channel on held-out documents (Markdown table)."""
    from dataengine.pack.compression import compression_report, format_report
    from dataengine.pack.tokenizer import load_tokenizer

    try:
        result = compression_report(
            load_tokenizer(tokenizer), input, heldout_fraction=None if all_documents else heldout_fraction
        )
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    if json_output:
        json_output.write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(format_report(result))


@tokenizer_app.command("extend")
def extend(
    tokenizer: Path = typer.Option(..., "--tokenizer", "-t", help="tokenizer.json to extend"),
    add_tokens: Path = typer.Option(..., "--add-tokens", help="text file, one new word per line"),
    output: Path = typer.Option(..., "--output", "-o", help="extended tokenizer.json to write"),
    domain: list[Path] = typer.Option(
        None, "--domain", help="documents to measure compression on, before/after"
    ),
) -> None:
    """Add domain words as tokens without changing the tokenization of any other text."""
    from dataengine.pack.compression import compression_report, format_report
    from dataengine.pack.extend import extend_tokenizer, read_word_list
    from dataengine.pack.tokenizer import load_tokenizer

    try:
        result = extend_tokenizer(tokenizer, read_word_list(add_tokens), output)
        typer.echo(json.dumps(result, ensure_ascii=False))
        if domain:
            for name, path in (("before", tokenizer), ("after", output)):
                typer.echo(
                    f"\n{name}:\n"
                    + format_report(compression_report(load_tokenizer(path), domain, heldout_fraction=None))
                )
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))


def pack_command(
    input: list[Path] = typer.Option(..., "--input", "-i", help="Parquet/JSONL file or folder (repeatable)"),
    tokenizer: Path = typer.Option(..., "--tokenizer", "-t", help="tokenizer.json"),
    seq_len: int = typer.Option(
        2048, "--seq-len", help="tokens per training sequence (rows hold seq_len + 1)"
    ),
    output: Path = typer.Option(..., "--output", "-o", help="SHARDS directory"),
    order: str = typer.Option("input", "--order", help="input | shuffle | a registered order"),
    seed: int = typer.Option(0, "--seed", help="seed of the shuffle order"),
    heldout_fraction: float = typer.Option(0.01, "--heldout-fraction", help="share of each channel held out"),
    num_workers: int = typer.Option(2, "--num-workers", help="parallel tokenize tasks"),
    rows_per_shard: int = typer.Option(None, "--rows-per-shard", help="default: about 64 MiB per shard"),
) -> None:
    """Tokenize and pack kept documents into token shards (train + heldout) with a manifest."""
    from dataengine.pack.packer import PackConfig, pack

    try:
        config = PackConfig(
            seq_len=seq_len,
            order=order,
            seed=seed,
            heldout_fraction=heldout_fraction,
            num_workers=num_workers,
            rows_per_shard=rows_per_shard,
        )
        manifest = pack(input, tokenizer, output, config)
    except (ValidationError, ValueError, FileNotFoundError) as err:
        fail(str(err))
    summary = {
        name: {k: split[k] for k in ("documents", "tokens", "sequences")}
        for name, split in manifest["splits"].items()
    }
    typer.echo(json.dumps({"output": str(output), "documents_in": manifest["documents_in"], **summary}))


if __name__ == "__main__":
    tokenizer_app()
