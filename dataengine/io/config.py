"""Validated settings of the input layer: formats, field names, size limits, HTML extraction."""

from __future__ import annotations

from typing import Literal

import pydantic

InputFormat = Literal["auto", "jsonl", "parquet", "text", "warc", "arc"]


class InputConfig(pydantic.BaseModel, extra="forbid"):
    """How raw inputs become document rows.

    `format="auto"` infers each file's format from its extension (see `dataengine.io.units.infer_format`).
    """

    format: InputFormat = "auto"
    text_field: str = "text"
    id_field: str = "id"
    url_field: str = "url"
    title_field: str = "title"
    # A JSONL/Parquet field holding raw HTML; when set and present, the text is extracted from it.
    html_field: str | None = None
    # JSONL/Parquet fields copied onto each row as they are, when present (e.g. lang, category and source
    # of phase-1 output read back by `dataengine pack`); the id rule does not change.
    carry_fields: tuple[str, ...] = ()
    # A record (JSONL line, text document, WARC/ARC payload) larger than this is rejected io:too_large.
    # JSON escaping can make a line up to 6x its text, so JSONL lines may reach `json_line_factor` x this.
    max_doc_bytes: int = pydantic.Field(10_000_000, gt=0)
    json_line_factor: int = pydantic.Field(2, ge=1)
    # Uncompressed JSONL/text/WARC files (and Parquet files, by row groups) larger than this are split
    # into several work units, cut at line (paragraph, WARC record, row-group) boundaries; compressed
    # files (.gz, .zst) are always one unit. `auto`: the inputs' total size / 64, clamped to
    # [1 MiB, 64 MiB], so that even one large file is shared by all workers and progress moves often;
    # it depends on the inputs alone, so a re-run plans the same units and resumes.
    unit_bytes: int | Literal["auto"] = "auto"
    # A document of more words than this (two CJK characters count as one word) is split at paragraph
    # breaks into parts of about equal size, each judged on its own (`dataengine.io.split`); None: never.
    split_words: int | None = pydantic.Field(10_000, gt=0)
    # Plain text: one document per file, per blank-line separated paragraph, or per line.
    text_mode: Literal["file", "paragraphs", "lines"] = "file"
    # trafilatura options (https://trafilatura.readthedocs.io): precision over recall, tables, comments.
    favor_precision: bool = False
    favor_recall: bool = False
    include_tables: bool = True
    include_comments: bool = False

    @pydantic.field_validator("unit_bytes")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if value != "auto" and value <= 0:
            raise ValueError("unit_bytes must be a positive number of bytes or 'auto'")
        return value

    @pydantic.model_validator(mode="after")
    def _precision_xor_recall(self) -> InputConfig:
        if self.favor_precision and self.favor_recall:
            raise ValueError("favor_precision and favor_recall exclude each other; set at most one")
        return self
