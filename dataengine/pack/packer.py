"""``dataengine pack``: kept documents -> token shards (§3.3) on Ray Data.

Pipeline: read files (one Ray task per file, batches of documents) -> order (plug-in) ->
tokenize on an actor pool (``map_batches``; each actor loads the tokenizer once and encodes
with one thread) -> the driver consumes the batches in order and packs them.

Packing is one stream per split: each document's tokens plus EOS are appended, and the stream
is cut into rows of ``seq_len + 1``; a document that crosses a row end continues in the next
row (one span per piece), so nothing is dropped or truncated. Only the last row of a split is
padded. The split is decided per document by a hash of its id (``holdout``), with a fraction
per channel (channel = category, else lang). Order is preserved end to end, so the same input
and config give the same bytes whatever the batch layout or number of workers.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field
from tokenizers import Tokenizer

from dataengine.pack.holdout import is_heldout
from dataengine.pack.inputs import document_channel, expand_inputs, read_batches
from dataengine.pack.order import make_order
from dataengine.pack.shards import (
    MANIFEST,
    ShardWriter,
    dtype_for_vocab,
    merge_manifest,
)
from dataengine.pack.tokenizer import file_sha256, load_tokenizer, meta_path, read_meta, special_ids

SPLITS = ("train", "heldout")


class PackConfig(BaseModel):
    """How to pack; defaults run on a laptop."""

    model_config = ConfigDict(extra="forbid")

    seq_len: int = Field(2048, ge=1)
    order: str = Field("input", description="input | shuffle | a registered order")
    seed: int = 0
    heldout_fraction: float = Field(0.01, ge=0.0, le=1.0)
    heldout_fraction_by_channel: dict[str, float] = Field(default_factory=dict)
    heldout_seed: int = 0
    dtype: Literal["auto", "uint16", "uint32"] = "auto"
    rows_per_shard: int | None = Field(None, ge=1, description="default: about 64 MiB per shard")
    batch_size: int = Field(256, ge=1, description="documents per tokenization batch")
    num_workers: int = Field(2, ge=1, description="parallel tokenize tasks")
    block_bytes: int = Field(
        2 << 20, ge=1 << 16, description="Ray block size: small blocks spread one large file over all workers"
    )


def read_documents(files: Sequence[Path], batch_size: int):
    """A Ray dataset of §3.1 documents; one read task per file, file order kept."""
    import ray.data

    def read(batch: dict[str, np.ndarray]) -> Iterator[pa.Table]:
        for path in batch["path"]:
            yield from read_batches(path, batch_size)

    items = [{"path": str(p)} for p in files]
    # a fraction of a CPU: reading is light, and a different resource request keeps Ray from
    # fusing it with tokenization (fused, a single large file would be tokenized by one task)
    return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        read, batch_size=1, batch_format="numpy", num_cpus=0.25
    )


@functools.cache
def _worker_tokenizer(tokenizer_json: str) -> tuple[Tokenizer, int]:
    """Loaded once per Ray worker process (tasks reuse processes); one rayon thread, because
    parallelism comes from the number of tokenize tasks."""
    os.environ["RAYON_NUM_THREADS"] = "1"
    tokenizer = Tokenizer.from_str(tokenizer_json)
    return tokenizer, special_ids(tokenizer)["eos"]


class TokenizeDocuments:
    """Ray Data map: tokens (with EOS), channel and split for a batch of documents.

    A task function rather than an actor pool: actors would hold every CPU and starve the
    read and sort tasks on a small machine."""

    def __init__(self, tokenizer_json: str, config: dict[str, Any]) -> None:
        self.tokenizer_json = tokenizer_json
        self.config = PackConfig(**config)

    def __call__(self, batch: pa.Table) -> pa.Table:
        tokenizer, eos = _worker_tokenizer(self.tokenizer_json)
        encodings = tokenizer.encode_batch(batch["text"].to_pylist(), add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) + 1 for e in encodings), dtype=np.int64, count=len(encodings))
        offsets = np.zeros(len(encodings) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.empty(offsets[-1], dtype=np.uint32)
        for encoding, start, end in zip(encodings, offsets[:-1], offsets[1:], strict=True):
            values[start : end - 1] = encoding.ids
            values[end - 1] = eos
        channels = [
            document_channel(c, lang)
            for c, lang in zip(batch["category"].to_pylist(), batch["lang"].to_pylist(), strict=True)
        ]
        by_channel = self.config.heldout_fraction_by_channel
        splits = [
            "heldout"
            if is_heldout(
                doc_id, by_channel.get(channel, self.config.heldout_fraction), self.config.heldout_seed
            )
            else "train"
            for doc_id, channel in zip(batch["id"].to_pylist(), channels, strict=True)
        ]
        return pa.table(
            {
                "id": batch["id"],
                "source": batch["source"],
                "lang": batch["lang"],
                "channel": pa.array(channels, pa.string()),
                "split": pa.array(splits, pa.string()),
                "tokens": pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values)),
            }
        )


class RowPacker:
    """Cuts one split's token stream into rows of ``seq_len + 1`` and hands them to the writer."""

    def __init__(self, writer: ShardWriter) -> None:
        self.writer = writer
        self.width = writer.seq_len + 1
        self.row = np.full(self.width, writer.pad_id, dtype=np.uint32)
        self.fill = 0
        self.spans: list[dict[str, Any]] = []
        self.documents = 0
        self.tokens = 0

    def add(self, tokens: np.ndarray, meta: dict[str, Any]) -> None:
        self.documents += 1
        self.tokens += len(tokens)
        done = 0
        while done < len(tokens):
            take = min(self.width - self.fill, len(tokens) - done)
            self.row[self.fill : self.fill + take] = tokens[done : done + take]
            self.spans.append({"start": self.fill, "end": self.fill + take, **meta})
            self.fill += take
            done += take
            if self.fill == self.width:
                self._emit()

    def _emit(self) -> None:
        self.writer.write_row(self.row, self.spans)
        self.row = np.full(self.width, self.writer.pad_id, dtype=np.uint32)
        self.fill = 0
        self.spans = []

    def close(self) -> dict[str, Any]:
        if self.fill:
            self._emit()
        return self.writer.close(write_manifest=False)


