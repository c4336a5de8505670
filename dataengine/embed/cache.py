"""One run's document embeddings: written once by semantic dedup, read by ``pack --order similar``.

A model embedder is the slow part of both steps (a BGE model embeds tens of documents a second per
core), and two fits of the hashed embedder put dedup and packing in two different spaces. So semantic
dedup leaves what it computed in ``DEDUP_OUT/embeddings/`` (``OUT/dedup/embeddings/`` in a
``dataengine run``) and the similarity order of ``pack`` joins its documents to it by text:

  embedder.json       the settings that decide the vectors (``settings``), the vector width, the row
                      count and the part files; written last, so a folder without it is incomplete
  embedder.npz        the fitted hashed embedder (IDF, basis), so that a document missing from the
                      cache is embedded in the same space as the cached ones
  part-NNNNN.parquet  ``_emb_key`` (blake2b-128 of the embedded text, hex) and ``_emb`` (float32
                      vectors); every key appears once in the whole folder

A key is the hash of the whole text that was embedded (after a decontamination cut), so a cached
vector is used exactly when the packed text is the text dedup embedded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataengine.embed import Embedder, make_embedder
from dataengine.embed.config import PACKAGED, EmbedConfig
from dataengine.io.paths import is_file, join, parent, read_bytes, write_bytes_atomic

FOLDER = "embeddings"
MANIFEST = "embedder.json"
STATE = "embedder.npz"
KEY, EMB = "_emb_key", "_emb"
FORMAT = 1


def text_key(text: str | None) -> str:
    return hashlib.blake2b((text or "").encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def text_keys(texts: Sequence[str | None]) -> np.ndarray:
    return np.array([text_key(t) for t in texts], dtype=object)


def settings(cfg: EmbedConfig) -> dict[str, Any]:
    """The settings a vector depends on (batch size and device change only rounding)."""
    if cfg.embedder == "hashed":
        return cfg.model_dump(include={"embedder", "max_chars", "dim", "fit_sample", "seed"})
    model = cfg.embedder if cfg.embedder == PACKAGED else os.path.abspath(cfg.embedder)
    return {"embedder": model, "max_chars": cfg.max_chars}


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def write_part(folder: str, index: int, keys: np.ndarray, emb: np.ndarray) -> int:
    """One part file of distinct ``keys`` (given in sorted order) and their vectors; returns its row count."""
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    table = pa.table(
        {
            KEY: pa.array(keys.tolist(), pa.string()),
            EMB: pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), emb.shape[1]),
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_bytes_atomic(join(folder, part_name(index)), sink.getvalue().to_pybytes())
    return table.num_rows


def write_manifest(
    folder: str, cfg: EmbedConfig, fitted: Embedder | None, parts: Sequence[int], rows: int, dim: int
) -> None:
    """The folder's embedder.json (and the fitted state): the mark that the cache is complete."""
    state = None
    if fitted is not None and hasattr(fitted, "state"):
        buffer = io.BytesIO()
        np.savez(buffer, **fitted.state())
        write_bytes_atomic(join(folder, STATE), buffer.getvalue())
        state = STATE
    manifest = {
        "format": FORMAT,
        "settings": settings(cfg),
        "dim": dim,
        "rows": rows,
        "state": state,
        "parts": [part_name(i) for i in sorted(parts)],
    }
    write_bytes_atomic(join(folder, MANIFEST), json.dumps(manifest, indent=2).encode())


@dataclass(frozen=True)
class EmbeddingCache:
    folder: str
    manifest: dict[str, Any]

    @classmethod
    def open(cls, folder: str) -> EmbeddingCache | None:
        """The cache in ``folder``, or None when there is no complete one."""
        path = join(folder, MANIFEST)
        if not is_file(path):
            return None
        manifest = json.loads(read_bytes(path))
        if manifest.get("format") != FORMAT:
            return None
        return cls(folder, manifest)

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"])

    def mismatch(self, cfg: EmbedConfig) -> str | None:
        """Why vectors of ``cfg`` would differ from the cached ones (None: they would not)."""
        mine, theirs = settings(cfg), self.manifest["settings"]
        if mine == theirs:
            return None
        differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        return "; ".join(f"{k}: cache {theirs.get(k)!r}, config {mine.get(k)!r}" for k in differ)

    def embedder(self, cfg: EmbedConfig) -> Embedder | None:
        """The fitted embedder the cache was computed with (None for a model: it is loaded where it runs)."""
        if not self.manifest["state"]:
            return None
        embedder = make_embedder(cfg)
        with np.load(io.BytesIO(read_bytes(join(self.folder, self.manifest["state"])))) as state:
            embedder.load_state(dict(state))
        return embedder

    def part_paths(self) -> list[str]:
        return [join(self.folder, name) for name in self.manifest["parts"]]


def find_cache(files: Sequence[str]) -> tuple[str | None, str]:
    """The one cache beside the run outputs ``files`` come from (``X/kept/*`` -> ``X/embeddings`` or
    ``X/dedup/embeddings``), with why there is none when there is none."""
    folders = set()
    for path in files:
        kept = parent(path)
        if os.path.basename(kept.rstrip("/")) != "kept":
            return None, f"{path} is not in a run's kept/ folder"
        run = parent(kept)
        found = [f for f in (join(run, FOLDER), join(run, "dedup", FOLDER)) if is_file(join(f, MANIFEST))]
        if not found:
            return None, f"no {FOLDER}/{MANIFEST} beside {kept} (semantic dedup was off?)"
        folders.add(found[0])
    if len(folders) != 1:
        return None, f"inputs come from {len(folders)} runs' caches: {sorted(folders)}"
    return folders.pop(), ""
