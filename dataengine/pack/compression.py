"""Compression of a tokenizer per channel (language or category) on held-out documents.

Characters per token and UTF-8 bytes per token measure how much text a context window holds;
CJK characters per token is the figure that shows whether Chinese got real multi-character
tokens or is spelled out byte by byte.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import regex
from tokenizers import Tokenizer

from dataengine.io.config import InputConfig
from dataengine.pack.holdout import Heldout
from dataengine.pack.inputs import document_tables, reader_config

_CJK_CHAR = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")


def _empty() -> dict[str, int]:
    return {"documents": 0, "chars": 0, "bytes": 0, "cjk_chars": 0, "tokens": 0}


def _ratios(row: dict[str, int]) -> dict[str, Any]:
    tokens = max(1, row["tokens"])
    return {
        **row,
        "chars_per_token": row["chars"] / tokens,
        "bytes_per_token": row["bytes"] / tokens,
        "cjk_chars_per_token": row["cjk_chars"] / tokens if row["cjk_chars"] else None,
    }


def compression_report(
    tokenizer: Tokenizer,
    inputs: Sequence[str | Path],
    *,
    heldout: Heldout | None = None,
    all_documents: bool = False,
    input_config: InputConfig | None = None,
    rejected: Counter | None = None,
) -> dict[str, dict[str, Any]]:
    """Per-channel compression (channels named as ``heldout`` names them) on the documents of ``inputs``
    that ``heldout`` holds out (``all_documents`` or no ``heldout``: every document, for inputs that
    are held out as a whole; channels by language then). Documents are read as by ``dataengine run``; records the reader rejects are counted into
    ``rejected``."""
    input_config = input_config or reader_config()
    rejected = Counter() if rejected is None else rejected
    totals: dict[str, dict[str, int]] = {}
    all_documents = all_documents or heldout is None
    heldout = heldout or Heldout()
    for table in document_tables(inputs, input_config, rejected):
        by_channel: dict[str, list[str]] = {}
        for d in table.to_pylist():
            channel = heldout.channel_of(d)
            if all_documents or heldout.holds(d["id"], channel):
                by_channel.setdefault(channel, []).append(d["text"])
        if not by_channel:
            continue
        _add(tokenizer, totals, by_channel)
    if not totals:
        raise ValueError(
            f"no held-out documents in {list(map(str, inputs))} ({'all documents' if all_documents else heldout})"
        )
    return {channel: _ratios(row) for channel, row in sorted(totals.items())}


def _add(tokenizer: Tokenizer, totals: dict[str, dict[str, int]], texts: dict[str, list[str]]) -> None:
    for channel, batch in texts.items():
        row = totals.setdefault(channel, _empty())
        for text, encoding in zip(
            batch, tokenizer.encode_batch(batch, add_special_tokens=False), strict=True
        ):
            row["documents"] += 1
            row["chars"] += len(text)
            row["bytes"] += len(text.encode())
            row["cjk_chars"] += len(_CJK_CHAR.findall(text))
            row["tokens"] += len(encoding.ids)


def text_compression(tokenizer: Tokenizer, texts: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Per-channel compression of texts already in memory (channel -> texts); {} for none."""
    totals: dict[str, dict[str, int]] = {}
    _add(tokenizer, totals, {c: batch for c, batch in texts.items() if batch})
    return {channel: _ratios(row) for channel, row in sorted(totals.items())}


def format_report(report: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of the report."""
    lines = [
        "| channel | documents | chars | tokens | chars/token | bytes/token | CJK chars/token |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for channel, r in report.items():
        cjk = f"{r['cjk_chars_per_token']:.3f}" if r["cjk_chars_per_token"] is not None else "-"
        lines.append(
            f"| {channel} | {r['documents']} | {r['chars']} | {r['tokens']} | "
            f"{r['chars_per_token']:.3f} | {r['bytes_per_token']:.3f} | {cjk} |"
        )
    return "\n".join(lines)
