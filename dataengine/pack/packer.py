"""``dataengine pack``: kept documents -> token shards (§3.3), tokenized in parallel Ray tasks.

Pipeline: read the work units of ``dataengine run`` on Ray Data (one task per unit, same readers
and id rule; rejected records are counted and skipped) -> order (plug-in) -> the driver cuts the
ordered stream into blocks (at most ``batch_size`` documents, about ``task_text_bytes`` of
text) and keeps ``num_workers`` Ray tasks busy; each task does the per-document work of its
block (tokenize, EOS, channel, held-out split, flat token array per split in the shard dtype)
-> the driver takes the results in block order and packs them with numpy (no Python loop
over tokens; one small step per span piece and per row), then writes shards.

Packing is one stream per split: each document's tokens plus EOS are appended, and the stream
is cut into rows of ``seq_len + 1``; a document that crosses a row end continues in the next
row (one span per piece), so nothing is dropped or truncated. The partial row at the end of a
block is carried into the next block rather than padded, so only the last row of a split is
padded (at most ``seq_len`` pad tokens per split) and the bytes depend only on the ordered
documents and the config: never on block size, Ray's block layout or the number of workers.
The split is decided per document by a hash of its id (``holdout``), with a fraction per
channel (channel = category, else lang): the tokenizer's recorded held-out setting unless the config
gives one that holds out only documents the tokenizer never trained on.

The tokenizer may be this project's or one trained elsewhere (a Qwen2 or Llama-3 base's tokenizer.json
or model directory, for continued pretraining): its eos, pad and bos are decided once by ``specials``
and recorded in the manifest with the embedding size (``read_meta``) and the path given.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tokenizers import Tokenizer

from dataengine.io.config import InputConfig
from dataengine.io.paths import delete_file, join, resolve, write_bytes_atomic
from dataengine.io.units import Unit
from dataengine.pack.config import PackConfig
from dataengine.pack.holdout import Heldout
from dataengine.pack.inputs import documents_only, plan, unit_tables
from dataengine.pack.order import make_order
from dataengine.pack.shards import (
    DTYPES,
    MANIFEST,
    ShardWriter,
    dtype_for_vocab,
    merge_manifest,
)
from dataengine.pack.specials import HF_TOKENIZER_FILES, require_eos, special_ids, special_tokens_for
from dataengine.pack.tokenizer import file_sha256, load_tokenizer, meta_path, read_meta, tokenizer_file
from dataengine.runtime import init_ray

SPLITS = ("train", "heldout")
READ_AHEAD_BLOCKS = 8  # Ray Data blocks the driver holds ahead of packing (8 x block_bytes)
META_COLUMNS = ("id", "channel", "lang", "source")


def read_documents(units: Sequence[Unit], input_config: InputConfig, batch_size: int):
    """A Ray dataset of §3.1 documents (rejected records included, ``reject`` set); one read task per
    work unit, plan order kept."""
    import ray.data

    def read(batch: dict[str, np.ndarray]) -> Iterator[pa.Table]:
        for unit in batch["unit"]:
            yield from unit_tables(Unit(**json.loads(unit)), input_config, batch_size)

    items = [{"unit": json.dumps(asdict(u))} for u in units]
    # a fraction of a CPU: reading is light and must not wait for a tokenize task to finish
    return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        read, batch_size=1, batch_format="numpy", num_cpus=0.25
    )


@functools.cache
def _worker_tokenizer(tokenizer_json: str) -> Tokenizer:
    """Loaded once per Ray worker process (tasks reuse processes); one rayon thread, because
    parallelism comes from the number of tokenize tasks."""
    os.environ["RAYON_NUM_THREADS"] = "1"
    return Tokenizer.from_str(tokenizer_json)


@dataclass(frozen=True)
class SplitBlock:
    """One block's documents of one split: their tokens (EOS included) end to end, each
    document's length, and its span metadata (META_COLUMNS)."""

    tokens: np.ndarray
    lengths: np.ndarray
    meta: pa.Table


