"""The config models of the phase-3 commands: one model per command holds every setting, inputs and
outputs included, so a YAML can say everything and ``--help`` lists every key with its default."""

from __future__ import annotations

from pydantic import Field

from dataengine.cli_support import InputsKey, OutputKey
from dataengine.pack.config import HeldoutKeys, PackConfig, ReaderKey, Strict
from dataengine.pack.tokenizer import TokenizerConfig


class TokenizerKey(Strict):
    tokenizer: str = Field(
        ...,
        description="tokenizer.json (its .meta.json beside it holds the held-out setting), or a Hugging "
        "Face model directory (its tokenizer.json, tokenizer_config.json and config.json are read)",
    )


class TokenizerTrainCommand(TokenizerConfig, InputsKey, OutputKey):
    """`dataengine tokenizer train`: output = tokenizer.json to write (+ .meta.json beside it)."""


class TokenizerReportCommand(HeldoutKeys, ReaderKey, InputsKey, TokenizerKey):
    """`dataengine tokenizer report`."""

    all_documents: bool = Field(False, description="measure every document (inputs held out as a whole)")
    json_output: str | None = Field(None, description="also write the report as JSON to this file")


class TokenizerExtendCommand(ReaderKey, TokenizerKey, OutputKey):
    """`dataengine tokenizer extend`: output = the extended tokenizer.json."""

    add_tokens: str = Field(..., description="text file, one new word per line")
    domain: list[str] = Field(
        default_factory=list, description="documents to measure compression on, before and after"
    )


class PackCommand(PackConfig, InputsKey, TokenizerKey, OutputKey):
    """`dataengine pack`: output = the SHARDS directory."""
