"""Held-out documents for perplexity: from token shards (§3.3) or from JSONL / plain-text files.

Everything becomes text with a domain label, so a model with any tokenizer can be measured on the same
bytes (bits-per-byte stays comparable across tokenizers). Shard spans are decoded with the shards' own
tokenizer.json. Each source may be local or on object storage (s3://..., read through
``dataengine.io.paths``, the engine's one filesystem layer).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dataengine.io.paths import is_dir, is_file, join, open_random_access, read_bytes
from eval.config import DataConfig


@dataclass(frozen=True)
class HeldoutDoc:
    text: str
    domain: str
    lang: str | None = None
    doc_id: str | None = None


def _name(path: Path | str) -> str:
    return posixpath.basename(os.fspath(path).rstrip("/"))


def _open_text(path: Path | str) -> IO[str]:
    """Text of a local or remote file, gunzipped when it ends in .gz; streamed, not read whole."""
    raw = io.BufferedReader(open_random_access(os.fspath(path)), 1 << 20)
    if _name(path).endswith(".gz"):
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw, mode="rb"), encoding="utf-8")
    return io.TextIOWrapper(raw, encoding="utf-8")


def _stem(path: Path | str) -> str:
    name = _name(path)
    for suffix in (".gz", ".jsonl", ".json", ".txt"):
        name = name.removesuffix(suffix)
    return name


def _jsonl_docs(path: Path | str, cfg: DataConfig) -> Iterator[HeldoutDoc]:
    with _open_text(path) as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: invalid JSON ({exc.msg})") from exc
            text = row.get(cfg.text_field) if isinstance(row, dict) else None
            if not isinstance(text, str):
                raise ValueError(f"{path}:{line_no}: no string field {cfg.text_field!r} (data.text_field)")
            if not text.strip():
                continue
            domain = row.get(cfg.domain_field) or _stem(path)
            yield HeldoutDoc(
                text, str(domain), row.get("lang"), str(row.get("id", f"{_name(path)}:{line_no}"))
            )


def _text_docs(path: Path | str, cfg: DataConfig) -> Iterator[HeldoutDoc]:
    """A plain-text file is cut at paragraph breaks into documents of about max_chars_per_doc."""
    with _open_text(path) as fh:
        text = fh.read()
    chunk: list[str] = []
    size = 0
    index = 0
    for paragraph in re.split(r"\n[ \t]*\n", text):
        chunk.append(paragraph)
        size += len(paragraph) + 2
        if size >= cfg.max_chars_per_doc:
            yield HeldoutDoc("\n\n".join(chunk).strip(), _stem(path), None, f"{_name(path)}#{index}")
            chunk, size, index = [], 0, index + 1
    if "".join(chunk).strip():
        yield HeldoutDoc("\n\n".join(chunk).strip(), _stem(path), None, f"{_name(path)}#{index}")


def _shard_docs(root: Path | str, cfg: DataConfig) -> Iterator[HeldoutDoc]:
    """Spans decoded back to text; consecutive pieces of one document (split across rows) are joined."""
    from tokenizers import Tokenizer

    from dataengine.pack.shards import ShardReader

    reader = ShardReader(root, split=cfg.split)
    tokenizer = Tokenizer.from_str(read_bytes(join(root, "tokenizer.json")).decode("utf-8"))
    pieces: list[int] = []
    current: dict | None = None
    for shard, row in reader.sequence_ids():
        tokens = reader.sequence(shard, row)
        for span in reader.spans(shard, row):
            if current is not None and span["doc_id"] != current["doc_id"]:
                yield _decoded(tokenizer, pieces, current)
                pieces = []
            current = span
            pieces.extend(int(t) for t in tokens[span["start"] : span["end"]])
    if current is not None:
        yield _decoded(tokenizer, pieces, current)


def _decoded(tokenizer, ids: list[int], span: dict) -> HeldoutDoc:
    text = tokenizer.decode(ids, skip_special_tokens=True)
    return HeldoutDoc(text, str(span["channel"]), span.get("lang"), str(span["doc_id"]))


def iter_docs(path: Path | str, cfg: DataConfig) -> Iterator[HeldoutDoc]:
    """Documents of one held-out source, by kind: shards directory, JSONL, or text."""
    if is_dir(path):
        if not is_file(join(path, "manifest.json")):
            raise ValueError(
                f"{path}: a directory given as data.heldout must be a shards dir with manifest.json"
            )
        return _shard_docs(path, cfg)
    if not is_file(path):
        raise FileNotFoundError(f"data.heldout: {path} does not exist")
    if {".jsonl", ".json"} & {"." + part for part in _name(path).split(".")[1:]}:
        return _jsonl_docs(path, cfg)
    return _text_docs(path, cfg)


def load_heldout(paths: list[Path | str], cfg: DataConfig) -> list[HeldoutDoc]:
    """At most max_docs_per_domain documents per domain, each cut to max_chars_per_doc, in file order.

    Documents without a language get one from the engine's fastText language ID (for the per-language table).
    """
    from dataengine.stages.langid import LanguageIdentifier

    identify = LanguageIdentifier().predict
    per_domain: dict[str, int] = {}
    docs: list[HeldoutDoc] = []
    for path in paths:
        for doc in iter_docs(path, cfg):
            if not doc.text.strip() or per_domain.get(doc.domain, 0) >= cfg.max_docs_per_domain:
                continue
            per_domain[doc.domain] = per_domain.get(doc.domain, 0) + 1
            text = doc.text[: cfg.max_chars_per_doc]
            docs.append(HeldoutDoc(text, doc.domain, doc.lang or identify(text)[0], doc.doc_id))
    return docs