def tokenize_block(
    tokenizer_json: str, eos: int, batch: pa.Table, heldout: Heldout, dtype: str
) -> dict[str, SplitBlock]:
    """The per-document work of one block, run in a Ray task: tokens + EOS (id ``eos``, decided once
    by the driver), channel, split. No special token is added by the tokenizer's post-processor
    (a Llama-3 tokenizer would put its BOS before every document)."""
    tokenizer = _worker_tokenizer(tokenizer_json)
    # the fast variant skips character offsets, which packing never reads (~20% less time)
    encodings = tokenizer.encode_batch_fast(batch["text"].to_pylist(), add_special_tokens=False)
    ids = [e.ids for e in encodings]  # each .ids builds a new list: read it once
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids)) + 1
    ends = np.cumsum(lengths)
    tokens = np.empty(int(ends[-1]) if len(ends) else 0, dtype=DTYPES[dtype])
    for doc_ids, end in zip(ids, ends.tolist(), strict=True):
        tokens[end - len(doc_ids) - 1 : end - 1] = doc_ids
    tokens[ends - 1] = eos
    channels, held = heldout.split_rows(batch)
    meta = pa.table(
        {
            "id": batch["id"],
            "channel": pa.array(channels, pa.string()),
            "lang": batch["lang"],
            "source": batch["source"],
        }
    )
    blocks = {}
    for split, chosen in (("train", ~held), ("heldout", held)):
        blocks[split] = SplitBlock(
            tokens[np.repeat(chosen, lengths)],
            lengths[chosen],
            meta.filter(pa.array(chosen)),
        )
    return blocks


