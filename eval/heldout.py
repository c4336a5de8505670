"""Held-out documents for perplexity: from token shards (§3.3) or from JSONL / plain-text files.

Everything becomes text with a domain label, so a model with any tokenizer can be measured on the same
bytes (bits-per-byte stays comparable across tokenizers). Shard spans are decoded with the shards' own
tokenizer.json. Each source may be local or on object storage (s3://..., read through
``dataengine.io.paths``, the engine's one filesystem layer).

Documents are whole by default: a JSONL row, a shards document, or a whole plain-text file (cutting a text
into pieces of a fixed size scored a piece's start with no context and dropped what the cut left over).
Caps exist for quick runs only; read_heldout counts what they leave out.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    """A plain-text file is one document, scored whole (as the harness scores a document it is given)."""
    with _open_text(path) as fh:
        text = fh.read()
    if text.strip():
        yield HeldoutDoc(text, _stem(path), None, _name(path))


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


@dataclass
class HeldoutSet:
    """The documents to score, and what the explicit caps (data.max_docs_per_domain, data.max_chars_per_doc)
    left out, for results.json: a capped number is not the whole held-out set's."""

    docs: list[HeldoutDoc]
    max_docs_per_domain: int | None = None
    max_chars_per_doc: int | None = None
    docs_left_out: dict[str, int] = field(default_factory=dict)  # per domain, by max_docs_per_domain
    docs_cut: int = 0  # documents shortened by max_chars_per_doc
    chars_cut: int = 0  # characters those cuts dropped

    def caps(self) -> dict:
        return {
            "max_docs_per_domain": self.max_docs_per_domain,
            "max_chars_per_doc": self.max_chars_per_doc,
            "docs_left_out": dict(self.docs_left_out),
            "docs_cut": self.docs_cut,
            "chars_cut": self.chars_cut,
        }


def cut_at_word(text: str, max_chars: int) -> str:
    """At most max_chars characters, ending at the last whitespace when there is one in the second half
    (text without spaces, such as Chinese, is cut at the limit itself)."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    space = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
    return (head[:space] if space > max_chars // 2 else head).rstrip()


def read_heldout(paths: list[Path | str], cfg: DataConfig) -> HeldoutSet:
    """Every document of `paths` in file order, whole unless the config sets a cap (then the first
    max_docs_per_domain of each domain, each cut to max_chars_per_doc at a word boundary, and counted).

    Documents without a language get one from the engine's fastText language ID (for the per-language table).
    """
    from dataengine.stages.langid import LanguageIdentifier

    identify = LanguageIdentifier().predict
    result = HeldoutSet([], cfg.max_docs_per_domain, cfg.max_chars_per_doc)
    per_domain: dict[str, int] = {}
    for path in paths:
        for doc in iter_docs(path, cfg):
            if not doc.text.strip():
                continue
            if (
                cfg.max_docs_per_domain is not None
                and per_domain.get(doc.domain, 0) >= cfg.max_docs_per_domain
            ):
                result.docs_left_out[doc.domain] = result.docs_left_out.get(doc.domain, 0) + 1
                continue
            per_domain[doc.domain] = per_domain.get(doc.domain, 0) + 1
            text = doc.text
            if cfg.max_chars_per_doc is not None and len(text) > cfg.max_chars_per_doc:
                text = cut_at_word(text, cfg.max_chars_per_doc)
                result.docs_cut += 1
                result.chars_cut += len(doc.text) - len(text)
            result.docs.append(HeldoutDoc(text, doc.domain, doc.lang or identify(text)[0], doc.doc_id))
    return result


def load_heldout(paths: list[Path | str], cfg: DataConfig) -> list[HeldoutDoc]:
    """The documents of read_heldout (in-loop evaluation and tests need no cap report)."""
    return read_heldout(paths, cfg).docs