def _init_ray():
    import ray

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False)
    return ray


def pack(
    inputs: Sequence[str | Path],
    tokenizer_path: str | Path,
    output: str | Path,
    config: PackConfig | None = None,
) -> dict[str, Any]:
    """Pack ``inputs`` (Parquet/JSONL files or folders of kept documents) into ``output``;
    returns the manifest. Raises ValueError if the counts do not add up."""
    config = config or PackConfig()
    files = expand_inputs(inputs)
    tokenizer = load_tokenizer(tokenizer_path)
    ids = special_ids(tokenizer)
    vocab_size = tokenizer.get_vocab_size()
    dtype = dtype_for_vocab(vocab_size) if config.dtype == "auto" else config.dtype
    order = make_order(config.order, config.seed)

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / MANIFEST).unlink(missing_ok=True)  # no manifest until the new shards are complete
    shutil.copyfile(tokenizer_path, output / "tokenizer.json")
    if meta_path(tokenizer_path).is_file():
        shutil.copyfile(meta_path(tokenizer_path), meta_path(output / "tokenizer.json"))
    sha = file_sha256(tokenizer_path)
    packers = {
        split: RowPacker(
            ShardWriter(
                output,
                split,
                config.seq_len,
                dtype,
                vocab_size=vocab_size,
                pad_id=ids["pad"],
                eos_id=ids["eos"],
                tokenizer_sha256=sha,
                rows_per_shard=config.rows_per_shard,
            )
        )
        for split in SPLITS
    }

    ray = _init_ray()
    context = ray.data.DataContext.get_current()
    saved = (
        context.execution_options.preserve_order,
        context.enable_progress_bars,
        context.target_max_block_size,
    )
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.target_max_block_size = config.block_bytes
    documents_in = 0
    try:
        ds = order.apply(read_documents(files, config.batch_size))
        ds = ds.map_batches(
            TokenizeDocuments(tokenizer.to_str(), config.model_dump()),
            batch_size=config.batch_size,
            batch_format="pyarrow",
            compute=ray.data.TaskPoolStrategy(size=config.num_workers),
            num_cpus=1,
        )
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            documents_in += _pack_batch(batch, packers)
    finally:
        (
            context.execution_options.preserve_order,
            context.enable_progress_bars,
            context.target_max_block_size,
        ) = saved

    splits = {name: packer.close() for name, packer in packers.items()}
    for name, packer in packers.items():
        counts = splits[name]
        if (counts["documents"], counts["tokens"]) != (packer.documents, packer.tokens):
            raise ValueError(
                f"split {name}: {packer.documents} documents / {packer.tokens} tokens packed but "
                f"{counts['documents']} / {counts['tokens']} in spans (duplicate adjacent ids?)"
            )
    tokens_in = sum(p.tokens for p in packers.values())
    meta = read_meta(tokenizer_path)
    extra = {
        "documents_in": documents_in,
        "tokens_in": tokens_in,
        "bos_id": ids["bos"],
        "embedding_size": meta.get("embedding_size"),
        "tokenizer_file": "tokenizer.json",
        "order": {"name": config.order, "seed": config.seed},
        "heldout": {
            "fraction": config.heldout_fraction,
            "by_channel": config.heldout_fraction_by_channel,
            "seed": config.heldout_seed,
        },
    }
    fields = next(iter(packers.values())).writer.manifest_fields()
    return merge_manifest(output, fields, splits, extra)


def _pack_batch(batch: pa.Table, packers: dict[str, RowPacker]) -> int:
    tokens = batch["tokens"].combine_chunks()
    offsets = tokens.offsets.to_numpy()
    values = tokens.values.to_numpy()
    columns = {name: batch[name].to_pylist() for name in ("id", "source", "lang", "channel", "split")}
    for i in range(batch.num_rows):
        meta = {
            "doc_id": columns["id"][i],
            "channel": columns["channel"][i],
            "lang": columns["lang"][i],
            "source": columns["source"][i],
        }
        packers[columns["split"][i]].add(values[offsets[i] : offsets[i + 1]], meta)
    return batch.num_rows