class StreamPacker:
    """Cuts one split's token stream into rows of ``seq_len + 1`` and hands them to the writer.

    Blocks arrive in order; a block's spans are computed with numpy from the document lengths
    and the stream position, and the partial row at its end is carried into the next block."""

    def __init__(self, writer: ShardWriter) -> None:
        self.writer = writer
        self.width = writer.seq_len + 1
        self.carry = np.empty(0, dtype=DTYPES[writer.dtype])  # tokens of the unfinished row
        self.carry_spans: list[dict[str, Any]] = []  # spans of the unfinished row
        self.documents = 0
        self.tokens = 0  # = position of the next token in the split's stream

    def add(self, block: SplitBlock) -> None:
        if not len(block.lengths):
            return
        width = self.width
        ends = self.tokens + np.cumsum(block.lengths)
        starts = ends - block.lengths
        first_row, last_row = starts // width, (ends - 1) // width
        pieces = last_row - first_row + 1
        doc = np.repeat(np.arange(len(pieces)), pieces)
        row = first_row[doc] + np.arange(len(doc)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
        row_start = row * width
        piece_start = np.maximum(starts[doc], row_start) - row_start
        piece_end = np.minimum(ends[doc], row_start + width) - row_start
        meta = {name: block.meta[name].to_pylist() for name in META_COLUMNS}

        new_spans = [
            {
                "start": start,
                "end": end,
                "doc_id": meta["id"][d],
                "channel": meta["channel"][d],
                "lang": meta["lang"][d],
                "source": meta["source"][d],
            }
            for d, start, end in zip(doc.tolist(), piece_start.tolist(), piece_end.tolist(), strict=True)
        ]

        self.documents += len(block.lengths)
        row_base = self.tokens // width  # the carried (unfinished) row's number in the stream
        self.tokens = int(ends[-1])
        stream = np.concatenate([self.carry, block.tokens])
        complete = len(stream) // width
        # pieces are sorted by row: cuts[r] is where the pieces of the rows after row r begin
        cuts = np.searchsorted(row, row_base + np.arange(1, complete + 1)).tolist()
        spans, previous = self.carry_spans, 0
        for r, cut in enumerate(cuts):
            self.writer.write_row(stream[r * width : (r + 1) * width], spans + new_spans[previous:cut])
            spans, previous = [], cut
        self.carry = stream[complete * width :].copy()
        self.carry_spans = spans + new_spans[previous:]

    def close(self) -> dict[str, Any]:
        """Pad and write the last, unfinished row; returns the writer's counts."""
        if len(self.carry):
            row = np.full(self.width, self.writer.pad_id, dtype=self.carry.dtype)
            row[: len(self.carry)] = self.carry
            self.writer.write_row(row, self.carry_spans)
        return self.writer.close(write_manifest=False)


def _task_batches(tables: Iterator[pa.Table], max_rows: int, max_text_bytes: int) -> Iterator[pa.Table]:
    """The ordered documents regrouped into tokenize tasks of at most ``max_rows`` documents
    and about ``max_text_bytes`` of text (a longer single document is a task of its own).

    A byte budget, not only a document count, keeps one block of long documents (code) from
    becoming a serial tail; task boundaries do not change the packed bytes. Each task's table is
    made contiguous: Ray serializes a slice of a larger block several times slower."""
    pending: list[pa.Table] = []
    rows = size = 0
    for table in tables:
        start = 0
        for i, n in enumerate(pc.binary_length(table["text"]).to_pylist()):
            if rows and (rows == max_rows or size + n > max_text_bytes):
                pending.append(table.slice(start, i - start))
                yield pa.concat_tables(pending).combine_chunks()
                pending, rows, size, start = [], 0, 0, i
            rows += 1
            size += n
        if start < table.num_rows:
            pending.append(table.slice(start))
    if rows:
        yield pa.concat_tables(pending).combine_chunks()


def _tokenized_blocks(
    ray,
    batches: Iterator[pa.Table],
    tokenizer_json: str,
    eos: int,
    heldout: Heldout,
    workers: int,
    dtype: str,
) -> Iterator[dict[str, SplitBlock]]:
    """Results of ``tokenize_block`` in block order, with ``num_workers`` tasks kept running and
    at most ``4 * num_workers`` results waiting behind a slow one (bounded memory).

    A task holds a whole CPU; the reader asks for a quarter, so it still runs beside them."""
    task = ray.remote(num_cpus=1, max_retries=0)(tokenize_block)
    shared = ray.put(tokenizer_json)
    in_order: deque = deque()
    running: set = set()

    def finished_in_order() -> Iterator[dict[str, SplitBlock]]:
        while in_order and in_order[0] not in running:
            yield ray.get(in_order.popleft())

    for batch in batches:
        while len(running) >= workers or len(in_order) >= 4 * workers:
            if running:
                done, _ = ray.wait(list(running), num_returns=1)
                running.difference_update(done)
            yield from finished_in_order()
        ref = task.remote(shared, eos, batch, heldout, dtype)
        in_order.append(ref)
        running.add(ref)
    while in_order:
        yield ray.get(in_order.popleft())


def _copy_tokenizer_files(tokenizer_json: Path, output: str) -> None:
    """The tokenizer goes with the shards as ``tokenizer.json``, with its sidecar and the Hugging Face
    files beside it (``tokenizer_config.json``, ``special_tokens_map.json``: what the trainer ships with
    a model); a copy an earlier pack left there that this tokenizer lacks is removed. ``tokenizer_json``
    is local (``tokenizer_file`` fetches one on object storage); ``output`` may be a URI."""
    write_bytes_atomic(join(output, "tokenizer.json"), tokenizer_json.read_bytes())
    beside = [(meta_path(tokenizer_json), join(output, "tokenizer.meta.json"))]
    beside += [(tokenizer_json.parent / name, join(output, name)) for name in HF_TOKENIZER_FILES]
    for source, target in beside:
        if source.is_file():
            write_bytes_atomic(target, source.read_bytes())
        else:
            delete_file(target)


def pack(
    inputs: Sequence[str | Path],
    tokenizer_path: str | Path,
    output: str | Path,
    config: PackConfig | None = None,
) -> dict[str, Any]:
    """Pack ``inputs`` (kept documents: files, folders, globs or URIs, read as by ``dataengine run``)
    into ``output`` with ``tokenizer_path`` (a tokenizer.json, or a Hugging Face model directory);
    returns the manifest. Raises ValueError if the counts do not add up, if the held-out setting would
    hold out documents the tokenizer trained on, or if the special tokens cannot be decided
    (``specials``). Inputs, tokenizer, special tokens and held-out setting are checked before any work."""
    config = config or PackConfig()
    units = plan(inputs, config.input)
    tokenizer_json = tokenizer_file(tokenizer_path)
    tokenizer = load_tokenizer(tokenizer_json)
    meta = read_meta(tokenizer_path)
    heldout = config.heldout_for(meta, str(meta_path(tokenizer_path)))
    tokens = special_tokens_for(
        tokenizer,
        tokenizer_json,
        config.special_tokens.model_dump(),
        meta.get("special_roles"),
        str(meta_path(tokenizer_path)),
    )
    require_eos(tokens, tokenizer_json)
    ids = special_ids(tokenizer, tokens)
    vocab_size = tokenizer.get_vocab_size()
    dtype = dtype_for_vocab(vocab_size) if config.dtype == "auto" else config.dtype
    if vocab_size > np.iinfo(DTYPES[dtype]).max + 1:  # refused here, before the output is touched
        raise ValueError(
            f"dtype {dtype}: {tokenizer_json} has {vocab_size} token ids; set dtype auto or uint32"
        )
    order = make_order(config, sorted({unit.path for unit in units}))

    output = os.fspath(output)  # a local folder or a URI (s3://...): pathlib would mangle a URI
    fs, inner = resolve(output)
    fs.create_dir(inner, recursive=True)
    delete_file(join(output, MANIFEST))  # no manifest until the new shards are complete
    _copy_tokenizer_files(tokenizer_json, output)
    sha = file_sha256(tokenizer_json)
    packers = {
        split: StreamPacker(
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

    ray = init_ray()
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
    rejected: Counter = Counter()
    try:
        ds = order.apply(read_documents(units, config.input, config.batch_size))
        # Whole Ray blocks, regrouped here: iter_batches(batch_size=N) costs the driver a core.
        # Blocks are fetched READ_AHEAD_BLOCKS ahead: with one, Ray Data's scheduling loop spins
        # once its read tasks are done but their blocks wait for the driver (0.9 s of driver CPU
        # over a 2.3 s read of 17M characters, against 0.12 s with 8).
        tables = ds.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=READ_AHEAD_BLOCKS)
        documents = (documents_only(table, rejected) for table in order.stream(tables, heldout))
        batches = _task_batches(documents, config.batch_size, config.task_text_bytes)
        blocks_in_order = _tokenized_blocks(
            ray, batches, tokenizer.to_str(), ids["eos"], heldout, config.num_workers, dtype
        )
        for blocks in blocks_in_order:
            for split, block in blocks.items():
                documents_in += len(block.lengths)
                packers[split].add(block)
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
    extra = {
        "documents_in": documents_in,
        "rejected_by_reason": dict(sorted(rejected.items())),
        "tokens_in": tokens_in,
        "bos_id": ids["bos"],
        "special_tokens": tokens,
        "embedding_size": meta.get("embedding_size"),
        "tokenizer_file": "tokenizer.json",
        "tokenizer_source": str(tokenizer_path),
        "order": {"name": config.order, "seed": config.seed, **order.stats()},
        "heldout": heldout.model_dump(),
    }
    fields = next(iter(packers.values())).writer.manifest_fields()
    return merge_manifest(output, fields, splits, extra)
