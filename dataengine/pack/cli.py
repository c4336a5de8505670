"""Command lines of phase 3 (§3.6): ``dataengine tokenizer train|report|extend`` and ``dataengine pack``.

Each is ``CMD [CONFIG] [--set key=value ...]``: its model (``dataengine.pack.commands``) holds every
setting, the flags only append overrides, and ``--help`` lists the model's keys and defaults. The main
CLI registers ``tokenizer_app`` as a sub-app and ``pack_command`` as a command.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer

from dataengine.cli_support import CONFIG_ARGUMENT_HELP, SET_HELP, config_epilog, fail, load_command_config
from dataengine.pack.commands import (
    PackCommand,
    TokenizerExtendCommand,
    TokenizerReportCommand,
    TokenizerTrainCommand,
)

tokenizer_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Train, extend and measure tokenizers."
)

CONFIG = typer.Argument(None, help=CONFIG_ARGUMENT_HELP, show_default=False)
SETS = typer.Option(None, "--set", help=SET_HELP)
INPUTS = typer.Option(None, "--input", "-i", help="sets inputs: file, folder, glob or URI (repeatable)")
TOKENIZER = typer.Option(None, "--tokenizer", "-t", help="sets tokenizer")
HELDOUT = typer.Option(None, "--heldout-fraction", help="sets heldout_fraction")
OUTPUT = typer.Option(None, "--output", "-o", help="sets output")
CHANNEL = typer.Option(
    None, "--channel", help="sets channel: lang | category | lang,category (fields naming a channel)"
)


def _channel(value: str | None) -> list[str] | None:
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


def _weights(pairs: list[str] | None) -> dict[str, float]:
    """--channel-weight CHANNEL=W as channel_weights.CHANNEL overrides."""
    weights = {}
    for pair in pairs or []:
        channel, sep, value = pair.partition("=")
        try:
            weights[f"channel_weights.{channel}"] = float(value)
        except ValueError:
            sep = ""
        if not sep or not channel:
            fail(f"--channel-weight {pair!r}: expected CHANNEL=NUMBER, e.g. zh=3")
    return weights


def _rejected_note(rejected: dict[str, int]) -> None:
    if rejected:
        typer.secho(
            f"skipped {sum(rejected.values())} unreadable record(s), as `dataengine run` rejects them: {rejected}",
            err=True,
            fg=typer.colors.YELLOW,
        )


@tokenizer_app.command("train", epilog=config_epilog(TokenizerTrainCommand))
def train(
    config: Path = CONFIG,
    set_: list[str] = SETS,
    input: list[str] = INPUTS,
    output: str = OUTPUT,
    vocab_size: int = typer.Option(None, "--vocab-size", help="sets vocab_size"),
    sample_chars: int = typer.Option(None, "--sample-chars", help="sets sample_chars"),
    balance: str = typer.Option(
        None, "--balance", help="sets language_sampling.balance: natural | equal | temperature"
    ),
    heldout_fraction: float = HELDOUT,
    channel_weight: list[str] = typer.Option(
        None, "--channel-weight", help="CHANNEL=W sets channel_weights.CHANNEL, e.g. zh=3"
    ),
    reserved_tokens: int = typer.Option(None, "--reserved-tokens", help="sets reserved_tokens"),
    embedding_headroom: int = typer.Option(None, "--embedding-headroom", help="sets embedding_headroom"),
    channel: str = CHANNEL,
) -> None:
    """Train a byte-level BPE tokenizer on documents, each channel's share of the sample set by
    language_sampling; prints and records (.meta.json) the held-out setting, the shares and the
    compression per channel on held-out documents."""
    from dataengine.pack.tokenizer import train_tokenizer

    flags = {
        "inputs": input,
        "output": output,
        "vocab_size": vocab_size,
        "sample_chars": sample_chars,
        "language_sampling.balance": balance,
        "heldout_fraction": heldout_fraction,
        "reserved_tokens": reserved_tokens,
        "embedding_headroom": embedding_headroom,
        "channel": _channel(channel),
        **_weights(channel_weight),
    }
    cfg = load_command_config(TokenizerTrainCommand, config, set_, flags)
    try:
        meta = train_tokenizer(cfg.inputs, cfg.output, cfg)
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    _rejected_note(meta["rejected_by_reason"])
    summary = {"output": cfg.output, "embedding_size": meta["embedding_size"], "heldout": meta["heldout"]}
    sampling = meta["language_sampling"]
    shares = {c: row["share"] for c, row in sampling["channels"].items()}
    compression = {
        channel: {key: round(row[key], 3) for key in ("chars_per_token", "bytes_per_token")}
        for channel, row in meta["heldout_compression"].items()
    }
    typer.echo(
        json.dumps(
            {
                **summary,
                **meta["sample"],
                "balance": sampling["balance"],
                "shares": shares,
                "compression": compression,
            },
            ensure_ascii=False,
        )
    )


@tokenizer_app.command("report", epilog=config_epilog(TokenizerReportCommand))
def report(
    config: Path = CONFIG,
    set_: list[str] = SETS,
    tokenizer: str = TOKENIZER,
    input: list[str] = INPUTS,
    heldout_fraction: float = HELDOUT,
    all_documents: bool = typer.Option(None, "--all", help="sets all_documents=true", show_default=False),
    json_output: str = typer.Option(None, "--json", help="sets json_output"),
) -> None:
    """Characters and bytes per token per channel on held-out documents (Markdown table)."""
    from dataengine.io.paths import write_bytes_atomic
    from dataengine.pack.compression import compression_report, format_report
    from dataengine.pack.tokenizer import load_tokenizer, meta_path, read_meta

    flags = {
        "tokenizer": tokenizer,
        "inputs": input,
        "heldout_fraction": heldout_fraction,
        "all_documents": all_documents or None,
        "json_output": json_output,
    }
    cfg = load_command_config(TokenizerReportCommand, config, set_, flags)
    rejected: Counter = Counter()
    try:
        loaded = load_tokenizer(cfg.tokenizer)
        heldout = cfg.heldout_for(read_meta(cfg.tokenizer), str(meta_path(cfg.tokenizer)))
        result = compression_report(
            loaded,
            cfg.inputs,
            heldout=heldout,
            all_documents=cfg.all_documents,
            input_config=cfg.input,
            rejected=rejected,
        )
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    _rejected_note(dict(rejected))
    if cfg.json_output:
        write_bytes_atomic(cfg.json_output, (json.dumps(result, indent=2) + "\n").encode())
    typer.echo(format_report(result))


@tokenizer_app.command("extend", epilog=config_epilog(TokenizerExtendCommand))
def extend(
    config: Path = CONFIG,
    set_: list[str] = SETS,
    tokenizer: str = TOKENIZER,
    add_tokens: str = typer.Option(None, "--add-tokens", help="sets add_tokens"),
    output: str = OUTPUT,
    domain: list[str] = typer.Option(None, "--domain", help="sets domain (repeatable)"),
) -> None:
    """Add domain words as tokens without changing the tokenization of any other text."""
    from dataengine.pack.compression import compression_report, format_report
    from dataengine.pack.extend import extend_tokenizer, read_word_list
    from dataengine.pack.tokenizer import load_tokenizer

    flags = {"tokenizer": tokenizer, "add_tokens": add_tokens, "output": output, "domain": domain}
    cfg = load_command_config(TokenizerExtendCommand, config, set_, flags)
    try:
        words = read_word_list(cfg.add_tokens)
        result = extend_tokenizer(cfg.tokenizer, words, cfg.output)
        typer.echo(json.dumps(result, ensure_ascii=False))
        for name, path in (("before", cfg.tokenizer), ("after", cfg.output)) if cfg.domain else ():
            report = compression_report(load_tokenizer(path), cfg.domain, input_config=cfg.input)
            typer.echo(f"\n{name}:\n" + format_report(report))
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))


def pack_command(
    config: Path = CONFIG,
    set_: list[str] = SETS,
    input: list[str] = INPUTS,
    tokenizer: str = TOKENIZER,
    seq_len: int = typer.Option(None, "--seq-len", help="sets seq_len"),
    output: str = OUTPUT,
    order: str = typer.Option(
        None, "--order", help="sets order: input | shuffle | similar | a registered order"
    ),
    seed: int = typer.Option(None, "--seed", help="sets seed"),
    heldout_fraction: float = HELDOUT,
    num_workers: int = typer.Option(None, "--num-workers", help="sets num_workers"),
    rows_per_shard: int = typer.Option(None, "--rows-per-shard", help="sets rows_per_shard"),
    channel: str = CHANNEL,
) -> None:
    """Tokenize and pack documents into token shards (train + heldout) with a manifest."""
    from dataengine.pack.packer import pack

    flags = {
        "inputs": input,
        "tokenizer": tokenizer,
        "seq_len": seq_len,
        "output": output,
        "order": order,
        "seed": seed,
        "heldout_fraction": heldout_fraction,
        "num_workers": num_workers,
        "rows_per_shard": rows_per_shard,
        "channel": _channel(channel),
    }
    cfg = load_command_config(PackCommand, config, set_, flags)
    try:
        manifest = pack(cfg.inputs, cfg.tokenizer, cfg.output, cfg)
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    _rejected_note(manifest["rejected_by_reason"])
    summary = {
        name: {k: split[k] for k in ("documents", "tokens", "sequences")}
        for name, split in manifest["splits"].items()
    }
    typer.echo(
        json.dumps(
            {
                "output": cfg.output,
                "documents_in": manifest["documents_in"],
                "rejected": sum(manifest["rejected_by_reason"].values()),
                "heldout_setting": manifest["heldout"],
                **summary,
            }
        )
    )


PACK_EPILOG = config_epilog(PackCommand)  # registered with the command: app.command("pack", epilog=...)


if __name__ == "__main__":
    tokenizer_app()
