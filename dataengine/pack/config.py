"""Settings of ``dataengine pack`` and the keys phase-3 configs share (a light module: the command
lines build their --help from it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dataengine.embed.config import EmbedConfig
from dataengine.io.config import InputConfig
from dataengine.pack.holdout import ChannelField, Heldout, resolve_heldout
from dataengine.pack.inputs import reader_config
from dataengine.pack.specials import CONVENTIONS, HF_TOKENIZER_FILES


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReaderKey(Strict):
    """``input``: how documents are read, the settings of ``dataengine run``'s readers."""

    input: InputConfig = Field(
        default_factory=reader_config, description="how documents are read, as by `dataengine run`"
    )


class HeldoutKeys(Strict):
    """The held-out keys of commands that use a trained tokenizer: null = the tokenizer's setting."""

    heldout_fraction: float | None = Field(
        None,
        ge=0.0,
        lt=1.0,
        description="null = the tokenizer's recorded setting (a tokenizer trained elsewhere: 0.01); "
        "a value that would hold out documents the tokenizer trained on is refused",
    )
    heldout_fraction_by_channel: dict[str, float] | None = Field(
        None, description="null = the tokenizer's recorded per-channel shares"
    )
    heldout_seed: int | None = Field(None, description="null = the tokenizer's recorded seed (else 0)")
    channel: list[ChannelField] | None = Field(
        None,
        description="row fields that name a document's channel ([lang], [category], [lang, category]); "
        "null = the tokenizer's recorded setting",
    )

    def heldout_for(self, meta: Mapping[str, Any], where: str) -> Heldout:
        """This config's held-out setting against a tokenizer's ``meta`` (``where``: its file)."""
        return resolve_heldout(
            meta.get("heldout"),
            where,
            self.heldout_fraction,
            self.heldout_seed,
            self.heldout_fraction_by_channel,
            self.channel,
        )


class KnnConfig(Strict):
    """Nearest neighbours with faiss, inside each partition."""

    k: int = Field(20, ge=1, description="neighbours per document the walk may go to")
    exact_max: int = Field(
        20000, ge=1, description="partitions up to this many documents: exact (flat) search; beyond: IVF"
    )
    nlist: int | None = Field(None, ge=1, description="IVF lists; null = sqrt(documents)")
    nprobe: int = Field(8, ge=1, description="IVF lists searched per query")
    pq_m: int = Field(0, ge=0, description="> 0: IVF-PQ with this many sub-quantizers (must divide dim)")


class SimilarOrderConfig(Strict):
    """``order: similar``: In-Context Pretraining's order, related documents packed together."""

    embed: EmbedConfig = Field(default_factory=EmbedConfig, description="how documents are embedded")
    embedding_cache: str | None = Field(
        "auto",
        description="vectors semantic dedup already computed (dataengine/embed/cache.py): auto = the "
        "embeddings/ folder of the run whose kept/ is the input, used when its embedder settings equal "
        "`embed`'s; a folder = that cache (an error if it is missing or differs); null = embed everything",
    )
    knn: KnnConfig = Field(default_factory=KnnConfig)
    max_chain_docs: int = Field(21, ge=1, description="documents per chain of neighbours (ICP: 21)")
    min_chain_docs: int = Field(
        3, ge=1, description="chains shorter than this are merged (in walk order) up to max_chain_docs"
    )
    near_duplicate: float = Field(
        0.9, gt=0.0, le=1.0, description="cosine at or above which two documents are never consecutive"
    )
    category_run: int | None = Field(
        None, ge=1, description="at most this many consecutive documents of one category; null = no cap"
    )
    partition_docs: int = Field(
        100_000, ge=1, description="documents per k-means partition (each walked in its own Ray task)"
    )
    kmeans_sample: int = Field(50_000, ge=1, description="documents the partition centroids are fitted on")
    shuffle_chains: bool = Field(
        True, description="chains in a seeded random order (a batch mixes topics); false = partition order"
    )
    max_deferred: int = Field(
        10_000, ge=0, description="documents the guard may hold back to keep near-duplicates apart"
    )

    @model_validator(mode="after")
    def _pq_fits(self) -> SimilarOrderConfig:
        if self.knn.pq_m and self.embed.embedder == "hashed" and self.embed.dim % self.knn.pq_m:
            raise ValueError(f"knn.pq_m {self.knn.pq_m} must divide embed.dim {self.embed.dim}")
        return self


def _derived(role: str, otherwise: str) -> str:
    """The help text of a special-token key: where a null value looks (dataengine.pack.specials)."""
    return (
        f"null = the .meta.json's special_roles.{role} (tokenizer extend writes it), else {role}_token of "
        f"{' / '.join(HF_TOKENIZER_FILES)} beside the tokenizer, else the first "
        f"added token of {', '.join(CONVENTIONS[role])}, else {otherwise}"
    )


class SpecialTokens(Strict):
    """The tokens that end, pad and begin documents, for tokenizers trained elsewhere (Qwen2, Llama-3)."""

    eos: str | None = Field(
        None,
        min_length=1,
        description="ends every document; " + _derived("eos", "pack refuses the tokenizer"),
    )
    pad: str | None = Field(
        None,
        min_length=1,
        description="fills a split's last row (no span covers it, so the loss ignores it); "
        + _derived("pad", "the eos"),
    )
    bos: str | None = Field(
        None,
        min_length=1,
        description="recorded as the manifest's bos_id (pack inserts none); " + _derived("bos", "none"),
    )


class PackConfig(HeldoutKeys, ReaderKey):
    """How to pack; defaults run on a laptop."""

    seq_len: int = Field(2048, ge=1, description="tokens per training sequence (rows hold seq_len + 1)")
    order: str = Field("input", description="input | shuffle | similar | a registered order")
    seed: int = Field(0, description="seed of the shuffle and similar orders")
    similar: SimilarOrderConfig = Field(
        default_factory=SimilarOrderConfig, description="settings of order: similar"
    )
    special_tokens: SpecialTokens = Field(
        default_factory=SpecialTokens,
        description="tokens by role (eos, pad, bos); null = derived from the tokenizer's files",
    )
    dtype: Literal["auto", "uint16", "uint32"] = Field(
        "auto", description="auto = uint16 when the vocab fits"
    )
    rows_per_shard: int | None = Field(None, ge=1, description="null = about 64 MiB per shard")
    batch_size: int = Field(256, ge=1, description="documents per tokenize task (a block)")
    num_workers: int = Field(2, ge=1, description="tokenize tasks running at once")
    task_text_bytes: int = Field(512 << 10, ge=1, description="text per tokenize task (about)")
    block_bytes: int = Field(2 << 20, ge=1 << 16, description="Ray Data block size of the document reader")
